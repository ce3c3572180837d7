package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/testenv"
)

// pinger is what readiness checks call; both stores have it.
type pinger interface {
	Ping(ctx context.Context) error
}

// TestStores runs the same behaviour tests against every Store: a local
// directory, and S3 on a real MinIO server. Each test gets a fresh store.
func TestStores(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) blob.Store
	}{
		{name: "dir", open: func(t *testing.T) blob.Store {
			d, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{name: "s3", open: func(t *testing.T) blob.Store { return testenv.MinIOStore(t) }},
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Replace", testReplace},
		{"WrongSize", testWrongSize},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListStops", testListStops},
		{"ListCancelled", testListCancelled},
		{"Delete", testDelete},
		{"BadKeys", testBadKeys},
		{"ConcurrentPuts", testConcurrentPuts},
		{"PutWhileDeleting", testPutWhileDeleting},
		{"Ping", testPing},
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

// randomBytes returns n bytes that are the same on every run.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b) // Never fails.
	return b
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer func() {
		if err := rc.Close(); err != nil {
			t.Errorf("close %s: %v", key, err)
		}
	}()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func list(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	keys := []string{}
	if err := s.List(t.Context(), prefix, func(key string) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testRoundTrip(t *testing.T, s blob.Store) {
	tests := []struct {
		name      string
		size      int
		knownSize bool
	}{
		{"empty", 0, true},
		{"one byte", 1, true},
		{"5 MiB", 5<<20 + 3, true},
		{"5 MiB of unknown size", 5<<20 + 3, false},
		// Past minio-go's 16 MiB part size: a multipart upload.
		{"17 MiB", 17 << 20, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := randomBytes(tt.size, byte(i))
			key := fmt.Sprintf("round/trip/%d.m4s", i)
			size := int64(len(data))
			if !tt.knownSize {
				size = -1
			}
			// OneByteReader: the store must not assume a Read fills the buffer.
			r := iotest.OneByteReader(bytes.NewReader(data))
			if tt.size > 1<<20 {
				r = io.MultiReader(bytes.NewReader(data)) // Hides io.Seeker and io.ReaderAt.
			}
			if err := s.Put(t.Context(), key, r, size); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := get(t, s, key); !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
			}
			attrs, err := s.Stat(t.Context(), key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if attrs.Size != int64(len(data)) {
				t.Errorf("Stat size = %d, want %d", attrs.Size, len(data))
			}
			if attrs.ModTime.IsZero() {
				t.Error("Stat ModTime is zero")
			}
		})
	}
}

func testReplace(t *testing.T, s blob.Store) {
	put(t, s, "k", []byte("first version, longer"))
	put(t, s, "k", []byte("second"))
	if got := string(get(t, s, "k")); got != "second" {
		t.Errorf("Get after replace = %q, want %q", got, "second")
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{"k"}) {
		t.Errorf("List = %q, want [k]", got)
	}
}

// testWrongSize puts bodies that do not have the size Put is told; the
// store refuses them and stores nothing.
func testWrongSize(t *testing.T, s blob.Store) {
	tests := []struct {
		name string
		body io.Reader
		size int64
	}{
		{"short", strings.NewReader("12345"), 10},
		{"long", strings.NewReader("123456789012"), 10},
		// A plain io.Reader: the store cannot seek it to learn its length.
		{"short stream", io.MultiReader(strings.NewReader("12345")), 10},
		{"long stream", io.MultiReader(strings.NewReader("123456789012")), 10},
		{"short stream, multipart", io.MultiReader(bytes.NewReader(randomBytes(17<<20-1, 1))), 17 << 20},
		{"long stream, multipart", io.MultiReader(bytes.NewReader(randomBytes(17<<20+1, 1))), 17 << 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("wrong/%d", i)
			if err := s.Put(t.Context(), key, tt.body, tt.size); err == nil {
				t.Fatalf("Put of a body that is not %d bytes succeeded", tt.size)
			}
			if _, err := s.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat after a failed Put = %v, want ErrNotFound", err)
			}
		})
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after failed Puts = %q, want nothing", got)
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	put(t, s, "dir/obj", []byte("x"))
	for _, key := range []string{
		"missing",
		"dir",       // only a prefix of other keys
		"dir/obj/x", // below an object
		"dir/missing",
		"other/dir/missing",
	} {
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%s) = %v, want ErrNotFound", key, err)
		}
		rc, err := s.Get(t.Context(), key)
		if !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", key, err)
		}
		if rc != nil {
			t.Errorf("Get(%s) returned a reader with its error", key)
			_ = rc.Close()
		}
	}
}

func testList(t *testing.T, s blob.Store) {
	// "seg/a.c" sorts before "seg/a/b": '.' < '/'. A directory walk that
	// sorts names only would list them the other way round.
	keys := []string{
		"seg/b", "seg/a/c", "seg/ab", "seg/a.c", "seg/a/b", "seg/a/b0/x",
		"segx", "other/x", "se", "seg/a-b", "seg/a0", "z",
	}
	for i, k := range keys {
		put(t, s, k, []byte{byte(i)})
	}
	for _, prefix := range []string{"", "s", "se", "seg", "seg/", "seg/a", "seg/a/", "seg/a/b", "seg/a/b0/", "z", "nothing", "nothing/", "seg/zz/"} {
		t.Run(prefix, func(t *testing.T) {
			want := []string{}
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			if got := list(t, s, prefix); !slices.Equal(got, want) {
				t.Errorf("List(%q) = %q, want %q", prefix, got, want)
			}
		})
	}
}

func testListStops(t *testing.T, s blob.Store) {
	for _, k := range []string{"a", "b", "c"} {
		put(t, s, k, []byte(k))
	}
	stop := errors.New("stop")
	var got []string
	err := s.List(t.Context(), "", func(key string) error {
		got = append(got, key)
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List = %v, want the callback's error", err)
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("List called back with %q after an error, want [a]", got)
	}
}

// A List cut short by its context says so: a caller such as a sweeper must
// not take a partial listing for the whole.
func testListCancelled(t *testing.T, s blob.Store) {
	for _, k := range []string{"a", "b", "c"} {
		put(t, s, k, []byte(k))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.List(ctx, "", func(string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with an ended context = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	var got []string
	err := s.List(ctx, "", func(key string) error {
		got = append(got, key)
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List whose context ended midway = %v, want context.Canceled", err)
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("List called back with %q after its context ended, want [a]", got)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	put(t, s, "a/b/c", []byte("c"))
	put(t, s, "a/d", []byte("d"))

	for range 2 { // The second time, the object is already gone.
		if err := s.Delete(t.Context(), "a/b/c"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := s.Stat(t.Context(), "a/b/c"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
	}
	for _, key := range []string{"never/existed", "a"} { // "a" is only a prefix.
		if err := s.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%s) = %v, want nil", key, err)
		}
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{"a/d"}) {
		t.Errorf("List = %q, want [a/d]", got)
	}
	if err := s.Delete(t.Context(), "a/d"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after deleting everything = %q", got)
	}
	put(t, s, "a/b/c", []byte("again")) // The pruned directories come back.
	if got := string(get(t, s, "a/b/c")); got != "again" {
		t.Errorf("Get = %q, want again", got)
	}
}

func testBadKeys(t *testing.T, s blob.Store) {
	ctx := t.Context()
	for _, key := range []string{"", "/abs", "../escape", "a/../../b", "a//b", `a\b`, "a\x00", ".tmp-x"} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("Put(%q) = %v, want ErrBadKey", key, err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("Get(%q) = %v, want ErrBadKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("Stat(%q) = %v, want ErrBadKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("Delete(%q) = %v, want ErrBadKey", key, err)
		}
	}
	for _, prefix := range []string{"/abs", "../", "a/../", "a//", `a\`, "a\x00"} {
		err := s.List(ctx, prefix, func(string) error { return nil })
		if !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("List(%q) = %v, want ErrBadKey", prefix, err)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after refused Puts = %q, want nothing", got)
	}
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Some share a directory, some share a new one, some are alone.
			key := fmt.Sprintf("c/%d/%02d", i%3, i)
			data := randomBytes(64<<10+i, byte(i))
			if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Errorf("Put(%s): %v", key, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	keys := list(t, s, "c/")
	if len(keys) != n {
		t.Fatalf("List = %d keys, want %d: %q", len(keys), n, keys)
	}
	for i := range n {
		key := fmt.Sprintf("c/%d/%02d", i%3, i)
		if got := get(t, s, key); !bytes.Equal(got, randomBytes(64<<10+i, byte(i))) {
			t.Errorf("Get(%s) differs from what was put", key)
		}
	}
}

// testPutWhileDeleting puts objects into a directory while other objects
// there are deleted, so that a store that prunes empty directories races
// with the Puts that need them.
func testPutWhileDeleting(t *testing.T, s blob.Store) {
	const rounds = 20
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			key := fmt.Sprintf("race/d/gone-%d", i)
			if err := s.Put(t.Context(), key, strings.NewReader("x"), 1); err != nil {
				t.Errorf("Put(%s): %v", key, err)
			}
			if err := s.Delete(t.Context(), key); err != nil {
				t.Errorf("Delete(%s): %v", key, err)
			}
		}
	})
	for i := range rounds {
		key := fmt.Sprintf("race/d/kept-%02d", i)
		if err := s.Put(t.Context(), key, strings.NewReader(key), int64(len(key))); err != nil {
			t.Errorf("Put(%s): %v", key, err)
		}
	}
	wg.Wait()
	if got := list(t, s, "race/"); len(got) != rounds {
		t.Errorf("List = %q, want the %d kept objects", got, rounds)
	}
}

func testPing(t *testing.T, s blob.Store) {
	p, ok := s.(pinger)
	if !ok {
		t.Fatalf("%T has no Ping", s)
	}
	if err := p.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
