-- How far each agent has read each conversation (unread counts and "seen" state in the console).
CREATE TABLE conversation_reads (
    account_id            text COLLATE "C" NOT NULL,
    agent_id              text COLLATE "C" NOT NULL,
    conversation_id       text COLLATE "C" NOT NULL REFERENCES conversations(id),
    last_read_message_id  text COLLATE "C" NOT NULL,
    read_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, conversation_id)
);
