-- The conversation list's filters and sorts, each served by an index in its own order (the
-- cursor is the sort key and the id, so every index ends with id); contact search; media.

-- priority as a number for sorting: urgent first, no priority last
ALTER TABLE conversations ADD COLUMN priority_rank smallint NOT NULL GENERATED ALWAYS AS (
    CASE priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2
                  WHEN 'low' THEN 1 ELSE 0 END) STORED;

-- 0006's assignee index lacked the id tie-breaker the cursor needs
DROP INDEX conversations_assignee;
CREATE INDEX conversations_assignee
    ON conversations (account_id, assignee_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_status
    ON conversations (account_id, status, last_activity_at DESC, id DESC);
CREATE INDEX conversations_inbox_activity
    ON conversations (inbox_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_team
    ON conversations (account_id, team_id, last_activity_at DESC, id DESC)
    WHERE team_id IS NOT NULL;
CREATE INDEX conversations_account_created
    ON conversations (account_id, created_at DESC, id DESC);
CREATE INDEX conversations_account_priority
    ON conversations (account_id, priority_rank DESC, last_activity_at DESC, id DESC);
-- a contact's conversations (name search, and the check before a contact is deleted)
CREATE INDEX conversations_contact ON conversations (contact_id);

-- contact search by address prefix, whatever the channel
CREATE INDEX contact_identities_address
    ON contact_identities (account_id, lower(address) text_pattern_ops);
CREATE INDEX contacts_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL;

-- Files agents attached to messages. The file itself is in the media store under ``key``
-- (hub/media.py); the row says which message (so which inbox) it belongs to, and how to serve it.
CREATE TABLE media (
    key           text COLLATE "C" PRIMARY KEY,
    account_id    text COLLATE "C" NOT NULL REFERENCES accounts(id),
    message_id    text COLLATE "C" NOT NULL REFERENCES messages(id),
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_message ON media (message_id);

-- The inbox counters (unresolved conversations per inbox, status and assignee) that the list and
-- every realtime event carry, kept by triggers in the same transaction as the change, so reading
-- them costs a few rows instead of counting every open conversation of the account. Deltas are
-- applied per statement in key order (so two writers lock counter rows in the same order); a
-- statement that moves no conversation between keys (a new message) writes nothing here.
CREATE TABLE conversation_counts (
    inbox_id     text COLLATE "C" NOT NULL,
    status       text NOT NULL,
    assignee_id  text COLLATE "C" NOT NULL,  -- '' for unassigned
    n            bigint NOT NULL,
    PRIMARY KEY (inbox_id, status, assignee_id)
);

INSERT INTO conversation_counts (inbox_id, status, assignee_id, n)
SELECT inbox_id, status, coalesce(assignee_id, ''), count(*)
  FROM conversations WHERE status <> 'resolved'
 GROUP BY 1, 2, 3;

CREATE FUNCTION conversation_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_counts AS cc (inbox_id, status, assignee_id, n)
        SELECT inbox_id, status, coalesce(assignee_id, ''), count(*)
          FROM new_rows WHERE status <> 'resolved'
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (inbox_id, status, assignee_id) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO conversation_counts AS cc (inbox_id, status, assignee_id, n)
        SELECT inbox_id, status, assignee_id, sum(d)
          FROM (SELECT o.inbox_id, o.status, coalesce(o.assignee_id, '') AS assignee_id, -1 AS d
                  FROM old_rows o WHERE o.status <> 'resolved'
                UNION ALL
                SELECT w.inbox_id, w.status, coalesce(w.assignee_id, ''), 1
                  FROM new_rows w WHERE w.status <> 'resolved') moved
         GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (inbox_id, status, assignee_id) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSE
        INSERT INTO conversation_counts AS cc (inbox_id, status, assignee_id, n)
        SELECT inbox_id, status, coalesce(assignee_id, ''), -count(*)
          FROM old_rows WHERE status <> 'resolved'
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (inbox_id, status, assignee_id) DO UPDATE SET n = cc.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
CREATE TRIGGER conversation_counts_update AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_counts_apply();
