-- +goose Up
-- Scans of a candidate's documents and an exam's commission protocol are
-- evidence of the candidate-exam: the archiver keeps them as archived
-- objects of kind 'document', with the candidate-exam's retention and legal
-- hold, and lists them in its seal.
ALTER TABLE archive_objects DROP CONSTRAINT archive_objects_kind_check;
ALTER TABLE archive_objects ADD CONSTRAINT archive_objects_kind_check
    CHECK (kind IN ('segment', 'init', 'rendition', 'seal', 'document'));

-- +goose Down
DELETE FROM archive_objects WHERE kind = 'document';
ALTER TABLE archive_objects DROP CONSTRAINT archive_objects_kind_check;
ALTER TABLE archive_objects ADD CONSTRAINT archive_objects_kind_check
    CHECK (kind IN ('segment', 'init', 'rendition', 'seal'));
