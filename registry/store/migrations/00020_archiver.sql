-- The archiver's state (issue 5): the last hash-chain value of each stream,
-- the retention applied to every archived object and the sweeper's marks,
-- and the seals of candidate-exams.

-- +goose Up
-- The last segment of each stream the archiver has verified, so that the
-- next one can be checked against it.
CREATE TABLE stream_chains (
    stream_id  text PRIMARY KEY,
    sequence   bigint NOT NULL,
    chain      text NOT NULL CHECK (chain ~ '^[0-9a-f]{64}$'),
    segment_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every object the archiver keeps: raw segments, their init segments, the
-- transcoder's renditions and thumbnails of them, and seals. retain_until and legal_hold are what was applied to the blob store
-- (Object Lock on S3); decision holds the reasons, for `retention explain`.
-- The sweeper marks an object once it has expired (marked_at) and deletes it
-- after a delay (deleted_at); a deleted object's row stays, so that "why was
-- it deleted" has an answer. No foreign keys: the archiver may see a segment
-- before the registry indexes it.
CREATE TABLE archive_objects (
    object_key   text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('segment', 'init', 'rendition', 'seal')),
    stream_id    text NOT NULL DEFAULT '',
    site         text NOT NULL DEFAULT '',
    device       text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT '',
    -- For a segment: its sequence, footage interval and chain values, and
    -- the init segment it needs. For a rendition (or a thumbnail sprite or
    -- track): its raw segment's interval and sequence, and its init segment.
    -- For an init segment: the interval of the segments that use it. For a
    -- seal: its candidate-exam's window.
    sequence     bigint NOT NULL DEFAULT 0,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz NOT NULL,
    bytes        bigint NOT NULL DEFAULT 0,
    sha256       text NOT NULL DEFAULT '',
    prev_chain   text NOT NULL DEFAULT '',
    chain        text NOT NULL DEFAULT '',
    init_key     text NOT NULL DEFAULT '',
    segment_id   text NOT NULL DEFAULT '',
    -- For a seal: whose.
    exam_id      text NOT NULL DEFAULT '',
    candidate_id text NOT NULL DEFAULT '',
    -- Whether the stored bytes matched the announced size and SHA-256.
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
-- The footage of a site in a time window (the objects of a candidate-exam).
CREATE INDEX archive_objects_site_time ON archive_objects (site, start_at) WHERE kind IN ('segment', 'rendition');
CREATE INDEX archive_objects_init ON archive_objects (init_key) WHERE kind IN ('segment', 'rendition') AND deleted_at IS NULL;
CREATE INDEX archive_objects_seal ON archive_objects (exam_id, candidate_id) WHERE kind = 'seal';
-- The sweeper's two phases.
CREATE INDEX archive_objects_due ON archive_objects (retain_until) WHERE deleted_at IS NULL AND marked_at IS NULL AND NOT legal_hold;
CREATE INDEX archive_objects_marked ON archive_objects (marked_at) WHERE deleted_at IS NULL AND marked_at IS NOT NULL;

-- Seals of candidate-exams, newest version last: a manifest of every object
-- that is evidence for it, its Merkle root, and the archiver's Ed25519
-- signature, stored beside the media under manifest_key and signature_key.
CREATE TABLE seals (
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

-- The audit trail of one object or candidate-exam.
CREATE INDEX audit_log_object ON audit_log (object, at);

-- +goose Down
DROP INDEX audit_log_object;
DROP TABLE seals;
DROP TABLE archive_objects;
DROP TABLE stream_chains;
