-- Throttling of failed passwords and codes (hub/auth/throttle.py): one row per key, a hash of
-- (what was tried, and for some keys from which client address). Keys: an email or user with one
-- client address; one client address with any email; an email or user from everywhere (slower).
-- Keyed by the email, not the user, so existing, disabled, invited and unknown emails lock alike.
-- `known_until`: the address logged in as this email recently, so the slower limit from
-- everywhere does not lock the owner out. Replaces users.failed_logins/locked_until and
-- login_failures, which are no longer read.
CREATE TABLE auth_throttle (
    key           bytea PRIMARY KEY,
    score         float8 NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    known_until   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_throttle_updated ON auth_throttle (updated_at);
DROP TABLE login_failures;
