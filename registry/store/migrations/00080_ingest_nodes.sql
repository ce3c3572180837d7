-- Ingest nodes (issue 12): an ingest node holds no database; it asks the
-- registry's node API with a node token, of which the registry keeps the
-- SHA-256 only. A revoked node's token is refused from then on.
-- Failed node authentications are counted per minute, node and reason, so
-- that a flood of bad tokens adds rows no faster than minutes pass.

-- +goose Up
CREATE TABLE ingest_nodes (
    name       text PRIMARY KEY,
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    last_seen  timestamptz,
    last_addr  text NOT NULL DEFAULT ''
);

CREATE TABLE node_auth_audit (
    minute    timestamptz NOT NULL,
    node      text NOT NULL, -- a registered node, or '' when the token names none
    reason    text NOT NULL, -- missing, malformed, unknown, wrong, revoked
    last_addr text NOT NULL,
    count     integer NOT NULL,
    PRIMARY KEY (minute, node, reason)
);

-- +goose Down
DROP TABLE node_auth_audit;
DROP TABLE ingest_nodes;
