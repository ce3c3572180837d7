-- The segment index in a compact layout (issue 16: 100 M rows on one disk,
-- ~2.7 bn in five years nationally). Measured with docs/index-layout.sql:
-- the row and its indexes took ~1.7 KB as inserted; most of it was text
-- that repeats or can be derived:
--
--   - what is the same for every segment of a stream with one init segment
--     and ingest node (site, device, source, codecs, the init's key, hash
--     and size, the node) is a row of segment_profiles, once;
--   - the hashes are 32 bytes (bytea), not 64 hex characters; a hash that
--     is not lowercase hex (an event's fields are checked for length only)
--     is kept as it came, in hashes_text, and the bytea columns are empty;
--   - the object key is NULL when it is the one ingest makes from the
--     segment's own fields (segment_object_key), and only a key of another
--     form is stored;
--   - the view joins the profiles with a left join, which the planner
--     leaves out of a query that reads none of their columns;
--   - the site's index goes (no query reads segments by site; the archiver
--     keeps its own copy of what it needs);
--   - so does the index of segment ids: segment_ids, which holds each id
--     once, says the segment's stream as well as its start, and the
--     stream's index finds the row.
--
-- The view segments shows the rows exactly as before, so every reader sees
-- the same values; writers write segment_rows (store.IndexSegments).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION segment_object_key(stream_id text, start_at timestamptz, sequence bigint, segment_id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- NULL (the key is stored) outside the years where the registry's Go
    -- code derives the same key (store.derivedKeys.objectKey).
    SELECT CASE WHEN start_at >= '1000-01-01 00:00:00+00' AND start_at < '10000-01-01 00:00:00+00' AND sequence >= 0 THEN
        'raw/' || stream_id || '/' || to_char(start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '/' ||
        CASE WHEN sequence < 10000000000 THEN lpad(sequence::text, 10, '0') ELSE sequence::text END ||
        '-' || segment_id || '.m4s' END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION segment_profile_key(site text, device text, source text, codecs text[], init_key text, init_sha256 text,
    init_bytes bigint, ingest_node text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(jsonb_build_array(site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node)::text, 'UTF8'))
$$;
-- +goose StatementEnd

CREATE TABLE segment_profiles (
    profile_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site        text NOT NULL,
    device      text NOT NULL,
    source      text NOT NULL,
    codecs      text[] NOT NULL,
    init_key    text NOT NULL,
    init_sha256 text NOT NULL,
    init_bytes  bigint NOT NULL,
    ingest_node text NOT NULL,
    -- The first segment indexed with this profile: the segment an init
    -- segment's key is looked up to (store.ObjectByKey).
    segment_id  text NOT NULL,
    fingerprint bytea NOT NULL GENERATED ALWAYS AS
        (segment_profile_key(site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node)) STORED UNIQUE
);
-- Media requests for an init segment; a hash index holds a key of any
-- length.
CREATE INDEX segment_profiles_init_key ON segment_profiles USING hash (init_key);

-- Eight-byte columns first, then the four-byte and one-byte ones, then
-- the variable ones: no padding between them.
CREATE TABLE segment_rows (
    sequence      bigint NOT NULL,
    start_at      timestamptz NOT NULL,
    duration      double precision NOT NULL CHECK (duration > 0),
    end_at        timestamptz NOT NULL,
    bytes         bigint NOT NULL,
    indexed_at    timestamptz NOT NULL DEFAULT now(),
    -- segment_profiles; no foreign key: profiles are never deleted, and
    -- a check a row would slow a bulk load by as much as the row's insert.
    profile_id    integer NOT NULL,
    discontinuity boolean NOT NULL DEFAULT false,
    salvaged      boolean NOT NULL DEFAULT false,
    independent   boolean NOT NULL DEFAULT true,
    segment_id    text NOT NULL,
    stream_id     text NOT NULL,
    sha256        bytea NOT NULL,
    prev_chain    bytea NOT NULL,
    chain         bytea NOT NULL,
    object_key    text,   -- NULL: segment_object_key(stream_id, start_at, sequence, segment_id)
    hashes_text   text[], -- NULL: the hashes are the bytea columns; else {sha256, prev_chain, chain} as they came
    CHECK (object_key IS NOT NULL OR segment_object_key(stream_id, start_at, sequence, segment_id) IS NOT NULL)
) PARTITION BY RANGE (start_at);
CREATE TABLE segment_rows_default PARTITION OF segment_rows DEFAULT;
-- Playback and evidence: a stream's segments in a time range, with all
-- that store.ExamMedia and the playlists need, so that they read the index
-- alone (the view's join adds a profile, a few a stream).
CREATE INDEX segment_rows_stream_start ON segment_rows (stream_id, start_at)
    INCLUDE (end_at, sequence, duration, bytes, sha256, segment_id, profile_id, object_key, hashes_text);
-- Media requests for an object key of a form other than ingest's.
CREATE INDEX segment_rows_object_key ON segment_rows USING hash (object_key) WHERE object_key IS NOT NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION segments_ensure_partition(month timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'segment_rows_y' || to_char(month AT TIME ZONE 'UTC', 'YYYY') || 'm' || to_char(month AT TIME ZONE 'UTC', 'MM');
BEGIN
    -- Registries that start together take turns.
    PERFORM pg_advisory_xact_lock(hashtext('segments_ensure_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE segment_rows INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM segment_rows_default WHERE start_at >= %L AND start_at < %L RETURNING *)
        INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE segment_rows ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- The rows indexed so far, in their months' partitions.
SELECT segments_ensure_partition(m)
FROM (
    SELECT DISTINCT date_trunc('month', start_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM segments
    UNION
    SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'), date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
        interval '1 month') AT TIME ZONE 'UTC'
) months ORDER BY m;

INSERT INTO segment_profiles (site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node, segment_id)
SELECT DISTINCT ON (segment_profile_key(site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node))
    site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node, segment_id
FROM segments
ORDER BY segment_profile_key(site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node), start_at;

INSERT INTO segment_rows (sequence, start_at, duration, end_at, bytes, indexed_at, profile_id, discontinuity, salvaged, independent,
    segment_id, stream_id, sha256, prev_chain, chain, object_key, hashes_text)
SELECT s.sequence, s.start_at, s.duration, s.end_at, s.bytes, s.indexed_at, p.profile_id, s.discontinuity, s.salvaged, s.independent,
    s.segment_id, s.stream_id,
    CASE WHEN h.hex THEN decode(s.sha256, 'hex') ELSE '' END,
    CASE WHEN h.hex THEN decode(s.prev_chain, 'hex') ELSE '' END,
    CASE WHEN h.hex THEN decode(s.chain, 'hex') ELSE '' END,
    NULLIF(s.object_key, segment_object_key(s.stream_id, s.start_at, s.sequence, s.segment_id)),
    CASE WHEN h.hex THEN NULL ELSE ARRAY[s.sha256, s.prev_chain, s.chain] END
FROM segments s
JOIN segment_profiles p ON p.fingerprint = segment_profile_key(s.site, s.device, s.source, s.codecs, s.init_key, s.init_sha256,
    s.init_bytes, s.ingest_node),
LATERAL (SELECT s.sha256 ~ '^([0-9a-f]{2})*$' AND s.prev_chain ~ '^([0-9a-f]{2})*$' AND s.chain ~ '^([0-9a-f]{2})*$') AS h(hex);

-- Rows of segments the sweeper deleted keep a NULL stream: they have no row.
ALTER TABLE segment_ids ADD COLUMN stream_id text;
UPDATE segment_ids i SET stream_id = s.stream_id FROM segments s WHERE s.segment_id = i.segment_id AND s.start_at = i.start_at;

DROP TABLE segments;

CREATE VIEW segments AS
SELECT r.segment_id, r.stream_id, p.source, p.site, p.device, r.sequence, r.start_at, r.duration, r.end_at, p.codecs, r.bytes,
    CASE WHEN r.hashes_text IS NULL THEN encode(r.sha256, 'hex') ELSE r.hashes_text[1] END AS sha256,
    CASE WHEN r.hashes_text IS NULL THEN encode(r.prev_chain, 'hex') ELSE r.hashes_text[2] END AS prev_chain,
    CASE WHEN r.hashes_text IS NULL THEN encode(r.chain, 'hex') ELSE r.hashes_text[3] END AS chain,
    coalesce(r.object_key, segment_object_key(r.stream_id, r.start_at, r.sequence, r.segment_id)) AS object_key,
    p.init_key, p.init_sha256, p.init_bytes, p.ingest_node, r.discontinuity, r.salvaged, r.indexed_at, r.independent
FROM segment_rows r LEFT JOIN segment_profiles p USING (profile_id);

-- +goose Down
CREATE TABLE segments_wide AS SELECT * FROM segments;
ALTER TABLE segment_ids DROP COLUMN stream_id;
DROP VIEW segments;
DROP TABLE segment_rows;
DROP TABLE segment_profiles;
DROP FUNCTION segment_profile_key(text, text, text, text[], text, text, bigint, text);
DROP FUNCTION segment_object_key(text, timestamptz, bigint, text);
CREATE TABLE segments (
    segment_id text NOT NULL, stream_id text NOT NULL, source text NOT NULL, site text NOT NULL, device text NOT NULL,
    sequence bigint NOT NULL, start_at timestamptz NOT NULL, duration double precision NOT NULL CHECK (duration > 0),
    end_at timestamptz NOT NULL, codecs text[] NOT NULL DEFAULT '{}', bytes bigint NOT NULL, sha256 text NOT NULL,
    prev_chain text NOT NULL, chain text NOT NULL, object_key text NOT NULL, init_key text NOT NULL, init_sha256 text NOT NULL,
    init_bytes bigint NOT NULL, ingest_node text NOT NULL, discontinuity boolean NOT NULL DEFAULT false,
    salvaged boolean NOT NULL DEFAULT false, indexed_at timestamptz NOT NULL DEFAULT now(),
    independent boolean NOT NULL DEFAULT true,
    PRIMARY KEY (segment_id, start_at)
) PARTITION BY RANGE (start_at);
CREATE TABLE segments_default PARTITION OF segments DEFAULT;
CREATE INDEX segments_stream_start ON segments (stream_id, start_at)
    INCLUDE (end_at, sequence, duration, bytes, object_key, init_key, sha256);
CREATE INDEX segments_site_start ON segments (site, start_at);
CREATE INDEX segments_object_key ON segments (object_key);
CREATE INDEX segments_init_key ON segments (init_key);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION segments_ensure_partition(month timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'segments_y' || to_char(month AT TIME ZONE 'UTC', 'YYYY') || 'm' || to_char(month AT TIME ZONE 'UTC', 'MM');
BEGIN
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
SELECT segments_ensure_partition(m)
FROM (SELECT DISTINCT date_trunc('month', start_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM segments_wide) months ORDER BY m;
INSERT INTO segments SELECT segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at, codecs, bytes, sha256,
    prev_chain, chain, object_key, init_key, init_sha256, init_bytes, ingest_node, discontinuity, salvaged, indexed_at, independent
FROM segments_wide;
DROP TABLE segments_wide;
