-- The audit trail of an account or organisation (issue 14: NARK's cabinet
-- reads what a user did, and what users of an organisation did): by actor,
-- newest first.

-- +goose Up
CREATE INDEX audit_log_actor ON audit_log (actor_id, id) WHERE actor_id IS NOT NULL;

-- +goose Down
DROP INDEX audit_log_actor;
