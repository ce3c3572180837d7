-- A segment that does not start on a keyframe (issue: evidence integrity):
-- ingest cuts a segment at 60 s or 256 MiB whatever the keyframes, and the
-- next one plays only after its predecessor. Rows from before are
-- keyframe-aligned: the default is true.

-- +goose Up
ALTER TABLE segments ADD COLUMN independent boolean NOT NULL DEFAULT true;

-- +goose Down
ALTER TABLE segments DROP COLUMN independent;
