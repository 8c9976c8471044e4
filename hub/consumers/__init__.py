"""Bus consumers that belong to the core. Each is idempotent on event id."""
