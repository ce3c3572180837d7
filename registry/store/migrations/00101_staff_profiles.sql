-- Staff profiles and the privacy policy (issue 13): a staff user's full
-- name, position, phone, e-mail and region (152-FZ: these and no more),
-- and the version of the privacy policy they accepted, and when. Until a
-- user has accepted the current version, the API refuses them everything
-- but reading who they are, accepting it, changing the password and
-- logging out.

-- +goose Up
ALTER TABLE users
    ADD COLUMN full_name          text NOT NULL DEFAULT '' CHECK (length(full_name) <= 200),
    ADD COLUMN position           text NOT NULL DEFAULT '' CHECK (length(position) <= 200),
    ADD COLUMN phone              text NOT NULL DEFAULT '' CHECK (length(phone) <= 40),
    ADD COLUMN email              text NOT NULL DEFAULT '' CHECK (length(email) <= 200),
    ADD COLUMN region             text NOT NULL DEFAULT '' CHECK (length(region) <= 100),
    ADD COLUMN policy_version     text NOT NULL DEFAULT '',
    ADD COLUMN policy_accepted_at timestamptz;

-- +goose Down
ALTER TABLE users DROP COLUMN full_name, DROP COLUMN position, DROP COLUMN phone, DROP COLUMN email, DROP COLUMN region,
    DROP COLUMN policy_version, DROP COLUMN policy_accepted_at;
