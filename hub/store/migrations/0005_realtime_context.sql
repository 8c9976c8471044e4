-- What the inbox list shows, as of when an event was logged: the conversation's list row and its
-- inbox's counters. Sent with the event so a console never re-fetches a summary on an event.
ALTER TABLE realtime_events ADD COLUMN context json;
