"""Object storage: the ``ObjectStore`` protocol with its local-disk and S3/R2
adapters (``objects``) and their errors (``errors``).

Nothing is imported here, so importing ``storage.errors`` does not load boto3.
"""
