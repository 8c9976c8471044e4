-- Core schema: accounts, inboxes, contacts and their channel identities, conversations, messages,
-- the transactional outbox, API tokens, consumer idempotency and the event log.
-- Ids are ULID strings (sortable by creation time); "C" collation keeps comparisons bytewise.

CREATE TABLE accounts (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inboxes (
    id              text COLLATE "C" PRIMARY KEY,
    account_id      text COLLATE "C" NOT NULL REFERENCES accounts(id),
    channel         text NOT NULL,
    name            text NOT NULL,
    -- what happens when a contact of a resolved conversation writes again
    reopen_policy   text NOT NULL DEFAULT 'reopen' CHECK (reopen_policy IN ('reopen', 'new')),
    settings        jsonb NOT NULL DEFAULT '{}',
    -- channel credentials, Fernet-encrypted JSON; never stored or logged in clear
    secrets         bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inboxes_account ON inboxes (account_id);

CREATE TABLE contacts (
    id           text COLLATE "C" PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name         text,
    attributes   jsonb NOT NULL DEFAULT '{}',
    merged_into  text COLLATE "C" REFERENCES contacts(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_account ON contacts (account_id, id);

CREATE TABLE contact_identities (
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    channel     text NOT NULL,
    address     text NOT NULL,
    -- deferred so an identity can claim its address before its new contact row is written
    contact_id  text COLLATE "C" NOT NULL REFERENCES contacts(id) DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, channel, address)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE conversations (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts(id),
    inbox_id         text COLLATE "C" NOT NULL REFERENCES inboxes(id),
    contact_id       text COLLATE "C" NOT NULL REFERENCES contacts(id),
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    assignee_id      text COLLATE "C",
    team_id          text COLLATE "C",
    labels           text[] NOT NULL DEFAULT '{}',
    priority         text CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    snoozed_until    timestamptz,
    messages_count   integer NOT NULL DEFAULT 0,
    last_message_at  timestamptz,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- at most one unresolved conversation per contact and inbox: the threading rule, enforced
CREATE UNIQUE INDEX conversations_one_open
    ON conversations (inbox_id, contact_id) WHERE status <> 'resolved';
CREATE INDEX conversations_latest ON conversations (inbox_id, contact_id, created_at DESC);
CREATE INDEX conversations_account_activity
    ON conversations (account_id, last_activity_at DESC, id DESC);

CREATE TABLE messages (
    id                   text COLLATE "C" PRIMARY KEY,
    account_id           text COLLATE "C" NOT NULL REFERENCES accounts(id),
    conversation_id      text COLLATE "C" NOT NULL REFERENCES conversations(id),
    inbox_id             text COLLATE "C" NOT NULL REFERENCES inboxes(id),
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    private              boolean NOT NULL DEFAULT false,
    sender_type          text NOT NULL CHECK (sender_type IN ('contact', 'agent', 'system', 'integration')),
    sender_id            text COLLATE "C",
    content              text,
    content_type         text NOT NULL DEFAULT 'text',
    attachments          jsonb NOT NULL DEFAULT '[]',
    provider_message_id  text,
    status               text NOT NULL
                         CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
    error_code           text,
    error_message        text,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- a provider's retry of the same message can never store it twice
CREATE UNIQUE INDEX messages_provider_id ON messages (inbox_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- Transactional outbox. seq is assigned under an advisory lock held to commit (see
-- hub/store/outbox.py), so seq order is commit order and the relay can never skip a row.
CREATE TABLE outbox (
    seq         bigint PRIMARY KEY,
    event_id    text COLLATE "C" NOT NULL,
    type        text NOT NULL,
    correlation_id text NOT NULL,
    topic       text NOT NULL,
    key         text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE outbox_seq AS bigint;

-- Event ids a consumer has applied, so a redelivered event has no second effect.
CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      text COLLATE "C" NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Per consumer group progress for backends that keep it in the database.
CREATE TABLE consumer_offsets (
    group_name  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, topic, partition)
);

-- Every event that crossed the bus, written by the journal consumer: the audit trail and the
-- source of system items (assigned, resolved, reopened) on a conversation's timeline.
CREATE TABLE event_log (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C",
    type             text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    -- json, not jsonb: written for every event, read rarely, so the cheaper type to write
    event            json NOT NULL
);
CREATE INDEX event_log_conversation ON event_log (conversation_id, id) WHERE conversation_id IS NOT NULL;

CREATE TABLE api_tokens (
    id            text COLLATE "C" PRIMARY KEY,
    account_id    text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('administrator', 'supervisor', 'agent')),
    -- sha256 of the token; the token itself is shown once and never stored
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
