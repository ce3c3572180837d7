-- The site's identity check at admission (issue 13): "identity confirmed"
-- (who, when, which document) or a refusal with its reason, and optionally
-- a photo from the candidate's webcam at that moment, stored as a document
-- of the candidate-exam (both candidate_id and exam_id set).

-- +goose Up
ALTER TABLE documents DROP CONSTRAINT documents_check;
ALTER TABLE documents ADD CONSTRAINT documents_owner CHECK (candidate_id IS NOT NULL OR exam_id IS NOT NULL);
CREATE INDEX documents_candidate_exam ON documents (candidate_id, exam_id) WHERE candidate_id IS NOT NULL AND exam_id IS NOT NULL;

CREATE TABLE identity_checks (
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    confirmed    boolean NOT NULL,
    document_id  text REFERENCES documents (id),
    photo_id     text REFERENCES documents (id),
    reason       text NOT NULL DEFAULT '',
    checked_by   bigint REFERENCES users (id),
    checked_at   timestamptz NOT NULL,
    PRIMARY KEY (exam_id, candidate_id),
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id) ON DELETE CASCADE,
    CHECK (NOT confirmed OR document_id IS NOT NULL),
    CHECK (confirmed OR reason <> '')
);

-- +goose Down
DROP TABLE identity_checks;
DROP INDEX documents_candidate_exam;
DELETE FROM documents WHERE candidate_id IS NOT NULL AND exam_id IS NOT NULL;
ALTER TABLE documents DROP CONSTRAINT documents_owner;
ALTER TABLE documents ADD CONSTRAINT documents_check CHECK ((candidate_id IS NULL) <> (exam_id IS NULL));
