package pgmigrate_test

import (
	"slices"
	"testing"
	"testing/fstest"

	"github.com/nokstream/nokstream/internal/pgmigrate"
)

// TestVersions: a schema's versions are the numbers its migrations' names
// start with; other files are not versions, and a build with none is an
// error rather than a schema that is always current.
func TestVersions(t *testing.T) {
	got, err := pgmigrate.Versions(fstest.MapFS{
		"00001_init.sql":      {Data: []byte("-- +goose Up")},
		"00010_records.sql":   {Data: []byte("-- +goose Up")},
		"00002_facts.sql":     {Data: []byte("-- +goose Up")},
		"README":              {Data: []byte("not a migration")},
		"draft_later.sql":     {Data: []byte("no number")},
		"00003_dir/x.sql":     {Data: []byte("in a directory")},
		"20260301_events.sql": {Data: []byte("-- +goose Up")},
	})
	if err != nil || !slices.Equal(got, []int64{1, 2, 10, 20260301}) {
		t.Errorf("versions %v, %v; want [1 2 10 20260301]", got, err)
	}
	if _, err := pgmigrate.Versions(fstest.MapFS{"README": {Data: []byte("x")}}); err == nil {
		t.Error("no migrations: no error")
	}
}
