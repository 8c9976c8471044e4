-- What a channel learnt about a conversation beyond its messages, kept on the conversation
-- ({"start_payload": "..."}: the payload of a Telegram deep link /start). The API returns it with
-- the conversation; the event conversation.attributes_changed announces a change.
ALTER TABLE conversations ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';
