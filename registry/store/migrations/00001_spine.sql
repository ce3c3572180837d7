-- The spine: sites and their devices, staff users and their sessions, the
-- segment index, segment checks and the audit log. Issue 4 adds councils,
-- centers, qualifications and exams in later migrations; sites.id and
-- users.org_id are text ids so that those organisations can take the same
-- form and become foreign keys then.

-- +goose Up
CREATE TABLE sites (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    site        text NOT NULL REFERENCES sites (id),
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    kind        text NOT NULL CHECK (kind IN ('room', 'webcam', 'screen')),
    -- Hex SHA-256 of the publish secret. The secret is 32 random bytes, so a
    -- fast hash is enough: there is nothing to guess.
    secret_hash text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (site, name)
);

CREATE TABLE users (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login                text NOT NULL UNIQUE,
    role                 text NOT NULL CHECK (role IN ('nark', 'council', 'center', 'site', 'expert')),
    org_id               text,
    -- PHC string of an argon2id hash.
    password_hash        text NOT NULL,
    must_change_password boolean NOT NULL DEFAULT true,
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    disabled             boolean NOT NULL DEFAULT false
);

CREATE TABLE sessions (
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- One row per SegmentClosed event, keyed by segment_id: the same event twice
-- is one row. No foreign key to devices: evidence is indexed whatever became
-- of the device that recorded it.
CREATE TABLE segments (
    segment_id    text PRIMARY KEY,
    stream_id     text NOT NULL,
    source        text NOT NULL,
    site          text NOT NULL,
    device        text NOT NULL,
    sequence      bigint NOT NULL,
    start_at      timestamptz NOT NULL,
    duration      double precision NOT NULL CHECK (duration > 0),
    -- start_at + duration, kept so that overlap queries need no arithmetic.
    end_at        timestamptz NOT NULL,
    codecs        text[] NOT NULL DEFAULT '{}',
    bytes         bigint NOT NULL,
    sha256        text NOT NULL,
    prev_chain    text NOT NULL,
    chain         text NOT NULL,
    object_key    text NOT NULL,
    init_key      text NOT NULL,
    init_sha256   text NOT NULL,
    init_bytes    bigint NOT NULL,
    ingest_node   text NOT NULL,
    discontinuity boolean NOT NULL DEFAULT false,
    salvaged      boolean NOT NULL DEFAULT false,
    indexed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segments_stream_start ON segments (stream_id, start_at);
CREATE INDEX segments_object_key ON segments (object_key);
CREATE INDEX segments_init_key ON segments (init_key);

-- Results of the archiver's checks of stored segments, one row per check.
-- No foreign key to segments: the archiver may check a segment before the
-- registry has indexed it.
CREATE TABLE segment_checks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    segment_id text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    ok         boolean NOT NULL,
    detail     text NOT NULL DEFAULT '',
    checker    text NOT NULL
);
CREATE INDEX segment_checks_segment_id ON segment_checks (segment_id, checked_at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    actor_login text NOT NULL DEFAULT '',
    action      text NOT NULL,
    object      text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    purpose     text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The audit log is append-only: updating, deleting or truncating it fails,
-- whoever tries.
-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE segment_checks;
DROP TABLE segments;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE devices;
DROP TABLE sites;
