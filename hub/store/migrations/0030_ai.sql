-- The AI part (ai/): what it found out about a message is kept on the message (automation and the
-- console read it there); its embedding index, intent examples, per-conversation sentiment and the
-- agents' use of suggestions are its own tables. Embeddings are real[] (pgvector is not on the
-- embedded server); the AI process searches them exactly in memory (BENCHMARKS.md, AI).

ALTER TABLE messages ADD COLUMN language text, ADD COLUMN sentiment real;

-- a customer's message as a vector: what an agent's next reply in the conversation answered
CREATE TABLE ai_message_vectors (
    message_id       text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C" NOT NULL,
    contact_id       text COLLATE "C",
    embedding        real[] NOT NULL
);
CREATE INDEX ai_message_vectors_conversation ON ai_message_vectors (conversation_id, message_id);
CREATE INDEX ai_message_vectors_contact ON ai_message_vectors (contact_id);

-- the reply suggestion index: an agent's reply, keyed by the vector of the message it answered
CREATE TABLE ai_replies (
    id               text COLLATE "C" PRIMARY KEY,  -- the reply's message id
    account_id       text COLLATE "C" NOT NULL,
    conversation_id  text COLLATE "C" NOT NULL,
    contact_id       text COLLATE "C",               -- the customer who was answered
    content          text NOT NULL,
    embedding        real[] NOT NULL
);
CREATE INDEX ai_replies_account ON ai_replies (account_id, id);
CREATE INDEX ai_replies_contact ON ai_replies (contact_id);
CREATE INDEX ai_replies_conversation ON ai_replies (conversation_id);

-- bumped by every erasure, so every AI process drops what it holds in memory for the account
CREATE TABLE ai_index_epochs (
    account_id  text COLLATE "C" PRIMARY KEY,
    epoch       bigint NOT NULL DEFAULT 0
);

-- an account's intent labels, each with a few example messages (few-shot)
CREATE TABLE ai_intents (
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    label       text NOT NULL,
    examples    text[] NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, label)
);

CREATE TABLE ai_conversations (
    conversation_id  text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    sentiment_trend  real,
    scored           integer NOT NULL DEFAULT 0,
    -- the last customer message's analysis (its suggestions, for the console to fetch)
    last_message_id  text COLLATE "C",
    last_analysis    jsonb
);

-- which suggestion an agent used: suggestions used before rank higher
CREATE TABLE ai_suggestion_uses (
    account_id       text COLLATE "C" NOT NULL,
    ref              text NOT NULL,   -- canned:<id> or reply:<message id>
    uses             integer NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, ref)
);
