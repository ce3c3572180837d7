-- Evidence integrity (issue: nothing is deleted early): the council's
-- explicit disposal of the evidence of a candidate-exam whose result is
-- missing. Until a result, an appeal's end or a disposal, such evidence is
-- held as overdue evidence once the provisional period ends; a disposal
-- lets the sweeper delete it, and says who decided it and why.

-- +goose Up
CREATE TABLE evidence_disposals (
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    reason       text NOT NULL CHECK (reason <> ''),
    disposed_by  bigint REFERENCES users (id),
    disposed_at  timestamptz NOT NULL,
    PRIMARY KEY (exam_id, candidate_id),
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id)
);

-- +goose Down
DROP TABLE evidence_disposals;
