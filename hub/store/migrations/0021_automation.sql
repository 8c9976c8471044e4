-- Automation (automation/): outgoing webhooks, rules and automatic assignment. These tables
-- belong to the automation part; it changes conversations only through hub/actions.

-- Outgoing webhooks: what an account subscribed to, and every delivery owed to a receiver.
-- `secret` is sealed with hub.secrets (like channel credentials).
CREATE TABLE webhook_subscriptions (
    id           text COLLATE "C" PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name         text NOT NULL,
    url          text NOT NULL,
    event_types  text[] NOT NULL,
    secret       bytea NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_account ON webhook_subscriptions (account_id);

-- One row per (subscription, event) owed. The sender takes a pending row only when no earlier
-- pending row of the same subscription and order key (the conversation) exists, so a receiver
-- sees a conversation's events in order; `leased_until` marks a send in flight.
CREATE TABLE webhook_deliveries (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    subscription_id  text COLLATE "C" NOT NULL REFERENCES webhook_subscriptions(id)
                                               ON DELETE CASCADE,
    dedupe_key       text COLLATE "C" NOT NULL,
    event_id         text COLLATE "C" NOT NULL,
    event_type       text NOT NULL,
    order_key        text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    body             bytea NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (subscription_id, dedupe_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (subscription_id, order_key, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (subscription_id, state, id);

-- Rules: evaluated in `position` order per account and trigger. `disabled_reason` says why the
-- hub turned a rule off (an action that stopped working, a pattern that ran too long).
CREATE TABLE automation_rules (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name             text NOT NULL,
    position         integer NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    trigger          text NOT NULL,
    match            text NOT NULL DEFAULT 'all' CHECK (match IN ('all', 'any')),
    conditions       jsonb NOT NULL DEFAULT '[]',
    actions          jsonb NOT NULL DEFAULT '[]',
    stop_processing  boolean NOT NULL DEFAULT false,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX automation_rules_account ON automation_rules (account_id, trigger, position);

-- Which rules fired on which event, and how deep in a chain of rule-made changes that event
-- was (loop protection reads the depth of the event that caused the next one).
CREATE TABLE automation_rule_runs (
    event_id         text COLLATE "C" NOT NULL,
    rule_id          text COLLATE "C" NOT NULL,
    account_id       text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C",
    depth            integer NOT NULL,
    fired_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, rule_id)
);
CREATE INDEX automation_rule_runs_rule ON automation_rule_runs (rule_id, fired_at);

-- Automatic assignment per inbox, and the conversations waiting for a free agent (in order).
CREATE TABLE assignment_policies (
    inbox_id       text COLLATE "C" PRIMARY KEY REFERENCES inboxes(id) ON DELETE CASCADE,
    account_id     text COLLATE "C" NOT NULL REFERENCES accounts(id),
    strategy       text NOT NULL CHECK (strategy IN ('round_robin', 'least_busy')),
    capacity       integer CHECK (capacity IS NULL OR capacity > 0),
    only_online    boolean NOT NULL DEFAULT true,
    last_agent_id  text COLLATE "C",
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assignment_queue (
    conversation_id  text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    inbox_id         text COLLATE "C" NOT NULL,
    position         bigserial NOT NULL,
    queued_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignment_queue_inbox ON assignment_queue (inbox_id, position);
