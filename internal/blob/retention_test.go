package blob_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/testenv"
)

// retainer is a store with retention.
type retainer interface {
	blob.Store
	blob.Retainer
}

// TestRetainers runs the same retention tests against a directory and S3 on
// a real MinIO server with Object Lock in COMPLIANCE mode.
//
// COMPLIANCE retention cannot be lifted by anyone, the test bucket's cleanup
// included, so the S3 tests use retain-until dates a few seconds ahead and
// wait them out; they then delete what they locked, which also shows that
// the lock ends when it should.
func TestRetainers(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) retainer
	}{
		{name: "dir", open: func(t *testing.T) retainer {
			d, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{name: "s3", open: func(t *testing.T) retainer { return testenv.MinIOStore(t) }},
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s retainer)
	}{
		{"RetainUntil", testRetainUntil},
		{"LegalHold", testLegalHold},
		{"Missing", testRetentionMissing},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					tt.run(t, st.open(t))
				})
			}
		})
	}
}

func retention(t *testing.T, s retainer, key string) (time.Time, bool) {
	t.Helper()
	until, hold, err := s.Retention(t.Context(), key)
	if err != nil {
		t.Fatalf("Retention(%s): %v", key, err)
	}
	return until, hold
}

func testRetainUntil(t *testing.T, s retainer) {
	ctx := t.Context()
	key := "raw/site1/cam1/2026-03-02/0000000001-a.m4s"
	other := "raw/site1/cam1/2026-03-02/0000000002-b.m4s"
	put(t, s, key, []byte("evidence"))
	put(t, s, other, []byte("other"))
	if until, hold := retention(t, s, key); !until.IsZero() || hold {
		t.Fatalf("new object: retention %v hold %v, want none", until, hold)
	}

	// Long enough for the checks below to run before it, on a loaded
	// machine too; the test then waits for it (in parallel with others).
	until := time.Now().Add(15 * time.Second).Truncate(time.Second)
	if err := s.SetRetention(ctx, key, until); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	// Only ever extended: an earlier date changes nothing, and is no error.
	if err := s.SetRetention(ctx, key, until.Add(-time.Hour)); err != nil {
		t.Fatalf("SetRetention earlier: %v", err)
	}
	if got, hold := retention(t, s, key); !got.Equal(until) || hold {
		t.Fatalf("Retention = %v hold %v, want %v and no hold", got, hold, until)
	}
	// The store itself refuses the delete.
	if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("Delete under retention = %v, want ErrRetained", err)
	}
	if !slices.Equal(get(t, s, key), []byte("evidence")) {
		t.Fatalf("object changed after a refused delete")
	}
	// The other object was not locked.
	if err := s.Delete(ctx, other); err != nil {
		t.Fatalf("Delete of an unlocked object: %v", err)
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{key}) {
		t.Errorf("List = %q, want only %s (no retention files)", got, key)
	}
	testenv.WaitFor(t, 30*time.Second, "retention to end", func() bool { return time.Now().After(until) })
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after retain-until: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after delete = %v, want ErrNotFound", err)
	}
}

func testLegalHold(t *testing.T, s retainer) {
	ctx := t.Context()
	key := "raw/site1/ws1/2026-03-02/0000000001-a.m4s"
	put(t, s, key, []byte("held"))
	if err := s.SetLegalHold(ctx, key, true); err != nil {
		t.Fatalf("SetLegalHold: %v", err)
	}
	if _, hold := retention(t, s, key); !hold {
		t.Fatalf("Retention: no hold after SetLegalHold")
	}
	if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("Delete under hold = %v, want ErrRetained", err)
	}
	if err := s.SetLegalHold(ctx, key, false); err != nil {
		t.Fatalf("lift legal hold: %v", err)
	}
	if _, hold := retention(t, s, key); hold {
		t.Fatalf("Retention: still held after lifting")
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete after the hold was lifted: %v", err)
	}
}

func testRetentionMissing(t *testing.T, s retainer) {
	ctx := t.Context()
	if err := s.SetRetention(ctx, "no/such/object", time.Now().Add(time.Hour)); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("SetRetention of a missing object = %v, want ErrNotFound", err)
	}
	if err := s.SetLegalHold(ctx, "no/such/object", true); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("SetLegalHold of a missing object = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Retention(ctx, "no/such/object"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Retention of a missing object = %v, want ErrNotFound", err)
	}
}

// TestDirRetention checks what only a Dir does: it keeps retention in
// sidecar files that no key can name, refuses other bytes under a retained
// key but takes the same bytes again (an upload retried), and follows its
// injected clock.
func TestDirRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	root := t.TempDir()
	d, err := blob.NewDir(root, blob.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	key := "raw/site1/cam1/init/abc.mp4"
	put(t, d, key, []byte("init"))
	if err := d.SetRetention(ctx, key, now.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key, bytesReader("other"), 5); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("Put of other bytes under retention = %v, want ErrRetained", err)
	}
	put(t, d, key, []byte("init")) // the same bytes: accepted, nothing changes
	if got := string(get(t, d, key)); got != "init" {
		t.Fatalf("object = %q after puts under retention", got)
	}
	if err := d.Put(ctx, "raw/site1/cam1/init/.ret-abc.mp4", bytesReader("x"), 1); !errors.Is(err, blob.ErrBadKey) {
		t.Fatalf("Put of a key naming a retention file = %v, want ErrBadKey", err)
	}
	if _, err := os.Stat(filepath.Join(root, "raw/site1/cam1/init/.ret-abc.mp4")); err != nil {
		t.Fatalf("no sidecar file: %v", err)
	}
	if err := d.Delete(ctx, key); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("Delete = %v, want ErrRetained", err)
	}
	mu.Lock()
	now = now.Add(30 * 24 * time.Hour)
	mu.Unlock()
	if err := d.Delete(ctx, key); err != nil {
		t.Fatalf("Delete once the clock passed retain-until: %v", err)
	}
	// The sidecar went with the object, and so did the directories.
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Fatalf("root after delete: %v %v, want empty", entries, err)
	}
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }
