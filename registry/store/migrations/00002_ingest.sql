-- Ingest for real exam sites (issue 3): the observations index (what was
-- and was not captured, second by second) and the cameras ingest pulls,
-- with their URLs encrypted at rest.

-- +goose Up
-- One row per observation, keyed by observation_id, which the reporter
-- derives from the content: the same observation twice is one row. No
-- foreign key to devices: like segments, observations outlive devices.
CREATE TABLE observations (
    observation_id text PRIMARY KEY,
    stream_id      text NOT NULL,
    site           text NOT NULL,
    device         text NOT NULL,
    kind           text NOT NULL CHECK (kind <> ''),
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL CHECK (end_at >= start_at),
    measure        double precision NOT NULL DEFAULT 0,
    detail         text NOT NULL DEFAULT '',
    reporter       text NOT NULL DEFAULT '',
    segment_id     text NOT NULL DEFAULT '',
    indexed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX observations_stream_start ON observations (stream_id, start_at);

-- A device that ingest pulls: its camera URL (with credentials) sealed with
-- AES-256-GCM under the installation's secrets key, the device's
-- "<site>/<name>" as additional data. The registry never sees the key.
CREATE TABLE device_pulls (
    site       text NOT NULL,
    name       text NOT NULL,
    url_sealed bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, name),
    FOREIGN KEY (site, name) REFERENCES devices (site, name) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE device_pulls;
DROP TABLE observations;
