-- Multi-industry centers (issue 13): a center keeps its home council
-- (centers.council_id) and may be authorised by further councils for
-- qualifications of theirs. An authorisation is a row per (center, council,
-- qualification); the council is always the qualification's own, which the
-- foreign key to qualifications (code, council_id) holds.
--
-- An exam belongs to the council that authorised its center for its
-- qualification, fixed when the exam is created (store.examCouncil): that
-- council approves its cards, sees its evidence and sets its retention.
-- Withdrawing the authorisation later stops new exams, and re-attributes
-- nothing. Existing exams keep the council they had: their center's.

-- +goose Up
ALTER TABLE qualifications ADD CONSTRAINT qualifications_code_council UNIQUE (code, council_id);

ALTER TABLE center_qualifications
    ADD COLUMN council_id    text REFERENCES councils (id),
    ADD COLUMN authorised_by bigint REFERENCES users (id);
UPDATE center_qualifications a SET council_id = q.council_id FROM qualifications q WHERE q.code = a.qualification_code;
ALTER TABLE center_qualifications
    ALTER COLUMN council_id SET NOT NULL,
    ADD CONSTRAINT center_qualifications_council FOREIGN KEY (qualification_code, council_id)
        REFERENCES qualifications (code, council_id);
CREATE INDEX center_qualifications_by_council ON center_qualifications (council_id, center_id);

ALTER TABLE exams ADD COLUMN council_id text REFERENCES councils (id);
UPDATE exams e SET council_id = c.council_id FROM centers c WHERE c.id = e.center_id;
ALTER TABLE exams ALTER COLUMN council_id SET NOT NULL;
CREATE INDEX exams_council ON exams (council_id, starts_at);

-- +goose Down
DROP INDEX exams_council;
ALTER TABLE exams DROP COLUMN council_id;
-- Further councils' authorisations have no place without the column.
DELETE FROM center_qualifications a USING centers c WHERE c.id = a.center_id AND a.council_id <> c.council_id;
DROP INDEX center_qualifications_by_council;
ALTER TABLE center_qualifications DROP CONSTRAINT center_qualifications_council;
ALTER TABLE center_qualifications DROP COLUMN authorised_by, DROP COLUMN council_id;
ALTER TABLE qualifications DROP CONSTRAINT qualifications_code_council;
