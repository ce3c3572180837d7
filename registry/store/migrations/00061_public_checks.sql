-- Public checks of certificates counted per client address and minute,
-- for a rate limit that every registry replica shares.

-- +goose Up
CREATE TABLE public_checks (
    addr   text NOT NULL,
    minute timestamptz NOT NULL,
    n      integer NOT NULL,
    PRIMARY KEY (addr, minute)
);

-- +goose Down
DROP TABLE public_checks;
