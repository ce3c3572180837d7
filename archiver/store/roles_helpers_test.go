package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/archiver/store"
)

// asRole returns owner's DSN for role with password (testenv's private
// cluster asks TCP clients for a password).
func asRole(t *testing.T, owner, role, password string) string {
	t.Helper()
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// archiverWork does the archiver's work on s, as who: it archives a
// segment and its init, records and reports the segment's deletion, and
// publishes the records of all three. It returns the segment's key.
func archiverWork(t *testing.T, s *store.Store, who string) string {
	t.Helper()
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	seg := store.ArchiveObject{Key: "site1/cam1/000001.m4s", Kind: store.ArchiveSegment, StreamID: "site1/cam1", Site: "site1",
		Start: at, End: at.Add(6 * time.Second), InitKey: "site1/cam1/init.mp4", RetainUntil: at, Rule: "unlinked", DecidedAt: at}
	init := store.ArchiveObject{Key: seg.InitKey, Kind: store.ArchiveInit, StreamID: "site1/cam1", Site: "site1",
		Start: seg.Start, End: seg.End, RetainUntil: at, Rule: "serves", DecidedAt: at}
	if err := s.SaveArchivedSegment(ctx, seg, init, store.StreamChain{StreamID: "site1/cam1", Chain: strings.Repeat("0", 64),
		SegmentID: "s1"}); err != nil {
		t.Fatalf("archive a segment as %s: %v", who, err)
	}
	if err := s.RecordDeletion(ctx, seg.Key, at, []byte(`{"rule":"unlinked"}`)); err != nil {
		t.Fatalf("record a deletion as %s: %v", who, err)
	}
	if err := s.DeletionReported(ctx, seg.Key, at); err != nil {
		t.Fatalf("record its report as %s: %v", who, err)
	}
	if n, err := s.ReportRecords(ctx, 10, at, func(context.Context, string, []byte) error { return nil }); err != nil || n != 3 {
		t.Fatalf("publish the records of the segment, its init and its deletion as %s: %d, %v", who, n, err)
	}
	return seg.Key
}

// refused runs each attack on dsn, as who, and wants each refused with
// permission denied (42501).
func refused(t *testing.T, dsn, who string, attacks ...string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, attack := range attacks {
		_, err := conn.Exec(ctx, attack)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "42501" {
			t.Errorf("as %s, %q: %v, want permission denied", who, attack, err)
		}
	}
}
