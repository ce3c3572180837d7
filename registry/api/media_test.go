package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// TestMediaStreamsFromMinIO: GET /api/v1/media streams a large segment from
// MinIO instead of reading it into memory, honours Range, and refuses a
// stored object that no longer matches the index.
//
// It is not parallel: it watches the process's heap, which other tests
// would move.
func TestMediaStreamsFromMinIO(t *testing.T) {
	ctx := context.Background()
	s3 := testenv.MinIOStore(t)
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	// Tests hash at OWASP's minimum cost: the default's 64 MiB and
	// three passes a login were most of make test's CPU here.
	if err := st.SetPasswordHashing(store.MinimumPasswordHashing()); err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.SigningKey = api.Secret("0123456789abcdef0123456789abcdef")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &clock{t: t0.Add(10 * time.Minute)}
	srv, err := api.New(cfg, api.Deps{Store: st, Blob: s3, Log: log, Registry: prometheus.NewRegistry(), Health: obs.NewHealth(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{t: t, store: st, clock: c, url: hs.URL, cfg: cfg, srv: srv, index: index.Handler(st, log)}
	token := e.operator("operator")

	// A 64 MiB segment: a publisher at the bitrate cap makes that in 13 s.
	const size = 64 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i>>13)
	}
	sum := sha256.Sum256(body)
	window := bytes.Clone(body[50<<20 : 50<<20+100])
	key, initKey := "raw/site1/cam1/big.m4s", "raw/site1/cam1/init/big.mp4"
	for k, v := range map[string][]byte{key: body, initKey: []byte("init")} {
		if err := s3.Put(ctx, k, bytes.NewReader(v), int64(len(v))); err != nil {
			t.Fatal(err)
		}
	}
	body = nil
	initSum := sha256.Sum256([]byte("init"))
	e.deliver(&events.SegmentClosed{SegmentID: "big", StreamID: "site1/cam1", Source: events.SourceRoom, Site: "site1", Device: "cam1",
		Start: t0, Duration: 13, Codecs: []string{"avc1.64001f"}, Bytes: size, SHA256: hex.EncodeToString(sum[:]),
		PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64), ObjectKey: key, InitKey: initKey,
		InitSHA256: hex.EncodeToString(initSum[:]), InitBytes: 4, IngestNode: "node1"})

	get := func(rangeHeader string) (int, string, []byte, int64) {
		t.Helper()
		req, err := http.NewRequest("GET", hs.URL+"/api/v1/media/"+key, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		h := sha256.New()
		var head bytes.Buffer
		n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{b: &head, n: 200}), res.Body)
		if err != nil {
			t.Fatalf("read the answer: %v", err)
		}
		return res.StatusCode, hex.EncodeToString(h.Sum(nil)), head.Bytes(), n
	}
	// The heap while serving: sampled, its peak over the baseline.
	peak := func(fn func()) uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var top atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > base && m.HeapInuse-base > top.Load() {
					top.Store(m.HeapInuse - base)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		fn()
		close(stop)
		wg.Wait()
		return top.Load()
	}
	grew := peak(func() {
		code, got, _, n := get("")
		if code != http.StatusOK || got != hex.EncodeToString(sum[:]) || n != size {
			t.Errorf("GET: %d, %d bytes, sha256 %s, want 200 and the segment", code, n, got)
		}
	})
	if grew > 24<<20 {
		t.Errorf("serving a 64 MiB segment grew the heap by %d MiB: it is read into memory", grew>>20)
	}
	code, _, head, n := get(fmt.Sprintf("bytes=%d-%d", 50<<20, 50<<20+99))
	if code != http.StatusPartialContent || n != 100 || !bytes.Equal(head, window) {
		t.Errorf("range: %d, %d bytes, want 206 and the 100 bytes at 50 MiB", code, n)
	}

	// Altered in the store (a new version over the locked one): refused.
	if err := s3.Put(ctx, key, strings.NewReader("forged"), 6); err != nil {
		t.Fatal(err)
	}
	if code, _, head, _ := get(""); code != http.StatusInternalServerError || !strings.Contains(string(head), "does not match its index") {
		t.Errorf("altered segment: %d %s, want 500 saying it does not match its index", code, head)
	}
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if rest := l.n - l.b.Len(); rest > 0 {
		l.b.Write(p[:min(rest, len(p))])
	}
	return len(p), nil
}
