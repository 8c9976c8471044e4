-- An inbox an administrator switched off: its webhooks are refused (410 inbox_disabled), its
-- mailbox and SIP lines are not read, nothing is sent through it; its conversations stay
-- readable. NULL: enabled.
ALTER TABLE inboxes ADD COLUMN disabled_at timestamptz;

-- An agent's email reply: the Cc and Bcc addresses and the subject it was sent with
-- ({"cc": [...], "bcc": [...], "subject": "..."}); NULL for every other message.
ALTER TABLE messages ADD COLUMN email jsonb;
