-- The transcoder's renditions (issue 6): for each raw segment, its review
-- rendition (CMAF fMP4 segment and init segment) and its thumbnails (JPEG
-- sprite and WebVTT fragment), from RenditionReady events.

-- +goose Up
-- One row per segment and variant. No foreign key to segments: the
-- registry may index a rendition before the segment it was made from (two
-- consumer groups). The whole event is kept in event; the columns are what
-- queries select on and what media requests are checked against.
CREATE TABLE renditions (
    segment_id    text NOT NULL,
    variant       text NOT NULL CHECK (variant <> ''),
    stream_id     text NOT NULL,
    site          text NOT NULL,
    device        text NOT NULL,
    sequence      bigint NOT NULL,
    start_at      timestamptz NOT NULL,
    end_at        timestamptz NOT NULL CHECK (end_at > start_at),
    source_sha256 text NOT NULL,
    object_key    text NOT NULL,
    object_bytes  bigint NOT NULL,
    object_sha256 text NOT NULL,
    init_key      text NOT NULL,
    init_bytes    bigint NOT NULL,
    init_sha256   text NOT NULL,
    sprite_key    text,
    sprite_bytes  bigint,
    sprite_sha256 text,
    vtt_key       text,
    vtt_bytes     bigint,
    vtt_sha256    text,
    done_at       timestamptz NOT NULL,
    event         jsonb NOT NULL,
    indexed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, variant)
);
CREATE INDEX renditions_stream_start ON renditions (stream_id, start_at);
CREATE INDEX renditions_object_key ON renditions (object_key);
CREATE INDEX renditions_init_key ON renditions (init_key);
CREATE INDEX renditions_sprite_key ON renditions (sprite_key);
CREATE INDEX renditions_vtt_key ON renditions (vtt_key);

-- +goose Down
DROP TABLE renditions;
