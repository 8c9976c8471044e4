-- An inbox an administrator switched off: its webhooks are refused (410 inbox_disabled), its
-- mailbox and SIP lines are not read, nothing is sent through it; its conversations stay
-- readable. NULL: enabled.
ALTER TABLE inboxes ADD COLUMN disabled_at timestamptz;
