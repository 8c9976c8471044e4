-- Authentication state beyond 0006: the TOTP replay guard, the one-time token of a login's MFA
-- step, and the lookup of a user's personal API tokens.

-- the newest TOTP time step accepted for the user: a code is never accepted twice
ALTER TABLE users ADD COLUMN mfa_last_counter bigint;

-- sha256 of the token that finishes the MFA step of a session in stage 'mfa' (NULL once active)
ALTER TABLE auth_sessions ADD COLUMN mfa_token_hash bytea UNIQUE;

CREATE INDEX api_tokens_user ON api_tokens (user_id) WHERE user_id IS NOT NULL;
