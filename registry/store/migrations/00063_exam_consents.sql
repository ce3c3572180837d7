-- A candidate's consent to the processing of their personal data and to
-- the recording of their exam (issue 13): the version of the text they
-- accepted, when, and from which page. A candidate publishes no stream
-- without it.

-- +goose Up
CREATE TABLE exam_consents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    version      text NOT NULL CHECK (version <> '' AND length(version) <= 64),
    page         text NOT NULL CHECK (page <> '' AND length(page) <= 255),
    accepted_at  timestamptz NOT NULL,
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id) ON DELETE CASCADE
);
CREATE INDEX exam_consents_candidate ON exam_consents (exam_id, candidate_id, id);

-- +goose Down
DROP TABLE exam_consents;
