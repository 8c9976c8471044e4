-- Threads a channel can name, and the state of email mailboxes the hub reads.

-- A message's weaker thread key (email: its subject without Re:/Fwd: prefixes): ingest joins a
-- contact's new message to the conversation of their latest message with the same key, within a
-- window the channel gives (hub.contracts.channel.ThreadHint). Stronger references (In-Reply-To,
-- References) are provider message ids, found through messages_provider_id.
ALTER TABLE messages ADD COLUMN thread_key text;
CREATE INDEX messages_thread_key ON messages (inbox_id, thread_key, created_at DESC)
    WHERE thread_key IS NOT NULL;

-- Where the IMAP reader of an email inbox is: the folder's UIDVALIDITY and the last UID it has
-- handled (stored after the mail is ingested, so a restart backfills exactly what arrived
-- meanwhile), and the last error (a login refused, a server gone), shown by the inbox API.
CREATE TABLE email_mailboxes (
    inbox_id     text COLLATE "C" PRIMARY KEY REFERENCES inboxes(id) ON DELETE CASCADE,
    folder       text NOT NULL,
    uidvalidity  bigint,
    last_uid     bigint NOT NULL DEFAULT 0,
    error        text,
    error_at     timestamptz,
    checked_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Mail that could not be taken in (unreadable, refused by the store's limits): recorded, one row
-- per mail, while the mailbox keeps flowing.
CREATE TABLE email_rejects (
    inbox_id     text COLLATE "C" NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    uidvalidity  bigint NOT NULL,
    uid          bigint NOT NULL,
    message_id   text,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox_id, uidvalidity, uid)
);
