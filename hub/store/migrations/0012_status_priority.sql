-- "Open conversations, most urgent first" is the console's common view. Over time most
-- conversations are resolved, so walking the account-wide priority index to find the few open
-- ones reads a long stretch of resolved rows; this index starts at the status instead.
CREATE INDEX conversations_status_priority
    ON conversations (account_id, status, priority_rank DESC, last_activity_at DESC, id DESC);
