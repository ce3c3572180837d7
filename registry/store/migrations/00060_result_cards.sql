-- Result cards (issue 13): a result is a card per candidate-exam that goes
-- through the register's procedure: draft → submitted → approved, rejected
-- or returned by the council → verified or not_verified by NARK →
-- registered. Rows of results before this migration were entered directly
-- and are registered. A certificate exists in the register (lookups,
-- retention, the public check) only from approved on; its number is unique
-- nationally from the draft on.

-- +goose Up
-- The council approves only when the center has its actual address too.
ALTER TABLE centers ADD COLUMN actual_address text NOT NULL DEFAULT '';

ALTER TABLE results
    ADD COLUMN state        text NOT NULL DEFAULT 'registered'
        CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'returned', 'verified', 'not_verified', 'registered')),
    ADD COLUMN state_reason text NOT NULL DEFAULT '',
    ADD COLUMN state_by     bigint REFERENCES users (id),
    ADD COLUMN state_at     timestamptz,
    ADD COLUMN submitted_at timestamptz,
    ADD COLUMN approved_at  timestamptz,
    ADD COLUMN updated_at   timestamptz;
UPDATE results SET state_at = recorded_at, updated_at = recorded_at;
ALTER TABLE results ALTER COLUMN state SET DEFAULT 'draft';
ALTER TABLE results ALTER COLUMN state_at SET NOT NULL, ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE results ADD CONSTRAINT results_state_reason
    CHECK (state NOT IN ('rejected', 'returned', 'not_verified') OR state_reason <> '');
CREATE INDEX results_exam_state ON results (exam_id, state);

-- A NARK correction may change a certificate's number: its history follows.
ALTER TABLE certificate_changes DROP CONSTRAINT certificate_changes_certificate_number_fkey;
ALTER TABLE certificate_changes ADD CONSTRAINT certificate_changes_certificate_number_fkey
    FOREIGN KEY (certificate_number) REFERENCES results (certificate_number) ON UPDATE CASCADE;
ALTER TABLE certificate_changes DROP CONSTRAINT certificate_changes_change_check;
ALTER TABLE certificate_changes ADD CONSTRAINT certificate_changes_change_check
    CHECK (change IN ('issued', 'extended', 'revoked', 'corrected'));

-- Every change of a card's state, and every NARK correction with what it
-- changed: nothing about a card changes silently.
CREATE TABLE result_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    from_state   text NOT NULL DEFAULT '',
    to_state     text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    changes      jsonb,
    by_user      bigint REFERENCES users (id),
    at           timestamptz NOT NULL,
    FOREIGN KEY (exam_id, candidate_id) REFERENCES results (exam_id, candidate_id) ON DELETE CASCADE
);
CREATE INDEX result_transitions_card ON result_transitions (exam_id, candidate_id, id);

-- The council's approval protocol (its number, date, and a scan or a link)
-- goes with an approval; a late decision or verification says why.
ALTER TABLE exam_decisions
    ADD COLUMN protocol_number   text NOT NULL DEFAULT '',
    ADD COLUMN protocol_date     date,
    ADD COLUMN protocol_document text REFERENCES documents (id),
    ADD COLUMN protocol_link     text NOT NULL DEFAULT '',
    ADD COLUMN late_reason       text NOT NULL DEFAULT '';
ALTER TABLE exam_decisions ADD CONSTRAINT exam_decisions_protocol
    CHECK (decision <> 'approved' OR (protocol_number <> '' AND protocol_date IS NOT NULL
        AND (protocol_document IS NOT NULL OR protocol_link <> ''))) NOT VALID;
ALTER TABLE exam_verifications
    ADD COLUMN candidates  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN late_reason text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE centers DROP COLUMN actual_address;
ALTER TABLE exam_verifications DROP COLUMN candidates, DROP COLUMN late_reason;
ALTER TABLE exam_decisions DROP CONSTRAINT exam_decisions_protocol;
ALTER TABLE exam_decisions DROP COLUMN protocol_number, DROP COLUMN protocol_date, DROP COLUMN protocol_document,
    DROP COLUMN protocol_link, DROP COLUMN late_reason;
DROP TABLE result_transitions;
DELETE FROM certificate_changes WHERE change = 'corrected';
ALTER TABLE certificate_changes DROP CONSTRAINT certificate_changes_change_check;
ALTER TABLE certificate_changes ADD CONSTRAINT certificate_changes_change_check
    CHECK (change IN ('issued', 'extended', 'revoked'));
ALTER TABLE certificate_changes DROP CONSTRAINT certificate_changes_certificate_number_fkey;
ALTER TABLE certificate_changes ADD CONSTRAINT certificate_changes_certificate_number_fkey
    FOREIGN KEY (certificate_number) REFERENCES results (certificate_number);
DROP INDEX results_exam_state;
ALTER TABLE results DROP CONSTRAINT results_state_reason;
ALTER TABLE results DROP COLUMN state, DROP COLUMN state_reason, DROP COLUMN state_by, DROP COLUMN state_at,
    DROP COLUMN submitted_at, DROP COLUMN approved_at, DROP COLUMN updated_at;
