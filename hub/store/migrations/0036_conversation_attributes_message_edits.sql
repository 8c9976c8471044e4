-- What a channel learnt about a conversation beyond its messages, kept on the conversation
-- ({"start_payload": "..."}: the payload of a Telegram deep link /start). The API returns it with
-- the conversation; the event conversation.attributes_changed announces a change.
ALTER TABLE conversations ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- A contact's message they changed afterwards (Telegram edited_message, Meta message_edit):
-- content is the newest text, edited_at when it was written, edits every edit applied
-- ([{"edit_id": ..., "edited_at": ..., "previous_content": ...}], oldest first). NULL: never
-- edited.
ALTER TABLE messages ADD COLUMN edited_at timestamptz, ADD COLUMN edits jsonb;

-- Erasure also blanks what the new events carry: message.edited's previous_content and
-- conversation.attributes_changed's attributes (a deep link's payload, a reply address).
CREATE OR REPLACE FUNCTION hub_erase_event(e jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(e -> 'payload') <> 'object' THEN e ELSE
        jsonb_set(e, '{payload}', (
            SELECT coalesce(jsonb_object_agg(key, CASE
                       WHEN key IN ('content', 'previous_content', 'name', 'error_message',
                                    'template') THEN 'null'::jsonb
                       WHEN key IN ('attachments', 'identities') THEN '[]'::jsonb
                       WHEN key = 'attributes' THEN '{}'::jsonb
                       WHEN key IN ('number', 'digit', 'target') THEN '""'::jsonb
                       ELSE value END), '{}'::jsonb)
              FROM jsonb_each(e -> 'payload')))
    END
$$;
