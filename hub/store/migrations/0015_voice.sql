-- Voice: SIP calls. A call is a conversation item: its first row is a message of content type
-- 'call' (so the call threads into the caller's conversation like any message, deduplicated on
-- the SIP Call-ID), and its progress is call.* events on the conversation's timeline. This table
-- holds the call's current state, what routing and the API read.

-- the agent's phone: a SIP URI (a 3CX or Asterisk extension) the hub rings to connect a call
ALTER TABLE users ADD COLUMN sip_uri text;

CREATE TABLE calls (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts(id),
    inbox_id         text COLLATE "C" NOT NULL REFERENCES inboxes(id),
    conversation_id  text COLLATE "C" NOT NULL REFERENCES conversations(id),
    contact_id       text COLLATE "C" NOT NULL REFERENCES contacts(id),
    -- the 'call' message that put the call on the timeline (recordings hang off it)
    message_id       text COLLATE "C" REFERENCES messages(id),
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sip_call_id      text NOT NULL,
    -- the caller (inbound) or the called (outbound) number, E.164 when it parses
    number           text NOT NULL,
    state            text NOT NULL CHECK (state IN ('requested', 'ringing', 'offered', 'connecting',
                                                    'answered', 'voicemail', 'ended')),
    -- the agent the call is offered to or connected with
    agent_id         text COLLATE "C" REFERENCES users(id),
    team_id          text COLLATE "C" REFERENCES teams(id),
    -- agents who declined or let it ring out, not offered again
    tried            text[] NOT NULL DEFAULT '{}',
    offered_at       timestamptz,
    answered_at      timestamptz,
    ended_at         timestamptz,
    duration_ms      bigint,
    hangup_cause     text,
    recording_key    text COLLATE "C",
    voicemail_key    text COLLATE "C",
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (inbox_id, sip_call_id)
);
CREATE INDEX calls_conversation ON calls (conversation_id, created_at);
-- routing: who is on a call now, and who was offered one last
CREATE INDEX calls_active_agent ON calls (account_id, agent_id) WHERE state <> 'ended';
CREATE INDEX calls_agent_offered ON calls (agent_id, offered_at DESC) WHERE agent_id IS NOT NULL;

-- registration of each SIP account of a voice inbox, as the voice process last saw it
CREATE TABLE sip_registrations (
    inbox_id      text COLLATE "C" NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    account_uri   text NOT NULL,
    registered    boolean NOT NULL,
    status_code   int,
    reason        text,
    expires_s     int,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox_id, account_uri)
);
