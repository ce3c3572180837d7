-- +goose Up
-- An hour of a stream's segment index in one row (store.PackSegments, read
-- by store.ExamMedia). A candidate's 4-hour exam is 7 200 index rows;
-- PostgreSQL spent most of that query making each row's nine columns into
-- its wire format, not finding them (BenchmarkSegmentIndex: the same scan
-- returning one column took a third of the time). A pack is the hour's
-- rows as the registry reads them, one after another in one bytea, so an
-- exam's media is some fifteen packs. As TimescaleDB compresses a closed
-- chunk "segmented by" a key, but the rows stay: a pack is an index, made
-- from them and never the only copy.
--
-- A pack is only used while it is current. Any change to segment_rows
-- (INSERT, UPDATE, DELETE, TRUNCATE: the triggers below) writes its
-- streams' hours into segment_pack_todo in the same transaction; a pack
-- whose hour is there is stale, and its readers read the rows. The packer
-- takes an hour off the list only in the transaction that packs it again,
-- and only holding the stream's lock, which a writer holds from its
-- trigger to its commit: so the rows a pack leaves out are always rows
-- whose hour is on the list. Writers write segment_rows itself (the
-- triggers are its, not its partitions').
CREATE TABLE segment_packs (
    stream_id text NOT NULL,
    hour      timestamptz NOT NULL, -- date_trunc('hour', start_at, 'UTC') of each row packed
    rows      integer NOT NULL,
    data      bytea NOT NULL,       -- store.segmentPackRow, rows of them, by start_at
    packed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, hour)
);
-- Hashes and ids do not compress: stored as they are, read without work.
ALTER TABLE segment_packs ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE segment_pack_todo (
    stream_id text NOT NULL,
    hour      timestamptz NOT NULL,
    PRIMARY KEY (stream_id, hour)
);
CREATE INDEX segment_pack_todo_hour ON segment_pack_todo (hour);

-- A change to segment_rows puts its streams' hours on the list, holding
-- each stream's lock to the commit; the packer only tries for it
-- (store.PackSegments). The hours go in one order, so that writers of the
-- same hours wait for each other rather than each for the other. (Three
-- functions alike: a transition table cannot be passed to another.)
-- +goose StatementBegin
CREATE FUNCTION segment_rows_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('segment_packs'), k) FROM (SELECT DISTINCT hashtext(stream_id) AS k FROM new_rows) t;
    INSERT INTO segment_pack_todo (stream_id, hour)
    SELECT DISTINCT stream_id, date_trunc('hour', start_at, 'UTC') FROM new_rows ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION segment_rows_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('segment_packs'), k) FROM (SELECT DISTINCT hashtext(stream_id) AS k FROM old_rows) t;
    INSERT INTO segment_pack_todo (stream_id, hour)
    SELECT DISTINCT stream_id, date_trunc('hour', start_at, 'UTC') FROM old_rows ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION segment_rows_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('segment_packs'), k)
    FROM (SELECT hashtext(stream_id) AS k FROM old_rows UNION SELECT hashtext(stream_id) FROM new_rows) t;
    INSERT INTO segment_pack_todo (stream_id, hour)
    SELECT stream_id, date_trunc('hour', start_at, 'UTC') FROM old_rows
    UNION SELECT stream_id, date_trunc('hour', start_at, 'UTC') FROM new_rows ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION segment_rows_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM segment_packs;
    DELETE FROM segment_pack_todo;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER segment_rows_packs_insert AFTER INSERT ON segment_rows
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_rows_inserted();
CREATE TRIGGER segment_rows_packs_update AFTER UPDATE ON segment_rows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_rows_updated();
CREATE TRIGGER segment_rows_packs_delete AFTER DELETE ON segment_rows
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_rows_deleted();
CREATE TRIGGER segment_rows_packs_truncate AFTER TRUNCATE ON segment_rows
    FOR EACH STATEMENT EXECUTE FUNCTION segment_rows_truncated();

-- The rows indexed so far: packed by the registry's packer.
INSERT INTO segment_pack_todo (stream_id, hour)
SELECT DISTINCT stream_id, date_trunc('hour', start_at, 'UTC') FROM segment_rows ON CONFLICT DO NOTHING;

-- +goose Down
DROP TRIGGER segment_rows_packs_truncate ON segment_rows;
DROP TRIGGER segment_rows_packs_delete ON segment_rows;
DROP TRIGGER segment_rows_packs_update ON segment_rows;
DROP TRIGGER segment_rows_packs_insert ON segment_rows;
DROP FUNCTION segment_rows_truncated();
DROP FUNCTION segment_rows_deleted();
DROP FUNCTION segment_rows_updated();
DROP FUNCTION segment_rows_inserted();
DROP TABLE segment_pack_todo;
DROP TABLE segment_packs;
