"""What guards the service's edges: the SSRF guard every user-given URL goes
through (``urlguard``) and the secrets derived from the settings (``secrets``:
webhook signing keys, share tokens)."""
