-- The segment index grows by ~10^8 rows a year: partition it by month of
-- start_at (declarative range partitioning), with a default partition for
-- rows of a month that has none yet. segments_ensure_partition makes the
-- partition of a month, moving its rows out of the default partition; the
-- registry calls it for the coming months (store.EnsureSegmentPartitions).
--
-- A unique index of a partitioned table must contain the partition key, so
-- the idempotency of SegmentClosed (one row per segment_id) moves to
-- segment_ids, which also says in which partition a segment is.

-- +goose Up
ALTER TABLE segments RENAME TO segments_unpartitioned;
ALTER INDEX segments_pkey RENAME TO segments_unpartitioned_pkey;
ALTER INDEX segments_stream_start RENAME TO segments_unpartitioned_stream_start;
ALTER INDEX segments_object_key RENAME TO segments_unpartitioned_object_key;
ALTER INDEX segments_init_key RENAME TO segments_unpartitioned_init_key;
ALTER INDEX segments_site_start RENAME TO segments_unpartitioned_site_start;

CREATE TABLE segments (
    segment_id    text NOT NULL,
    stream_id     text NOT NULL,
    source        text NOT NULL,
    site          text NOT NULL,
    device        text NOT NULL,
    sequence      bigint NOT NULL,
    start_at      timestamptz NOT NULL,
    duration      double precision NOT NULL CHECK (duration > 0),
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
    indexed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, start_at)
) PARTITION BY RANGE (start_at);
CREATE TABLE segments_default PARTITION OF segments DEFAULT;
-- Playback and evidence: a stream's segments in a time range. It carries
-- what the media of an exam needs (store.ExamMedia, CandidateEvidence), so
-- that those read the index alone and not a heap page per segment: a
-- month's heap interleaves every stream of every site.
CREATE INDEX segments_stream_start ON segments (stream_id, start_at)
    INCLUDE (end_at, sequence, duration, bytes, object_key, init_key, sha256);
-- Evidence and retention: a site's footage in a time range.
CREATE INDEX segments_site_start ON segments (site, start_at);
-- Media requests.
CREATE INDEX segments_object_key ON segments (object_key);
CREATE INDEX segments_init_key ON segments (init_key);

-- One row per indexed segment: the same SegmentClosed twice is one row, and
-- start_at finds the segment's partition.
CREATE TABLE segment_ids (
    segment_id text PRIMARY KEY,
    start_at   timestamptz NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION segments_ensure_partition(month timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'segments_y' || to_char(month AT TIME ZONE 'UTC', 'YYYY') || 'm' || to_char(month AT TIME ZONE 'UTC', 'MM');
BEGIN
    -- Registries that start together take turns.
    PERFORM pg_advisory_xact_lock(hashtext('segments_ensure_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE segments INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM segments_default WHERE start_at >= %L AND start_at < %L RETURNING *)
        INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE segments ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- The months of the indexed footage, and the current one with the next
-- three.
SELECT segments_ensure_partition(m)
FROM (
    SELECT DISTINCT date_trunc('month', start_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM segments_unpartitioned
    UNION
    SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'), date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
        interval '1 month') AT TIME ZONE 'UTC'
) months ORDER BY m;

INSERT INTO segments (segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at, codecs, bytes, sha256,
    prev_chain, chain, object_key, init_key, init_sha256, init_bytes, ingest_node, discontinuity, salvaged, indexed_at)
SELECT segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at, codecs, bytes, sha256,
    prev_chain, chain, object_key, init_key, init_sha256, init_bytes, ingest_node, discontinuity, salvaged, indexed_at
FROM segments_unpartitioned;
INSERT INTO segment_ids (segment_id, start_at) SELECT segment_id, start_at FROM segments_unpartitioned;
DROP TABLE segments_unpartitioned;

-- +goose Down
CREATE TABLE segments_unpartitioned (LIKE segments INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO segments_unpartitioned SELECT * FROM segments;
DROP TABLE segments;
DROP FUNCTION segments_ensure_partition(timestamptz);
DROP TABLE segment_ids;
ALTER TABLE segments_unpartitioned RENAME TO segments;
ALTER TABLE segments ADD PRIMARY KEY (segment_id);
CREATE INDEX segments_stream_start ON segments (stream_id, start_at);
CREATE INDEX segments_site_start ON segments (site, start_at);
CREATE INDEX segments_object_key ON segments (object_key);
CREATE INDEX segments_init_key ON segments (init_key);
