-- Automation (automation/): business hours and the out-of-office reply per inbox, SLA policies and
-- their clocks. The clocks are durable timers: the instants they fire at are in their rows, taken
-- with FOR UPDATE SKIP LOCKED, and a fired warning or breach is marked in the same transaction as
-- its event.
CREATE TABLE inbox_business_hours (
    inbox_id          text COLLATE "C" PRIMARY KEY REFERENCES inboxes(id) ON DELETE CASCADE,
    account_id        text COLLATE "C" NOT NULL REFERENCES accounts(id),
    time_zone         text NOT NULL,
    spans             jsonb NOT NULL,
    holidays          date[] NOT NULL DEFAULT '{}',
    out_of_office     boolean NOT NULL DEFAULT false,
    out_of_office_message text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- one out-of-office reply per conversation and closed period (the instant the period began)
CREATE TABLE out_of_office_replies (
    conversation_id  text COLLATE "C" NOT NULL,
    closed_since     timestamptz NOT NULL,
    message_id       text COLLATE "C",
    replied_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, closed_since)
);

CREATE TABLE sla_policies (
    id                      text COLLATE "C" PRIMARY KEY,
    account_id              text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name                    text NOT NULL,
    inbox_ids               text[] NOT NULL DEFAULT '{}',
    priorities              text[] NOT NULL DEFAULT '{}',
    first_response_minutes  integer CHECK (first_response_minutes > 0),
    next_response_minutes   integer CHECK (next_response_minutes > 0),
    resolution_minutes      integer CHECK (resolution_minutes > 0),
    warning_minutes         integer NOT NULL DEFAULT 0 CHECK (warning_minutes >= 0),
    enabled                 boolean NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_policies_account ON sla_policies (account_id, created_at, id);

-- one clock per conversation, policy, metric and cycle (next_response starts a cycle per
-- customer message that waits for an answer)
CREATE TABLE sla_clocks (
    conversation_id  text COLLATE "C" NOT NULL,
    policy_id        text COLLATE "C" NOT NULL REFERENCES sla_policies(id) ON DELETE CASCADE,
    metric           text NOT NULL CHECK (metric IN ('first_response', 'next_response', 'resolution')),
    cycle            integer NOT NULL DEFAULT 0,
    account_id       text COLLATE "C" NOT NULL,
    inbox_id         text COLLATE "C" NOT NULL,
    started_at       timestamptz NOT NULL,
    warn_at          timestamptz,
    due_at           timestamptz NOT NULL,
    warned           boolean NOT NULL DEFAULT false,
    breached         boolean NOT NULL DEFAULT false,
    stopped_at       timestamptz,
    PRIMARY KEY (conversation_id, policy_id, metric, cycle)
);
CREATE INDEX sla_clocks_warn ON sla_clocks (warn_at) WHERE stopped_at IS NULL AND NOT warned;
CREATE INDEX sla_clocks_due ON sla_clocks (due_at) WHERE stopped_at IS NULL AND NOT breached;

-- macros: a named list of rule actions an agent runs on a conversation in one call
CREATE TABLE macros (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    actions     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
