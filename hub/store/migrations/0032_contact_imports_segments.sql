-- CSV imports of contacts (crm/importer.py). A job per (account, file content): each batch of rows
-- commits its contacts, its row errors and the job's rows_committed in one transaction, so an
-- import that stopped (a crash, a killed command) resumes after the last committed row and never
-- applies a row twice.
CREATE TABLE contact_imports (
    id              text COLLATE "C" PRIMARY KEY,
    account_id      text COLLATE "C" NOT NULL REFERENCES accounts(id),
    filename        text NOT NULL,
    sha256          text NOT NULL,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    -- the number of the last row (the header is row 1) whose batch committed
    rows_committed  bigint NOT NULL DEFAULT 1,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE UNIQUE INDEX contact_imports_file ON contact_imports (account_id, sha256);

-- Rows an import could not take, and why: the per-row error report.
CREATE TABLE contact_import_errors (
    import_id  text COLLATE "C" NOT NULL REFERENCES contact_imports(id) ON DELETE CASCADE,
    row        bigint NOT NULL,
    "column"   text NOT NULL,
    reason     text NOT NULL,
    PRIMARY KEY (import_id, row)  -- one error per row: the first found
);

-- Segments (crm/segments.py): saved filters over contacts, counted and listed on demand.
CREATE TABLE segments (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    filter      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segments_account ON segments (account_id, id);

-- what segment filters (and the contact list's attribute filter) read: attribute containment
CREATE INDEX contacts_attributes ON contacts USING gin (attributes jsonb_path_ops);
-- the live (not merged) contacts of an account, newest first: counted by an index-only scan
CREATE INDEX contacts_live ON contacts (account_id, id) WHERE merged_into IS NULL;
