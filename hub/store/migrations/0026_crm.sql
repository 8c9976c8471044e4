-- The CRM: typed attribute definitions per account, companies that contacts belong to, notes on
-- contacts. Merging reuses contacts.merged_into (0001) as the redirect from a merged contact to
-- the one it was folded into.

CREATE TABLE contact_attribute_definitions (
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    key         text NOT NULL,
    label       text NOT NULL,
    type        text NOT NULL
                CHECK (type IN ('text', 'number', 'date', 'list', 'checkbox', 'link')),
    -- the allowed values of a 'list' attribute
    options     text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE TABLE companies (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    name        text NOT NULL,
    domain      text,
    attributes  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX companies_account ON companies (account_id, id);
CREATE UNIQUE INDEX companies_domain ON companies (account_id, domain) WHERE domain IS NOT NULL;

ALTER TABLE contacts ADD COLUMN company_id text COLLATE "C" REFERENCES companies(id);
CREATE INDEX contacts_company ON contacts (company_id) WHERE company_id IS NOT NULL;

CREATE TABLE contact_notes (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts(id),
    contact_id  text COLLATE "C" NOT NULL REFERENCES contacts(id),
    author_type text NOT NULL,
    author_id   text COLLATE "C",
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_notes_contact ON contact_notes (contact_id, id);
