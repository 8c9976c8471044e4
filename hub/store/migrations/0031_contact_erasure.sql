-- Erasure of a person's data (hub/actions/erasure.py): when it happened, on the contact row that
-- stays (anonymised) so conversations keep their owner and a second request is refused.
ALTER TABLE contacts ADD COLUMN erased_at timestamptz;

-- An event envelope with its payload's personal content blanked: message text and attachments,
-- a contact's name and identities, a caller's number, DTMF digits, a provider's error text. Only
-- keys the payload has are touched, so every consumer still decodes the event. Used on the copies
-- of events the hub keeps (event_log, realtime_events, outbox).
CREATE FUNCTION hub_erase_event(e jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(e -> 'payload') <> 'object' THEN e ELSE
        jsonb_set(e, '{payload}', (
            SELECT coalesce(jsonb_object_agg(key, CASE
                       WHEN key IN ('content', 'name', 'error_message', 'template') THEN 'null'::jsonb
                       WHEN key IN ('attachments', 'identities') THEN '[]'::jsonb
                       WHEN key IN ('number', 'digit', 'target') THEN '""'::jsonb
                       ELSE value END), '{}'::jsonb)
              FROM jsonb_each(e -> 'payload')))
    END
$$;
