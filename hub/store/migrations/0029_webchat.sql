-- Ratings a contact gives a resolved conversation (the web chat widget's CSAT): one per
-- conversation; the event conversation.rated carries the same for the analytics part.
CREATE TABLE conversation_ratings (
    conversation_id  text COLLATE "C" PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts(id),
    inbox_id         text COLLATE "C" NOT NULL REFERENCES inboxes(id),
    contact_id       text COLLATE "C" NOT NULL,
    rating           smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment          text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_ratings_account ON conversation_ratings (account_id, created_at);
