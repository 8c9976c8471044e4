-- The snooze timer asks "which snoozed conversations are due, and when is the next one" every
-- second or so: a small partial index answers both without touching the other conversations.
CREATE INDEX IF NOT EXISTS conversations_snooze_due
    ON conversations (snoozed_until) WHERE status = 'snoozed';
