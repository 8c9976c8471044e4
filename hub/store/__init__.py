"""PostgreSQL storage: the embedded server, the connection pool, migrations and repositories.

Reads live here; writes to domain tables happen only inside ``hub.actions``.
"""
