-- Outbound delivery and provider status reports (hub/consumers/delivery.py,
-- hub/actions/message_status.py).

-- When the delivery consumer handed a reply to its channel. A reply is given to a provider at
-- most once: one found queued with this set was interrupted mid-send and is failed by the sweep.
ALTER TABLE messages ADD COLUMN delivery_started_at timestamptz;
CREATE INDEX messages_delivery_interrupted ON messages (delivery_started_at)
    WHERE status = 'queued' AND delivery_started_at IS NOT NULL;

-- Status reports about a provider message id no message carries yet: a provider may call back
-- before its own API answer (with that id) reached the hub. Applied when the id is recorded;
-- reports about messages sent outside the hub are dropped after a day.
CREATE TABLE message_status_pending (
    inbox_id             text COLLATE "C" NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    provider_message_id  text NOT NULL,
    status               text NOT NULL,
    provider_status      text NOT NULL,
    error_code           text,
    error_message        text,
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox_id, provider_message_id, status)
);
CREATE INDEX message_status_pending_age ON message_status_pending (received_at);
