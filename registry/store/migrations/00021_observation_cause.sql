-- Why a publisher session ended (issue 7, the site console's health grid):
-- on a stop observation, "ended" (the publisher ended it, or it was
-- replaced or the exam was over), "lost" (connection lost, no media, a
-- pulled camera failed: the source is expected back) or "ingest" (ingest
-- stopped or failed). Empty for other kinds and for stops reported before
-- causes were.

-- +goose Up
ALTER TABLE observations ADD COLUMN cause text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE observations DROP COLUMN cause;
