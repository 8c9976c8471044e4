-- Platform operators' tokens: they create and list accounts (tenants) and nothing else; no
-- account's data is theirs to read. Only the SHA-256 of a token is kept, as for API tokens.
CREATE TABLE platform_tokens (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);
