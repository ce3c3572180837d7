-- The archiver's own schema (issue 12): what it decides and does, and
-- nothing of the registry's. Migrate creates the schema `archiver` before
-- goose's version table archiver.goose_db_version; these migrations are
-- versioned apart from the registry's.
--
-- Until now these tables lived in the registry's schema (public), made by
-- the registry's migrations 00001 (segment_checks), 00020 (stream_chains,
-- archive_objects, seals) and 00095 (documents). They move here with their
-- rows, indexes and constraints. A fresh database takes the same path: the
-- registry's migrations run first (`nokstream migrate`, and every service
-- that migrates on start, runs the registry's and then the archiver's).

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stream_chains', 'archive_objects', 'seals', 'segment_checks'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL AND to_regclass('archiver.' || t) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA archiver', t);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The last segment of each stream the archiver has verified, so that the
-- next one can be checked against it.
CREATE TABLE IF NOT EXISTS archiver.stream_chains (
    stream_id  text PRIMARY KEY,
    sequence   bigint NOT NULL,
    chain      text NOT NULL CHECK (chain ~ '^[0-9a-f]{64}$'),
    segment_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every object the archiver keeps: raw segments, their init segments, the
-- transcoder's renditions and thumbnails of them, seals and evidence
-- documents. retain_until and legal_hold are what was applied to the blob
-- store (Object Lock on S3); decision holds the reasons, for `retention
-- explain`. The sweeper marks an object once it has expired (marked_at) and
-- deletes it after a delay (deleted_at); a deleted object's row stays, so
-- that "why was it deleted" has an answer.
CREATE TABLE IF NOT EXISTS archiver.archive_objects (
    object_key   text PRIMARY KEY,
    kind         text NOT NULL CONSTRAINT archive_objects_kind_check
                 CHECK (kind IN ('segment', 'init', 'rendition', 'seal', 'document')),
    stream_id    text NOT NULL DEFAULT '',
    site         text NOT NULL DEFAULT '',
    device       text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT '',
    sequence     bigint NOT NULL DEFAULT 0,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz NOT NULL,
    bytes        bigint NOT NULL DEFAULT 0,
    sha256       text NOT NULL DEFAULT '',
    prev_chain   text NOT NULL DEFAULT '',
    chain        text NOT NULL DEFAULT '',
    init_key     text NOT NULL DEFAULT '',
    segment_id   text NOT NULL DEFAULT '',
    exam_id      text NOT NULL DEFAULT '',
    candidate_id text NOT NULL DEFAULT '',
    verified     boolean NOT NULL DEFAULT false,
    retain_until timestamptz NOT NULL,
    legal_hold   boolean NOT NULL DEFAULT false,
    rule         text NOT NULL,
    decision     jsonb NOT NULL DEFAULT '{}',
    decided_at   timestamptz NOT NULL,
    marked_at    timestamptz,
    deleted_at   timestamptz,
    CHECK (end_at >= start_at)
);
CREATE INDEX IF NOT EXISTS archive_objects_site_time ON archiver.archive_objects (site, start_at)
    WHERE kind IN ('segment', 'rendition');
CREATE INDEX IF NOT EXISTS archive_objects_init ON archiver.archive_objects (init_key)
    WHERE kind IN ('segment', 'rendition') AND deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS archive_objects_seal ON archiver.archive_objects (exam_id, candidate_id) WHERE kind = 'seal';
CREATE INDEX IF NOT EXISTS archive_objects_due ON archiver.archive_objects (retain_until)
    WHERE deleted_at IS NULL AND marked_at IS NULL AND NOT legal_hold;
CREATE INDEX IF NOT EXISTS archive_objects_marked ON archiver.archive_objects (marked_at)
    WHERE deleted_at IS NULL AND marked_at IS NOT NULL;

-- Seals of candidate-exams, newest version last.
CREATE TABLE IF NOT EXISTS archiver.seals (
    exam_id       text NOT NULL,
    candidate_id  text NOT NULL,
    version       integer NOT NULL CHECK (version > 0),
    manifest_key  text NOT NULL,
    signature_key text NOT NULL,
    merkle_root   text NOT NULL CHECK (merkle_root ~ '^[0-9a-f]{64}$'),
    key_id        text NOT NULL,
    objects       integer NOT NULL,
    bytes         bigint NOT NULL,
    sealed_at     timestamptz NOT NULL,
    PRIMARY KEY (exam_id, candidate_id, version)
);

-- The archiver's checks of stored segments, one row per check.
CREATE TABLE IF NOT EXISTS archiver.segment_checks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    segment_id text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    ok         boolean NOT NULL,
    detail     text NOT NULL DEFAULT '',
    checker    text NOT NULL
);
CREATE INDEX IF NOT EXISTS segment_checks_segment_id ON archiver.segment_checks (segment_id, checked_at);

-- The archiver's log of its deletions, written in the transaction that
-- records the deletion, and its outbox towards the registry: detail is the
-- audit entry's detail (rule, reasons, bytes, sha256), and reported_at is
-- when the registry recorded it (its audit log, its segment index). Until
-- then the sweeper reports it again: a deletion is never unlogged.
CREATE TABLE archiver.deletions (
    object_key  text PRIMARY KEY,
    deleted_at  timestamptz NOT NULL,
    detail      jsonb NOT NULL,
    reported_at timestamptz
);
CREATE INDEX deletions_unreported ON archiver.deletions (deleted_at) WHERE reported_at IS NULL;
-- Deletions made before this version are in the registry's audit log
-- already (they were written in the deletion's transaction).
INSERT INTO archiver.deletions (object_key, deleted_at, detail, reported_at)
    SELECT object_key, deleted_at, '{}', deleted_at FROM archiver.archive_objects WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP TABLE archiver.deletions;
ALTER TABLE archiver.segment_checks SET SCHEMA public;
ALTER TABLE archiver.seals SET SCHEMA public;
ALTER TABLE archiver.archive_objects SET SCHEMA public;
ALTER TABLE archiver.stream_chains SET SCHEMA public;
