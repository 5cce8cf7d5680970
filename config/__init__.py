"""Process configuration: the settings object read once from the environment
(``settings``) and JSON logging (``logs``)."""
