-- +goose Up
-- Rebuilds of a closed month's covering index (store.CompactSegmentIndex,
-- `nokstream index compact`): which partition, when, and what it took before
-- and after. Footage arrives from every stream at once, so each stream's
-- run of the index grows by page splits that leave pages half full and
-- scattered; a rebuild of a month no longer written lays each stream's
-- entries out dense and in order, and an exam's media is then a third fewer
-- pages read one after another.
CREATE TABLE segment_index_compactions (
    partition    text PRIMARY KEY,
    compacted_at timestamptz NOT NULL DEFAULT now(),
    rows         bigint NOT NULL,
    bytes_before bigint NOT NULL,
    bytes_after  bigint NOT NULL
);

-- +goose Down
DROP TABLE segment_index_compactions;
