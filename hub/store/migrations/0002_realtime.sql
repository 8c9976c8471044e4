-- The realtime replay log: every event an agent's socket may receive, numbered per account in
-- commit order (allocated under a per-account advisory lock held to commit), kept for replay after
-- a reconnect. Trimmed to the newest N events per account.
CREATE TABLE realtime_events (
    account_id       text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    event_id         text COLLATE "C" NOT NULL UNIQUE,
    inbox_id         text COLLATE "C",
    conversation_id  text COLLATE "C",
    type             text NOT NULL,
    event            json NOT NULL,
    PRIMARY KEY (account_id, seq)
);
