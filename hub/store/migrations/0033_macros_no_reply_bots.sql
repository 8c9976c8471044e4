-- Automation, continued: macros get a visible reason when the hub turns one off; the rule
-- trigger "no reply for N minutes" and its durable waits; agent bots per inbox and the handoff
-- of a conversation from the bot to the human queue.
ALTER TABLE macros
    ADD COLUMN disabled_reason text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- minutes without an agent's reply after which a `no_reply` rule fires
ALTER TABLE automation_rules ADD COLUMN wait_minutes integer CHECK (wait_minutes > 0);

-- one row per conversation, no_reply rule and waiting period (from a customer's message that
-- nobody answered yet until an agent's reply closes it); the timer fires a row once
CREATE TABLE automation_no_reply_waits (
    conversation_id  text COLLATE "C" NOT NULL,
    rule_id          text COLLATE "C" NOT NULL REFERENCES automation_rules(id) ON DELETE CASCADE,
    account_id       text COLLATE "C" NOT NULL,
    waiting_since    timestamptz NOT NULL,
    cause_event_id   text COLLATE "C" NOT NULL,
    due_at           timestamptz NOT NULL,
    fired_at         timestamptz,
    closed_at        timestamptz,
    PRIMARY KEY (conversation_id, rule_id, waiting_since)
);
-- at most one open waiting period per conversation and rule
CREATE UNIQUE INDEX automation_no_reply_open ON automation_no_reply_waits (conversation_id, rule_id)
    WHERE closed_at IS NULL;
CREATE INDEX automation_no_reply_due ON automation_no_reply_waits (due_at)
    WHERE fired_at IS NULL AND closed_at IS NULL;

-- an inbox whose new conversations go to a bot first (over an outgoing webhook subscription);
-- the bot answers with its own API token
CREATE TABLE inbox_bots (
    inbox_id    text COLLATE "C" PRIMARY KEY REFERENCES inboxes(id) ON DELETE CASCADE,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    webhook_id  text COLLATE "C" NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    token_id    text COLLATE "C" NOT NULL REFERENCES api_tokens(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- conversations a bot handed over to people (from then on assignment treats them as usual)
CREATE TABLE bot_handoffs (
    conversation_id  text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    inbox_id         text COLLATE "C" NOT NULL,
    handed_off_at    timestamptz NOT NULL DEFAULT now(),
    actor_id         text
);
