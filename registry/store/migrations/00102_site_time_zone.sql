-- Each exam site's time zone (issue 14): the pages show an exam's times in
-- its site's zone, with the zone named. Russia spans eleven zones; a site
-- that says nothing is in Moscow's.

-- +goose Up
ALTER TABLE sites ADD COLUMN time_zone text NOT NULL DEFAULT 'Europe/Moscow' CHECK (time_zone <> '');

-- +goose Down
ALTER TABLE sites DROP COLUMN time_zone;
