-- What a channel learnt about a conversation beyond its messages, kept on the conversation
-- ({"start_payload": "..."}: the payload of a Telegram deep link /start). The API returns it with
-- the conversation; the event conversation.attributes_changed announces a change.
ALTER TABLE conversations ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- A contact's message they changed afterwards (Telegram edited_message, Meta message_edit):
-- content is the newest text, edited_at when it was written, edits every edit applied
-- ([{"edit_id": ..., "edited_at": ..., "previous_content": ...}], oldest first). NULL: never
-- edited.
ALTER TABLE messages ADD COLUMN edited_at timestamptz, ADD COLUMN edits jsonb;
