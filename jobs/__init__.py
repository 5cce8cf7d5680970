"""The jobs domain: the job record and its state machine (``store``), leases and the
reaper's queries, client webhook deliveries (``deliveries``), idempotent requests
(``idempotency``), and every constant of jobs, queues and keys (``constants``).

Nothing is imported here, so the pure modules (``constants``, ``errors``) load
without Redis.
"""
