-- Accounts and organisations (issue 13): NARK suspends and reactivates a
-- whole organisation; an organisation's admin disables and enables its own
-- users. A suspension blocks logins and sessions only: the organisation's
-- data stays, readable to NARK and its council.

-- +goose Up
-- org_admin: the user manages the accounts of their organisation.
-- disabled_by: the role of whoever disabled the account, so that an
-- organisation's admin cannot re-enable an account NARK suspended.
ALTER TABLE users
    ADD COLUMN org_admin   boolean NOT NULL DEFAULT false,
    ADD COLUMN disabled_by text NOT NULL DEFAULT '';

-- One row per suspended organisation; reactivation deletes it (the audit
-- log keeps both). Organisation ids are unique per kind only.
CREATE TABLE org_suspensions (
    kind         text NOT NULL CHECK (kind IN ('council', 'center', 'site')),
    org_id       text NOT NULL,
    reason       text NOT NULL CHECK (reason <> ''),
    suspended_by bigint REFERENCES users (id),
    suspended_at timestamptz NOT NULL,
    PRIMARY KEY (kind, org_id)
);

-- org_suspended reports whether a user of role in organisation org is
-- blocked by a suspension: of their council, center or site, and for a
-- site's users of the site's center too (a site works for its center).
-- An expert's organisation is a council or a center.
-- +goose StatementBegin
CREATE FUNCTION org_suspended(p_role text, p_org text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_org IS NOT NULL AND CASE p_role
        WHEN 'council' THEN EXISTS (SELECT 1 FROM org_suspensions s WHERE s.kind = 'council' AND s.org_id = p_org)
        WHEN 'center' THEN EXISTS (SELECT 1 FROM org_suspensions s WHERE s.kind = 'center' AND s.org_id = p_org)
        WHEN 'site' THEN EXISTS (SELECT 1 FROM org_suspensions s WHERE s.kind = 'site' AND s.org_id = p_org)
            OR EXISTS (SELECT 1 FROM sites t JOIN org_suspensions s ON s.kind = 'center' AND s.org_id = t.center_id WHERE t.id = p_org)
        WHEN 'expert' THEN EXISTS (SELECT 1 FROM org_suspensions s WHERE s.kind IN ('council', 'center') AND s.org_id = p_org)
        ELSE false END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION org_suspended(text, text);
DROP TABLE org_suspensions;
ALTER TABLE users DROP COLUMN disabled_by, DROP COLUMN org_admin;
