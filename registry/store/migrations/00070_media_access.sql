-- Media access is audited in aggregate (issue 16): one audit_log row per
-- user, stream, purpose and 5-minute window, with how many fetches and the
-- span of time and footage they covered. media_access holds a window while
-- it is open: every registry adds what it served every few seconds, and the
-- window becomes one (hash-chained, append-only) audit_log row when it
-- closes. This table is not the audit log: its rows are added to and
-- deleted as windows close.

-- +goose Up
CREATE TABLE media_access (
    actor_id     bigint      NOT NULL,
    stream       text        NOT NULL,
    purpose      text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    actor_login  text        NOT NULL,
    remote_addrs text[]      NOT NULL, -- distinct, at most 16
    via          text[]      NOT NULL, -- "token", "signed_url"
    fetches      bigint      NOT NULL,
    ranged       bigint      NOT NULL, -- of which Range requests
    init         bigint      NOT NULL, -- of which init segments
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    media_from   timestamptz,          -- the footage fetched; NULL if only init segments
    media_to     timestamptz,
    PRIMARY KEY (actor_id, stream, purpose, window_start)
);
CREATE INDEX media_access_window_end ON media_access (window_end);

-- +goose Down
DROP TABLE media_access;
