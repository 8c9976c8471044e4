-- The archive (crm/archive/): the raw provider payload of every inbound webhook and each contact's
-- full profile document, written by the archive consumer off the hot path. These tables are the
-- embedded store; with MONGODB_URL set the documents go to MongoDB instead (erasure clears both).
-- Keyed by event id and contact id, so a redelivered event overwrites what it wrote, never adds.
CREATE TABLE archived_webhooks (
    event_id     text COLLATE "C" PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL,
    contact_id   text COLLATE "C" NOT NULL,
    message_id   text COLLATE "C" NOT NULL,
    inbox_id     text COLLATE "C" NOT NULL,
    channel      text NOT NULL,
    received_at  timestamptz NOT NULL,
    document     jsonb NOT NULL
);
CREATE INDEX archived_webhooks_contact ON archived_webhooks (account_id, contact_id);

CREATE TABLE archived_profiles (
    contact_id   text COLLATE "C" PRIMARY KEY,
    account_id   text COLLATE "C" NOT NULL,
    -- the event that last wrote it
    event_id     text COLLATE "C" NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    document     jsonb NOT NULL
);
CREATE INDEX archived_profiles_account ON archived_profiles (account_id);

-- message.webhook carries the webhook that brought a message (provider_payload): erasure blanks it
-- in the stored copies of events like the message text (and keeps 0036's previous_content and
-- attributes).
CREATE OR REPLACE FUNCTION hub_erase_event(e jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(e -> 'payload') <> 'object' THEN e ELSE
        jsonb_set(e, '{payload}', (
            SELECT coalesce(jsonb_object_agg(key, CASE
                       WHEN key IN ('content', 'previous_content', 'name', 'error_message',
                                    'template', 'provider_payload') THEN 'null'::jsonb
                       WHEN key IN ('attachments', 'identities') THEN '[]'::jsonb
                       WHEN key = 'attributes' THEN '{}'::jsonb
                       WHEN key IN ('number', 'digit', 'target') THEN '""'::jsonb
                       ELSE value END), '{}'::jsonb)
              FROM jsonb_each(e -> 'payload')))
    END
$$;
