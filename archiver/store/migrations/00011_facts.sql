-- The archiver's own copy of the registry's facts it decides retention
-- from (issue 12, step (b); docs/NOTES.md, Session 6), fed by the events of
-- topic nokstream.retention.v2: a snapshot of each candidate-exam
-- (RetentionChangedV2), each council's settings (RetentionSettingsChanged)
-- and the registry relay's watermark (FactsWatermark). A snapshot replaces
-- the one kept only if its seq (the registry's outbox id) is higher.

-- +goose Up
CREATE TABLE archiver.candidate_exams (
    exam_id       text NOT NULL,
    candidate_id  text NOT NULL,
    seq           bigint NOT NULL,
    council       text NOT NULL,
    site          text NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    -- What OverdueEvidence asks: a result in the register, a disposal, an
    -- appeal closed.
    has_result    boolean NOT NULL,
    disposed      boolean NOT NULL,
    appeal_closed boolean NOT NULL,
    facts         jsonb NOT NULL, -- the RetentionChangedV2 snapshot
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exam_id, candidate_id)
);
CREATE INDEX candidate_exams_site_time ON archiver.candidate_exams (site, starts_at);
CREATE INDEX candidate_exams_open ON archiver.candidate_exams (ends_at) WHERE NOT has_result AND NOT disposed AND NOT appeal_closed;

-- The documents of each kept snapshot: which candidate-exams a document is
-- evidence of.
CREATE TABLE archiver.candidate_exam_documents (
    object_key   text NOT NULL,
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    PRIMARY KEY (object_key, exam_id, candidate_id),
    FOREIGN KEY (exam_id, candidate_id) REFERENCES archiver.candidate_exams ON DELETE CASCADE
);
CREATE INDEX candidate_exam_documents_ce ON archiver.candidate_exam_documents (exam_id, candidate_id);

-- Each council's retention settings and the sites of its centers.
CREATE TABLE archiver.retention_settings (
    council  text PRIMARY KEY,
    seq      bigint NOT NULL,
    settings jsonb NOT NULL, -- []events.CouncilSettings
    sites    text[] NOT NULL
);
CREATE INDEX retention_settings_sites ON archiver.retention_settings USING gin (sites);

-- The newest watermark consumed: the copy holds every fact the registry
-- committed before `at`.
CREATE TABLE archiver.facts_watermark (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE archiver.facts_watermark;
DROP TABLE archiver.retention_settings;
DROP TABLE archiver.candidate_exam_documents;
DROP TABLE archiver.candidate_exams;
