-- Agent replies and notes carry the client's idempotency key, so a retried send never makes a
-- second message.
ALTER TABLE messages ADD COLUMN client_message_id text;
CREATE UNIQUE INDEX messages_client_id ON messages (account_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
