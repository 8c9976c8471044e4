"""The archive: the raw provider payload of every inbound webhook and each contact's full profile
document, kept by a bus consumer (:mod:`crm.archive.part`) in PostgreSQL JSONB tables (the
embedded default) or MongoDB (``MONGODB_URL``), and removed again when the person is erased."""
