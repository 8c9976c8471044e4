-- Realtime presence shared by the hub's processes when they share PostgreSQL but no Redis (the
-- embedded default split into a gateway and worker processes, HUB_WORKER_PROCESSES): which process
-- holds which agent socket, each agent's chosen status, and each process's heartbeat, so that
-- another process can remove the sockets of one that died without saying goodbye
-- (realtime/cluster/postgres.py). Wake-ups go over LISTEN/NOTIFY and are not stored.
--
-- UNLOGGED: like Redis, this is state of the running processes, not data. After a crash of the
-- server the tables come back empty and every process writes its own sockets back.

CREATE UNLOGGED TABLE realtime_procs (
    proc text PRIMARY KEY,
    alive_until timestamptz NOT NULL
);

CREATE UNLOGGED TABLE realtime_sockets (
    proc text NOT NULL,
    sid text NOT NULL,
    account_id text NOT NULL,
    agent_id text NOT NULL,
    PRIMARY KEY (proc, sid)
);
CREATE INDEX realtime_sockets_agent ON realtime_sockets (account_id, agent_id);

CREATE UNLOGGED TABLE realtime_presence (
    account_id text NOT NULL,
    agent_id text NOT NULL,
    status text NOT NULL,
    PRIMARY KEY (account_id, agent_id)
);
