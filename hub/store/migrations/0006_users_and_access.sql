-- People, teams and who may see which inbox; login sessions with rotating refresh tokens; MFA;
-- labels and canned responses; the audit log. Authorization reads inbox_members and
-- team_inboxes (hub/authz.py): agents see their inboxes, supervisors their teams' inboxes.

ALTER TABLE accounts
    ADD COLUMN time_zone      text NOT NULL DEFAULT 'UTC',
    ADD COLUMN business_hours jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN mfa_required   boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now();

CREATE TABLE users (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts(id),
    email            text NOT NULL,
    name             text NOT NULL DEFAULT '',
    role             text NOT NULL CHECK (role IN ('administrator', 'supervisor', 'agent')),
    -- argon2id hash; NULL until an invited user sets a password
    password_hash    text,
    -- sha256 of a pending invitation token (shown once to the inviter)
    invite_hash      bytea UNIQUE,
    invite_expires_at timestamptz,
    availability     text NOT NULL DEFAULT 'offline'
                     CHECK (availability IN ('online', 'busy', 'offline')),
    -- TOTP secret, Fernet-encrypted; mfa_enabled once the first code was verified
    mfa_secret       bytea,
    mfa_enabled      boolean NOT NULL DEFAULT false,
    failed_logins    integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    disabled_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- one login per address across accounts: the email is what a person types to log in
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_account ON users (account_id, id);

-- MFA backup codes, hashed; each works once
CREATE TABLE mfa_backup_codes (
    user_id    text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A login session is a refresh-token family: every refresh rotates the token; presenting a
-- rotated one again revokes the whole family (the token was stolen or replayed).
CREATE TABLE auth_sessions (
    id            text COLLATE "C" PRIMARY KEY,
    user_id       text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id    text COLLATE "C" NOT NULL REFERENCES accounts(id),
    -- 'mfa' sessions only allow finishing the MFA step
    stage         text NOT NULL DEFAULT 'active' CHECK (stage IN ('mfa', 'active')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoked_reason text,
    client_address text,
    user_agent    text
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- set when this token was exchanged for the next one
    rotated_at   timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Personal API tokens belong to a user and act as that user, narrowed to their scopes.
-- Tokens created by `hub token create` have no user and carry their role themselves.
ALTER TABLE api_tokens
    ADD COLUMN user_id     text COLLATE "C" REFERENCES users(id) ON DELETE CASCADE,
    ADD COLUMN scopes      text[],
    ADD COLUMN expires_at  timestamptz,
    ADD COLUMN token_prefix text NOT NULL DEFAULT '';

CREATE TABLE teams (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

CREATE TABLE team_members (
    team_id  text COLLATE "C" NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE team_inboxes (
    team_id   text COLLATE "C" NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    inbox_id  text COLLATE "C" NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, inbox_id)
);
CREATE INDEX team_inboxes_inbox ON team_inboxes (inbox_id);

CREATE TABLE inbox_members (
    inbox_id  text COLLATE "C" NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    user_id   text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (inbox_id, user_id)
);
CREATE INDEX inbox_members_user ON inbox_members (user_id);

CREATE TABLE labels (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    color       text NOT NULL DEFAULT '#1f93ff',
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

CREATE TABLE canned_responses (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    short_code  text NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, short_code)
);

-- Who did what to which object, when and from where: admin and security actions.
-- Written in the same transaction as the change it records.
CREATE TABLE audit_log (
    id            text COLLATE "C" PRIMARY KEY,
    -- NULL only for a failed login with an address no user has
    account_id    text COLLATE "C",
    actor_type    text NOT NULL CHECK (actor_type IN ('user', 'api_token', 'system', 'anonymous')),
    actor_id      text COLLATE "C",
    action        text NOT NULL,
    object_type   text NOT NULL,
    object_id     text COLLATE "C",
    client_address text,
    user_agent    text,
    details       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_account ON audit_log (account_id, id DESC);

-- list filters the API offers (assignee, team, label)
CREATE INDEX conversations_assignee ON conversations (account_id, assignee_id, last_activity_at DESC);
CREATE INDEX conversations_labels ON conversations USING gin (labels);
CREATE INDEX contacts_name ON contacts (account_id, lower(name) text_pattern_ops);
