-- Security hardening (the open security issue): login attempts counted
-- before the password is checked, addresses a login has succeeded from,
-- failed and throttled logins audited in aggregate, and session ids that
-- signed links are bound to.

-- +goose Up
-- One row per login attempt that was let through to a password check and
-- has not (yet) succeeded. kind is "staff" or "exam"; login is "" for exam
-- logins, which count per address only.
CREATE TABLE login_attempts (
    id    bigserial PRIMARY KEY,
    kind  text NOT NULL,
    login text NOT NULL,
    addr  text NOT NULL,
    at    timestamptz NOT NULL
);
CREATE INDEX login_attempts_login ON login_attempts (kind, login, at);
CREATE INDEX login_attempts_addr ON login_attempts (kind, addr, at);

-- Client addresses a login has succeeded from: over the login's global
-- ceiling they are slowed, not refused.
CREATE TABLE login_known_addrs (
    login     text NOT NULL,
    addr      text NOT NULL,
    last_at   timestamptz NOT NULL,
    PRIMARY KEY (login, addr)
);

-- Failed, throttled and refused logins, one row per action, login and
-- client address per minute with a count, so that a flood of attempts
-- cannot grow the audit trail without bound.
CREATE TABLE login_audit (
    minute timestamptz NOT NULL,
    action text NOT NULL,
    login  text NOT NULL,
    addr   text NOT NULL,
    count  integer NOT NULL,
    PRIMARY KEY (minute, action, login, addr)
);

-- login_attempts replaces the failures counted after the check.
DROP TABLE login_failures;

-- Signed links name the session that made them.
ALTER TABLE sessions ADD COLUMN id bigserial;
CREATE UNIQUE INDEX sessions_id ON sessions (id);

-- +goose Down
DROP INDEX sessions_id;
ALTER TABLE sessions DROP COLUMN id;
DROP TABLE login_audit;
DROP TABLE login_known_addrs;
DROP TABLE login_attempts;
CREATE TABLE login_failures (
    key text NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
