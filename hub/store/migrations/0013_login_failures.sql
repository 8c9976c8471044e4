-- Failed logins for addresses no user has, counted and locked exactly like a user's own
-- (hub/auth/sessions.py): otherwise the lockout would tell which addresses have an account.
-- Keyed by a hash of the lower-cased address; rows a day old are dropped as new ones arrive.
CREATE TABLE login_failures (
    email_hash     bytea PRIMARY KEY,
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_updated ON login_failures (updated_at);
