-- The index's bytes a row, as it was and in a compact layout: the
-- measurement for issue 16 (100 M rows on one disk) that led to migration
-- 00120 (registry/store/migrations), whose layout differs in detail: the
-- segment id stays text (ids need not be ULIDs), the profile holds site,
-- device, source and ingest node too, and segment_ids says the stream so
-- that no index of segment ids is needed. Run it against a
-- scratch PostgreSQL (psql -f docs/index-layout.sql); it creates and fills the
-- database "layout" (1 M rows of real-shaped segments: ULID segment ids,
-- ingest's object keys raw/<site>/<device>/<date>/<seq>-<ulid>.m4s, init keys
-- named by their hash, 1 050 streams arriving interleaved as they do in
-- production), then prints each relation's bytes a row. Append
-- `REINDEX TABLE cur; REINDEX TABLE cmp; ...` to see a closed month's
-- partition after it is rebuilt. Figures: docs/NOTES.md, session 11.
DROP DATABASE IF EXISTS layout;
CREATE DATABASE layout;
\c layout
-- Real-shaped data, in arrival order (every stream's segment k before any stream's k+1).
CREATE TABLE cur (
    segment_id text NOT NULL, stream_id text NOT NULL, source text NOT NULL, site text NOT NULL, device text NOT NULL,
    sequence bigint NOT NULL, start_at timestamptz NOT NULL, duration double precision NOT NULL, end_at timestamptz NOT NULL,
    codecs text[] NOT NULL DEFAULT '{}', bytes bigint NOT NULL, sha256 text NOT NULL, prev_chain text NOT NULL, chain text NOT NULL,
    object_key text NOT NULL, init_key text NOT NULL, init_sha256 text NOT NULL, init_bytes bigint NOT NULL, ingest_node text NOT NULL,
    discontinuity boolean NOT NULL DEFAULT false, salvaged boolean NOT NULL DEFAULT false, indexed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, start_at));
CREATE INDEX cur_stream_start ON cur (stream_id, start_at) INCLUDE (end_at, sequence, duration, bytes, object_key, init_key, sha256);
CREATE INDEX cur_site_start ON cur (site, start_at);
CREATE INDEX cur_object_key ON cur (object_key);
CREATE INDEX cur_init_key ON cur (init_key);
CREATE TABLE cur_ids (segment_id text PRIMARY KEY, start_at timestamptz NOT NULL);

CREATE TABLE gen AS
SELECT k, s, format('site%s', lpad((s/21)::text,2,'0')) AS site,
       CASE WHEN s%21=0 THEN 'room1' WHEN s%2=1 THEN format('ws%s-cam', (s%21+1)/2) ELSE format('ws%s-screen', (s%21)/2) END AS device,
       timestamptz '2025-01-06 07:00Z' + k * interval '6 s' AS at,
       upper(substr(md5(k::text||'/'||s), 1, 26)) AS ulid
FROM generate_series(0, 951) k, generate_series(0, 1049) s ORDER BY k, s;

INSERT INTO cur (segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at, codecs, bytes, sha256, prev_chain, chain,
  object_key, init_key, init_sha256, init_bytes, ingest_node, discontinuity, salvaged)
SELECT ulid, site||'/'||device, CASE WHEN device='room1' THEN 'room' WHEN device LIKE '%cam' THEN 'webcam' ELSE 'screen' END, site, device,
  k, at, 6.0, at + interval '6 s', '{avc1.64001f,mp4a.40.2}', 750000 + k, encode(sha256(ulid::bytea),'hex'),
  encode(sha256((ulid||'p')::bytea),'hex'), encode(sha256((ulid||'c')::bytea),'hex'),
  format('raw/%s/%s/%s/%s-%s.m4s', site, device, to_char(at,'YYYY-MM-DD'), lpad(k::text,10,'0'), ulid),
  format('raw/%s/%s/init/%s.mp4', site, device, encode(sha256((site||device)::bytea),'hex')),
  encode(sha256((site||device)::bytea),'hex'), 900, 'node-'||site, k=0, false
FROM gen ORDER BY k, s;
INSERT INTO cur_ids SELECT segment_id, start_at FROM cur;

-- Compact: hashes as bytea, the init (key, hash, size, codecs) once per stream and init,
-- the object key derived (raw/site/device/date/seq-ulid.m4s) and found by segment id,
-- the segment id a 16-byte uuid (a ULID is 128 bits).
CREATE TABLE inits (init_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, stream_id text NOT NULL, init_key text NOT NULL,
  init_sha256 bytea NOT NULL, init_bytes bigint NOT NULL, codecs text[] NOT NULL, UNIQUE (stream_id, init_sha256));
CREATE TABLE cmp (
    segment_id uuid NOT NULL, stream_id text NOT NULL, sequence bigint NOT NULL, start_at timestamptz NOT NULL, duration real NOT NULL,
    bytes integer NOT NULL, sha256 bytea NOT NULL, prev_chain bytea NOT NULL, chain bytea NOT NULL, init_id bigint NOT NULL,
    ingest_node text NOT NULL, flags smallint NOT NULL DEFAULT 0, indexed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, start_at));
CREATE INDEX cmp_stream_start ON cmp (stream_id, start_at) INCLUDE (sequence, duration, bytes, sha256, segment_id, init_id);
CREATE INDEX cmp_site_start ON cmp ((split_part(stream_id,'/',1)), start_at);
CREATE TABLE cmp_ids (segment_id uuid PRIMARY KEY, start_at timestamptz NOT NULL);
INSERT INTO inits (stream_id, init_key, init_sha256, init_bytes, codecs)
SELECT DISTINCT stream_id, init_key, decode(init_sha256,'hex'), init_bytes, codecs FROM cur;
INSERT INTO cmp (segment_id, stream_id, sequence, start_at, duration, bytes, sha256, prev_chain, chain, init_id, ingest_node, flags)
SELECT md5(segment_id)::uuid, c.stream_id, sequence, start_at, duration, bytes, decode(sha256,'hex'), decode(prev_chain,'hex'), decode(chain,'hex'),
  i.init_id, ingest_node, discontinuity::int
FROM cur c JOIN inits i ON i.stream_id = c.stream_id ORDER BY start_at, c.stream_id;
INSERT INTO cmp_ids SELECT segment_id, start_at FROM cmp;
VACUUM ANALYZE;
SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS size, round(pg_relation_size(c.oid)::numeric / 999600, 0) AS bytes_per_row
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname='public' AND c.relkind IN ('r','i') AND c.relname NOT LIKE 'gen%'
ORDER BY c.relname;
