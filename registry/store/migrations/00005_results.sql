-- What an exam leads to: the commission protocol and its approval by
-- experts, the council's decision and NARK's verification (with their
-- deadlines), each candidate's result (a certificate with its validity, or a
-- conclusion), certificate extensions and revocations, appeals, the experts'
-- review marks and verdicts, retention settings per council and
-- qualification, and the outbox of events for the bus.

-- +goose Up
-- The commission protocol of an exam, formed by the site: a document and
-- its metadata. Replacing it keeps the old document row.
CREATE TABLE protocols (
    exam_id     text PRIMARY KEY REFERENCES exams (id),
    number      text NOT NULL CHECK (number <> ''),
    signed_on   date NOT NULL,
    document_id text NOT NULL REFERENCES documents (id),
    uploaded_by bigint REFERENCES users (id),
    uploaded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE protocol_approvals (
    exam_id     text NOT NULL REFERENCES exams (id),
    expert_id   bigint NOT NULL REFERENCES users (id),
    approved    boolean NOT NULL,
    comment     text NOT NULL DEFAULT '',
    decided_at  timestamptz NOT NULL,
    PRIMARY KEY (exam_id, expert_id),
    CHECK (approved OR comment <> '')
);

-- The council's decisions on an exam's results, newest last. "approved"
-- submits them to the register (the council's 14-day deadline); "returned"
-- sends them back to the center for rework.
CREATE TABLE exam_decisions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id    text NOT NULL REFERENCES exams (id),
    decision   text NOT NULL CHECK (decision IN ('approved', 'rejected', 'returned')),
    comment    text NOT NULL DEFAULT '',
    decided_by bigint REFERENCES users (id),
    decided_at timestamptz NOT NULL,
    CHECK (decision = 'approved' OR comment <> '')
);
CREATE INDEX exam_decisions_exam ON exam_decisions (exam_id, decided_at);

-- NARK's verification of submitted results (its 7-day deadline).
CREATE TABLE exam_verifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id     text NOT NULL REFERENCES exams (id),
    verified    boolean NOT NULL,
    comment     text NOT NULL DEFAULT '',
    verified_by bigint REFERENCES users (id),
    verified_at timestamptz NOT NULL,
    CHECK (verified OR comment <> '')
);
CREATE INDEX exam_verifications_exam ON exam_verifications (exam_id, verified_at);

-- A candidate's result: a certificate (свидетельство), valid until
-- valid_until (issue date + the qualification's period, later extended), or
-- a conclusion (заключение) of a failed exam.
CREATE TABLE results (
    exam_id            text NOT NULL,
    candidate_id       text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('certificate', 'conclusion')),
    certificate_number text UNIQUE,
    issued_on          date NOT NULL,
    valid_until        date,
    conclusion         text NOT NULL DEFAULT '',
    revoked_at         timestamptz,
    revocation_reason  text NOT NULL DEFAULT '',
    recorded_by        bigint REFERENCES users (id),
    recorded_at        timestamptz NOT NULL,
    PRIMARY KEY (exam_id, candidate_id),
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id),
    CHECK ((kind = 'certificate') = (certificate_number IS NOT NULL AND valid_until IS NOT NULL)),
    CHECK (valid_until IS NULL OR valid_until > issued_on),
    CHECK (kind = 'certificate' OR conclusion <> ''),
    CHECK (revoked_at IS NULL OR (kind = 'certificate' AND revocation_reason <> ''))
);

-- Every change of a certificate, oldest first: issued, extended, revoked.
CREATE TABLE certificate_changes (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    certificate_number text NOT NULL REFERENCES results (certificate_number),
    change             text NOT NULL CHECK (change IN ('issued', 'extended', 'revoked')),
    valid_until        date NOT NULL,
    reason             text NOT NULL DEFAULT '',
    changed_by         bigint REFERENCES users (id),
    changed_at         timestamptz NOT NULL
);
CREATE INDEX certificate_changes_number ON certificate_changes (certificate_number, id);

CREATE TABLE appeals (
    id           text PRIMARY KEY,
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'decided', 'closed')),
    reason       text NOT NULL CHECK (reason <> ''),
    filed_on     date NOT NULL,
    opened_by    bigint REFERENCES users (id),
    opened_at    timestamptz NOT NULL,
    outcome      text NOT NULL DEFAULT '' CHECK (outcome IN ('', 'upheld', 'rejected')),
    decision     text NOT NULL DEFAULT '',
    decided_by   bigint REFERENCES users (id),
    decided_at   timestamptz,
    closed_by    bigint REFERENCES users (id),
    closed_at    timestamptz,
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id),
    CHECK (status = 'open' OR (outcome <> '' AND decided_at IS NOT NULL) OR closed_at IS NOT NULL),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX appeals_candidate_exam ON appeals (exam_id, candidate_id);
CREATE INDEX appeals_unclosed ON appeals (status) WHERE status <> 'closed';

-- An expert's marks on a candidate's footage, at a time on the exam's
-- clock, and the expert's verdict on the procedure.
CREATE TABLE review_marks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    expert_id    bigint NOT NULL REFERENCES users (id),
    at           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('violation', 'note')),
    text         text NOT NULL CHECK (text <> ''),
    stream       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id)
);
CREATE INDEX review_marks_candidate_exam ON review_marks (exam_id, candidate_id, at);

CREATE TABLE review_verdicts (
    exam_id             text NOT NULL,
    candidate_id        text NOT NULL,
    expert_id           bigint NOT NULL REFERENCES users (id),
    procedure_confirmed boolean NOT NULL,
    reasons             text NOT NULL DEFAULT '',
    decided_at          timestamptz NOT NULL,
    PRIMARY KEY (exam_id, candidate_id, expert_id),
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id),
    CHECK (procedure_confirmed OR reasons <> '')
);

-- Retention settings of a council, for all its qualifications
-- (qualification_code '') or one of them. A missing row means the defaults:
-- a 30-day appeal window, a 90-day provisional period before any result,
-- and 30 days for footage that belongs to no exam.
CREATE TABLE retention_settings (
    council_id         text NOT NULL REFERENCES councils (id),
    qualification_code text NOT NULL DEFAULT '',
    appeal_window_days integer NOT NULL DEFAULT 30 CHECK (appeal_window_days BETWEEN 0 AND 3650),
    provisional_days   integer NOT NULL DEFAULT 90 CHECK (provisional_days BETWEEN 1 AND 3650),
    unlinked_days      integer NOT NULL DEFAULT 30 CHECK (unlinked_days BETWEEN 1 AND 3650),
    updated_by         bigint REFERENCES users (id),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (council_id, qualification_code)
);

-- Events written in the transaction of the change they announce, and
-- published by the relay afterwards: a bus outage loses none.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    value        bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE retention_settings;
DROP TABLE review_verdicts;
DROP TABLE review_marks;
DROP TABLE appeals;
DROP TABLE certificate_changes;
DROP TABLE results;
DROP TABLE exam_verifications;
DROP TABLE exam_decisions;
DROP TABLE protocol_approvals;
DROP TABLE protocols;
