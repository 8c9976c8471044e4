-- An account setting: callers limited to some inboxes (agents, supervisors) see only the contacts
-- that have a conversation in one of those inboxes (REST and the realtime stream). Off: every
-- contact of the account, as before.
ALTER TABLE accounts ADD COLUMN contacts_by_inbox boolean NOT NULL DEFAULT false;
