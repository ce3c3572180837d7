package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// open returns a store on a fresh, migrated database with the organisation
// chain council1 → center1 → site1, and its DSN.
func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	// Tests hash at OWASP's minimum cost: the default's 64 MiB and
	// three passes a login were most of make test's CPU here.
	if err := s.SetPasswordHashing(store.MinimumPasswordHashing()); err != nil {
		t.Fatal(err)
	}
	storetest.Org(t, s, "council1", "center1", "site1")
	return s, dsn
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	if _, err := s.AddDevice(ctx, "site1", "cam1", store.KindRoom); err != nil {
		t.Fatalf("add device: %v", err)
	}
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	// The data survived and the schema still works.
	if _, err := s.AddDevice(ctx, "site1", "cam1", store.KindRoom); !errors.Is(err, store.ErrExists) {
		t.Fatalf("add device after second migrate: got %v, want ErrExists", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- store.Migrate(ctx, dsn) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
}

func TestDeviceAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	secret, err := s.AddDevice(ctx, "site1", "cam1", store.KindRoom)
	if err != nil {
		t.Fatalf("add device: %v", err)
	}
	if len(secret) < 40 {
		t.Fatalf("secret %d characters long, want a 32-byte secret", len(secret))
	}

	tests := []struct {
		name                       string
		site, device, user, secret string
		want                       error
	}{
		{"right", "site1", "cam1", "cam1", secret, nil},
		{"unknown device", "site1", "cam2", "cam2", secret, store.ErrUnknownDevice},
		{"unknown site", "site2", "cam1", "cam1", secret, store.ErrUnknownDevice},
		{"invalid name", "site1", "../cam1", "cam1", secret, store.ErrUnknownDevice},
		{"wrong secret", "site1", "cam1", "cam1", secret + "x", store.ErrBadCredentials},
		{"no credentials", "site1", "cam1", "", "", store.ErrBadCredentials},
		{"wrong user", "site1", "cam1", "admin", secret, store.ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := s.AuthenticateDevice(ctx, tt.site, tt.device, tt.user, tt.secret)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err == nil && (d.Site != "site1" || d.Name != "cam1" || d.Kind != store.KindRoom || d.StreamID() != "site1/cam1") {
				t.Errorf("got device %+v", d)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}

	t.Run("rotate", func(t *testing.T) {
		newSecret, err := s.RotateDeviceSecret(ctx, "site1", "cam1")
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if _, err := s.AuthenticateDevice(ctx, "site1", "cam1", "cam1", secret); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("old secret after rotation: got %v, want ErrBadCredentials", err)
		}
		if _, err := s.AuthenticateDevice(ctx, "site1", "cam1", "cam1", newSecret); err != nil {
			t.Errorf("new secret: %v", err)
		}
		if _, err := s.RotateDeviceSecret(ctx, "site1", "nope"); !errors.Is(err, store.ErrUnknownDevice) {
			t.Errorf("rotate unknown device: got %v, want ErrUnknownDevice", err)
		}
	})
}

func TestAddDeviceInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	tests := []struct{ site, device, kind string }{
		{"Site1", "cam1", store.KindRoom},
		{"site1", "cam/1", store.KindRoom},
		{"site1", "", store.KindRoom},
		{"-site", "cam1", store.KindRoom},
		{"site1", strings.Repeat("a", 64), store.KindRoom},
		{"site1", "cam1", "microphone"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.site, tt.device, tt.kind), func(t *testing.T) {
			if _, err := s.AddDevice(ctx, tt.site, tt.device, tt.kind); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.AddDevice(ctx, "site1", "cam1", store.KindWebcam); err != nil {
		t.Fatalf("add: %v", err)
	}
	if _, err := s.AddDevice(ctx, "site1", "cam1", store.KindWebcam); !errors.Is(err, store.ErrExists) {
		t.Errorf("add twice: got %v, want ErrExists", err)
	}
	// Another device on the existing site is fine.
	if _, err := s.AddDevice(ctx, "site1", "screen1", store.KindScreen); err != nil {
		t.Errorf("add second device: %v", err)
	}
	// A device needs an existing site.
	if _, err := s.AddDevice(ctx, "site9", "cam1", store.KindRoom); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("add device at an unknown site: got %v, want ErrNotFound", err)
	}
}

func TestUsersAndSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	temp, err := s.AddUser(ctx, "Operator", store.RoleNARK, "")
	if err != nil {
		t.Fatalf("add user: %v", err)
	}
	if _, err := s.AddUser(ctx, "operator", store.RoleNARK, ""); !errors.Is(err, store.ErrExists) {
		t.Errorf("add same login again: got %v, want ErrExists", err)
	}
	if _, err := s.AddUser(ctx, "someone", "admin", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("add with bad role: got %v, want ErrInvalid", err)
	}

	u, err := s.Login(ctx, "operator", temp)
	if err != nil {
		t.Fatalf("login with temporary password: %v", err)
	}
	if !u.MustChangePassword || u.Role != store.RoleNARK || u.Login != "operator" || u.OrgID != "" {
		t.Errorf("got user %+v, want nark operator that must change password", u)
	}
	for _, tt := range []struct{ login, password string }{
		{"operator", temp + "x"},
		{"operator", ""},
		{"nobody", temp},
	} {
		if _, err := s.Login(ctx, tt.login, tt.password); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("login %q with a wrong password: got %v, want ErrBadCredentials", tt.login, err)
		}
	}

	token, expires, err := s.CreateSession(ctx, u.ID, now, time.Hour)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if !expires.Equal(now.Add(time.Hour)) {
		t.Errorf("expires %v, want %v", expires, now.Add(time.Hour))
	}
	if got, err := s.UserByToken(ctx, token, now.Add(time.Minute)); err != nil || got.ID != u.ID {
		t.Errorf("user by token: got %+v, %v", got, err)
	}
	if _, err := s.UserByToken(ctx, token, now.Add(time.Hour)); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("user by expired token: got %v, want ErrBadCredentials", err)
	}
	if _, err := s.UserByToken(ctx, token+"x", now); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("user by wrong token: got %v, want ErrBadCredentials", err)
	}

	const newPassword = "correct horse battery"
	if err := s.ChangePassword(ctx, u.ID, temp, "short"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("change to a short password: got %v, want ErrInvalid", err)
	}
	if err := s.ChangePassword(ctx, u.ID, temp, temp); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("change to the same password: got %v, want ErrInvalid", err)
	}
	if err := s.ChangePassword(ctx, u.ID, "wrong old password", newPassword); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("change with a wrong old password: got %v, want ErrBadCredentials", err)
	}
	if err := s.ChangePassword(ctx, u.ID, temp, newPassword); err != nil {
		t.Fatalf("change password: %v", err)
	}
	if _, err := s.UserByToken(ctx, token, now); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("session from before the password change: got %v, want ErrBadCredentials", err)
	}
	if _, err := s.Login(ctx, "operator", temp); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("login with the old password: got %v, want ErrBadCredentials", err)
	}
	u2, err := s.Login(ctx, "OPERATOR ", newPassword)
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if u2.MustChangePassword || u2.ID != u.ID {
		t.Errorf("after the change got %+v", u2)
	}
	if got, err := s.UserByID(ctx, u.ID); err != nil || got.Login != "operator" {
		t.Errorf("user by id: %+v, %v", got, err)
	}
	if _, err := s.UserByID(ctx, u.ID+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user by id: got %v, want ErrNotFound", err)
	}

	token2, _, err := s.CreateSession(ctx, u.ID, now, time.Hour)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if err := s.DeleteSession(ctx, token2); err != nil {
		t.Fatalf("delete session: %v", err)
	}
	if _, err := s.UserByToken(ctx, token2, now); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("deleted session: got %v, want ErrBadCredentials", err)
	}
}

// segmentEvent returns a valid event for segment seq of stream site1/cam1.
func segmentEvent(seq int64, start time.Time) *events.SegmentClosed {
	hex := func(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), 32) }
	return &events.SegmentClosed{
		SegmentID:  fmt.Sprintf("seg-%d", seq),
		StreamID:   "site1/cam1",
		Source:     events.SourceRoom,
		Site:       "site1",
		Device:     "cam1",
		Sequence:   seq,
		Start:      start,
		Duration:   6,
		Codecs:     []string{"avc1.64001f", "mp4a.40.2"},
		Bytes:      1000 + seq,
		SHA256:     hex(byte(seq)),
		PrevChain:  hex(0),
		Chain:      hex(byte(seq + 100)),
		ObjectKey:  fmt.Sprintf("site1/cam1/%06d.m4s", seq),
		InitKey:    "site1/cam1/init-1.mp4",
		InitSHA256: hex(0xee),
		InitBytes:  700,
		IngestNode: "node1",
	}
}

func TestIndexSegmentIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	e := segmentEvent(0, t0)

	inserted, err := s.IndexSegment(ctx, e)
	if err != nil || !inserted {
		t.Fatalf("first index: inserted=%v err=%v", inserted, err)
	}
	inserted, err = s.IndexSegment(ctx, e)
	if err != nil || inserted {
		t.Fatalf("second index of the same event: inserted=%v err=%v, want false, nil", inserted, err)
	}
	segs, err := s.Segments(ctx, "site1", "cam1", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("segments: %v", err)
	}
	if len(segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(segs))
	}
	g := segs[0]
	if g.SegmentClosed.SegmentID != e.SegmentID || !g.Start.Equal(t0) || g.Duration != 6 || g.SHA256 != e.SHA256 ||
		!g.End.Equal(t0.Add(6*time.Second)) || len(g.Codecs) != 2 || g.InitKey != e.InitKey {
		t.Errorf("indexed segment %+v does not match event %+v", g, e)
	}

	conflicting := *e
	conflicting.SHA256 = strings.Repeat("ab", 32)
	if _, err := s.IndexSegment(ctx, &conflicting); !errors.Is(err, store.ErrConflict) {
		t.Errorf("same id, other bytes: got %v, want ErrConflict", err)
	}
	invalid := *segmentEvent(1, t0)
	invalid.Chain = ""
	if _, err := s.IndexSegment(ctx, &invalid); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("invalid event: got %v, want ErrInvalid", err)
	}

	got, err := s.SegmentByID(ctx, e.SegmentID)
	if err != nil || got.Sequence != 0 {
		t.Errorf("segment by id: %+v, %v", got, err)
	}
	if _, err := s.SegmentByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown segment: got %v, want ErrNotFound", err)
	}
}

func TestSegmentsRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	// Indexed out of order: the index orders them.
	for _, seq := range []int64{3, 0, 2, 1} {
		if _, err := s.IndexSegment(ctx, segmentEvent(seq, t0.Add(time.Duration(seq)*6*time.Second))); err != nil {
			t.Fatalf("index %d: %v", seq, err)
		}
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     []int64
	}{
		{"all", t0, t0.Add(24 * time.Second), []int64{0, 1, 2, 3}},
		{"inside one segment", t0.Add(7 * time.Second), t0.Add(8 * time.Second), []int64{1}},
		{"end is exclusive", t0, t0.Add(6 * time.Second), []int64{0}},
		{"overlapping both ends", t0.Add(5 * time.Second), t0.Add(13 * time.Second), []int64{0, 1, 2}},
		{"before", t0.Add(-time.Hour), t0, nil},
		{"after", t0.Add(24 * time.Second), t0.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs, err := s.Segments(ctx, "site1", "cam1", tt.from, tt.to)
			if err != nil {
				t.Fatalf("segments: %v", err)
			}
			var got []int64
			for _, g := range segs {
				got = append(got, g.Sequence)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got sequences %v, want %v", got, tt.want)
			}
		})
	}
	if segs, err := s.Segments(ctx, "site1", "cam2", t0, t0.Add(time.Hour)); err != nil || len(segs) != 0 {
		t.Errorf("other stream: %d segments, %v", len(segs), err)
	}

	exists, err := s.StreamExists(ctx, "site1", "cam1")
	if err != nil || !exists {
		t.Errorf("stream with segments exists: %v, %v", exists, err)
	}
	if exists, err := s.StreamExists(ctx, "site1", "cam2"); err != nil || exists {
		t.Errorf("unknown stream exists: %v, %v", exists, err)
	}

	o, err := s.ObjectByKey(ctx, "site1/cam1/000002.m4s")
	if err != nil || o.Init || o.SegmentID != "seg-2" || o.Bytes != 1002 || o.Site != "site1" || o.Device != "cam1" {
		t.Errorf("segment object: %+v, %v", o, err)
	}
	o, err = s.ObjectByKey(ctx, "site1/cam1/init-1.mp4")
	if err != nil || !o.Init || o.Bytes != 700 || o.SHA256 != strings.Repeat("ee", 32) {
		t.Errorf("init object: %+v, %v", o, err)
	}
	if _, err := s.ObjectByKey(ctx, "site1/cam1/other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown object: got %v, want ErrNotFound", err)
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	entry := store.AuditEntry{
		At: at, ActorID: 7, ActorLogin: "operator", Action: "media.get",
		Object: "site1/cam1/000001.m4s", RemoteAddr: "192.0.2.1:5000", Purpose: "appeal 12",
		Detail: map[string]any{"range": "bytes=0-99"},
	}
	if err := s.Audit(ctx, entry); err != nil {
		t.Fatalf("audit: %v", err)
	}
	if err := s.Audit(ctx, store.AuditEntry{Action: "auth.login_failed", ActorLogin: "nobody"}); err != nil {
		t.Fatalf("audit without actor: %v", err)
	}
	log, err := s.AuditLog(ctx, 0, 10)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if len(log) != 2 {
		t.Fatalf("got %d entries, want 2", len(log))
	}
	got := log[0]
	if !got.At.Equal(at) || got.ActorID != 7 || got.Purpose != "appeal 12" || got.Detail["range"] != "bytes=0-99" || got.Object != entry.Object {
		t.Errorf("got entry %+v", got)
	}
	if log[1].ActorID != 0 || log[1].At.IsZero() {
		t.Errorf("entry without actor: %+v", log[1])
	}
	if more, err := s.AuditLog(ctx, log[1].ID, 10); err != nil || len(more) != 0 {
		t.Errorf("after the last id: %d entries, %v", len(more), err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`UPDATE audit_log SET purpose = 'nothing'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		if _, err := conn.Exec(ctx, sql); err == nil {
			t.Errorf("%s: succeeded, want refused", sql)
		}
	}
	if log, err := s.AuditLog(ctx, 0, 10); err != nil || len(log) != 2 || log[0].Purpose != "appeal 12" {
		t.Errorf("after tampering attempts: %d entries, %v", len(log), err)
	}
}

// TestSweptSegmentStaysOut: when the archiver reports (events.ObjectDeleted) that its sweeper
// deleted a segment, the segment leaves the index and the audit log says
// so, once however often it is reported; a replay of the segment's event
// does not bring it back, and an event of the same key with other bytes is
// a conflict.
func TestSweptSegmentStaysOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	e := segmentEvent(0, t0)
	if _, err := s.IndexSegment(ctx, e); err != nil {
		t.Fatal(err)
	}
	deleted := &events.ObjectDeleted{ObjectKey: e.ObjectKey, Kind: "segment", StreamID: e.StreamID, Bytes: e.Bytes,
		SHA256: e.SHA256, Rule: "unlinked", RetainUntil: t0.Add(time.Hour), MarkedAt: t0.Add(time.Hour),
		DeletedAt: t0.Add(2 * time.Hour), Archiver: "archiver-1",
		Reasons: []events.DeletionReason{{Rule: "unlinked", Until: t0.Add(time.Hour), Detail: "footage of no exam"}}}
	for i, want := range []bool{true, false} {
		recorded, err := s.RecordDeletion(ctx, deleted)
		if err != nil || recorded != want {
			t.Fatalf("report %d of the deletion: recorded=%v err=%v, want %v", i+1, recorded, err, want)
		}
	}
	if segs, err := s.Segments(ctx, "site1", "cam1", t0.Add(-time.Hour), t0.Add(time.Hour)); err != nil || len(segs) != 0 {
		t.Errorf("segments after the sweep: %d, %v; want none", len(segs), err)
	}
	trail, err := s.ObjectAudit(ctx, []string{e.ObjectKey}, t0, 10)
	if err != nil || len(trail) != 1 || trail[0].Action != "archive.delete" || trail[0].Detail["rule"] != "unlinked" ||
		trail[0].ActorLogin != "archiver" || !trail[0].At.Equal(deleted.DeletedAt) {
		t.Errorf("audit of the sweep: %+v, %v; want one archive.delete entry", trail, err)
	}
	if inserted, err := s.IndexSegment(ctx, e); err != nil || inserted {
		t.Errorf("replay of a swept segment: inserted=%v err=%v, want false, nil", inserted, err)
	}
	if _, errs, err := s.IndexSegments(ctx, []*events.SegmentClosed{e}); err != nil || errs[0] != nil {
		t.Errorf("batch replay of a swept segment: %v, %v", errs, err)
	}
	if segs, _ := s.Segments(ctx, "site1", "cam1", t0.Add(-time.Hour), t0.Add(time.Hour)); len(segs) != 0 {
		t.Errorf("a replay brought a swept segment back: %d segments", len(segs))
	}
	other := *e
	other.SHA256 = strings.Repeat("ab", 32)
	if _, err := s.IndexSegment(ctx, &other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a swept key announced with other bytes: %v, want ErrConflict", err)
	}
	wrong := *deleted
	wrong.DeletedAt = time.Time{}
	if _, err := s.RecordDeletion(ctx, &wrong); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a report without its date: %v, want ErrInvalid", err)
	}
}

// Segments reads its rows without a string per column (collectSegments):
// every field of every row must still be what that segment's event said,
// when values change from one row to the next (codecs, init segment, ingest
// node, flags) and when they repeat, as SegmentByID reads it one by one.
func TestSegmentsEveryField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var want []*events.SegmentClosed
	for seq := range int64(40) {
		e := segmentEvent(seq, t0.Add(time.Duration(seq)*6*time.Second))
		switch seq % 4 {
		case 1:
			e.Codecs = []string{"avc1.640028"}
			e.InitKey, e.InitSHA256 = fmt.Sprintf("site1/cam1/init-%d.mp4", seq), strings.Repeat("ab", 32)
			e.Discontinuity = true
		case 2:
			e.Codecs = []string{"avc1.640028"}
			e.IngestNode = "node2"
			e.Independent = new(bool)
		case 3:
			e.Codecs = nil
			e.Salvaged = true
		}
		if _, err := s.IndexSegment(ctx, e); err != nil {
			t.Fatalf("index %d: %v", seq, err)
		}
		want = append(want, e)
	}
	segs, err := s.Segments(ctx, "site1", "cam1", t0, t0.Add(time.Hour))
	if err != nil || len(segs) != len(want) {
		t.Fatalf("segments: %d, %v; want %d", len(segs), err, len(want))
	}
	for i, g := range segs {
		one, err := s.SegmentByID(ctx, want[i].SegmentID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, one) {
			t.Errorf("segment %d in the list:\n%+v\nalone:\n%+v", i, g, one)
		}
		if g.Codecs == nil || g.Sequence != want[i].Sequence || g.InitKey != want[i].InitKey || g.IngestNode != want[i].IngestNode ||
			g.SHA256 != want[i].SHA256 || g.Chain != want[i].Chain || g.IsIndependent() != want[i].IsIndependent() ||
			g.Salvaged != want[i].Salvaged || g.Discontinuity != want[i].Discontinuity {
			t.Errorf("segment %d: %+v, want the event %+v", i, g.SegmentClosed, want[i])
		}
	}
}
