-- The registry's copies of the archiver's records (issue 12, step (c)): the
-- archiver owns its tables (schema archiver); the registry learns what it
-- keeps, seals and checks from its events on nokstream.archive.v1
-- (internal/events: ObjectArchived, SealWritten, SegmentChecked) and keeps
-- them here, for evidence exports and the documents' state, reading nothing
-- of the archiver's schema. Named apart from the archiver's tables
-- (archive_objects, seals, segment_checks), which the archiver's first
-- migration moves out of this schema by name. Numbered 00110 so that
-- others' migrations from 00103 keep their numbers.

-- +goose Up
-- Each object the archiver keeps, as its newest ObjectArchived says (seq:
-- an older one arriving late changes nothing).
CREATE TABLE archived_objects (
    object_key   text PRIMARY KEY,
    seq          bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('segment', 'init', 'rendition', 'seal', 'document')),
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
    verified     boolean NOT NULL,
    retain_until timestamptz NOT NULL,
    legal_hold   boolean NOT NULL,
    rule         text NOT NULL,
    decided_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archived_objects_footage ON archived_objects (site, start_at) WHERE kind = 'segment' AND deleted_at IS NULL;

-- The archiver's seals of candidate-exams (SealWritten); the manifest and
-- signature are in the blob store under manifest_key and signature_key.
CREATE TABLE evidence_seals (
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
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exam_id, candidate_id, version)
);

-- The archiver's checks of stored segments (SegmentChecked), one row per
-- check: seq is the archiver's number of it.
CREATE TABLE segment_integrity (
    seq         bigint PRIMARY KEY,
    segment_id  text NOT NULL,
    ok          boolean NOT NULL,
    detail      text NOT NULL DEFAULT '',
    checked_at  timestamptz NOT NULL,
    checker     text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segment_integrity_segment ON segment_integrity (segment_id, checked_at);

-- +goose Down
DROP TABLE segment_integrity;
DROP TABLE evidence_seals;
DROP TABLE archived_objects;
