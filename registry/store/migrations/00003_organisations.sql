-- The НОК organisations: councils (СПК) with their appeals commission,
-- qualifications with their certificate validity and assessment tools,
-- assessment centers (ЦОК) authorised by a council for a list of
-- qualifications, and the exam sites (ЭП) of a center, which the spine's
-- sites table becomes. Ids are the same kind of name as site ids: they appear
-- in URLs, and users.org_id refers to them by role.

-- +goose Up
CREATE TABLE councils (
    id                 text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name               text NOT NULL CHECK (name <> ''),
    -- The appeals commission (апелляционная комиссия): a result may not be
    -- entered while it has no members, postal address, e-mail or phone.
    commission_members text[] NOT NULL DEFAULT '{}',
    commission_address text NOT NULL DEFAULT '',
    commission_email   text NOT NULL DEFAULT '',
    commission_phones  text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A qualification of the national register, developed and kept by one
-- council; its certificate is valid for validity_years.
CREATE TABLE qualifications (
    code           text PRIMARY KEY CHECK (code ~ '^[0-9A-Za-z][0-9A-Za-z._-]{0,62}$'),
    council_id     text NOT NULL REFERENCES councils (id),
    name           text NOT NULL CHECK (name <> ''),
    validity_years integer NOT NULL CHECK (validity_years BETWEEN 1 AND 10),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX qualifications_council ON qualifications (council_id);

-- Assessment tools (оценочные средства) of a qualification: a reference in
-- the register and where to find them.
CREATE TABLE assessment_tools (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qualification_code text NOT NULL REFERENCES qualifications (code) ON DELETE CASCADE,
    reference          text NOT NULL CHECK (reference <> ''),
    link               text NOT NULL DEFAULT '',
    added_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (qualification_code, reference)
);

CREATE TABLE centers (
    id             text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    council_id     text NOT NULL REFERENCES councils (id),
    name           text NOT NULL CHECK (name <> ''),
    -- Required details: a result may not be entered while one is missing.
    head           text NOT NULL DEFAULT '',
    website        text NOT NULL DEFAULT '',
    legal_address  text NOT NULL DEFAULT '',
    postal_address text NOT NULL DEFAULT '',
    email          text NOT NULL DEFAULT '',
    phones         text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX centers_council ON centers (council_id);

-- The qualifications a center's council authorised it to assess.
CREATE TABLE center_qualifications (
    center_id          text NOT NULL REFERENCES centers (id),
    qualification_code text NOT NULL REFERENCES qualifications (code),
    authorised_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (center_id, qualification_code)
);

-- A site of the spine has no center: it stays visible to NARK only until
-- `nokstream org add site <id> --center <center>` gives it one.
ALTER TABLE sites
    ADD COLUMN center_id  text REFERENCES centers (id),
    ADD COLUMN name       text NOT NULL DEFAULT '',
    ADD COLUMN address    text NOT NULL DEFAULT '',
    ADD COLUMN email      text NOT NULL DEFAULT '',
    ADD COLUMN phones     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX sites_center ON sites (center_id);

CREATE INDEX users_org ON users (org_id) WHERE org_id IS NOT NULL;

-- +goose Down
DROP INDEX users_org;
ALTER TABLE sites
    DROP COLUMN center_id, DROP COLUMN name, DROP COLUMN address,
    DROP COLUMN email, DROP COLUMN phones, DROP COLUMN updated_at;
DROP TABLE center_qualifications;
DROP TABLE centers;
DROP TABLE assessment_tools;
DROP TABLE qualifications;
DROP TABLE councils;
