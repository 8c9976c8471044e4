-- Each agent's last recorded presence status (online, busy, offline), written with the
-- agent.presence_changed event in one transaction (hub/actions/presence.py), so the event is
-- emitted once per real change however many processes see it, and so a hub that starts again after
-- a crash can record offline for agents still shown here as online that no live process holds.
-- Agent ids are principals' ids (users or API tokens), hence no foreign key.

CREATE TABLE agent_presence (
    account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
    agent_id   text COLLATE "C" NOT NULL,
    status     text NOT NULL CHECK (status IN ('online', 'busy', 'offline')),
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, agent_id)
);
CREATE INDEX agent_presence_not_offline ON agent_presence (account_id) WHERE status <> 'offline';
