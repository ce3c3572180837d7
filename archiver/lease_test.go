package archiver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/archiver"
	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
)

// TestSweeperOneReplica: two archiver replicas on one database (each with
// its own connection pool, as two processes have): exactly one runs the
// sweeper and takes new documents, never both; when the leader stops, or
// its database session is cut as a network partition would, the other
// takes over and new documents are still taken.
func TestSweeperOneReplica(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := archiver.DefaultConfig()
	cfg.LeaseRetry = 100 * time.Millisecond
	cfg.DocumentInterval = 100 * time.Millisecond
	e := newEnv(t, dirStore(t, nil), cfg, nil)
	now := time.Now()
	e.exam("e1", now.Add(-3*time.Hour), now.Add(-time.Hour))

	st2, err := store.Open(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ast2, err := astore.Open(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ast2.Close()
	svc2, err := archiver.New(cfg, archiver.Deps{Bus: e.bus, Blob: e.blob, Store: ast2, Facts: newCopyFacts(t, e.dsn, ast2), SealKey: e.key, Log: testLog(t),
		Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*archiver.Service{e.svc, svc2}
	cancels := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	for i, r := range replicas {
		rctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.RunSweeper(rctx)
		}()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}()

	// leader waits until exactly one replica leads, one of among, and
	// returns its index; strict, it fails if both ever do.
	leader := func(strict bool, among ...int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			a, b := replicas[0].Leader(), replicas[1].Leader()
			if a && b {
				if strict {
					t.Fatal("both replicas run the sweeper")
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			for _, i := range among {
				if replicas[i].Leader() {
					return i
				}
			}
			time.Sleep(20 * time.Millisecond) // polling a condition, not timing
		}
		t.Fatalf("no replica among %v took the sweeper within 30 s", among)
		return -1
	}
	taken := func(strict bool, key string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if strict && replicas[0].Leader() && replicas[1].Leader() {
				t.Fatal("both replicas run the sweeper")
			}
			if _, err := e.ast.ArchiveObject(ctx, key); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("document %s not taken as evidence within 30 s", key)
	}

	first := leader(true, 0, 1)
	taken(true, e.document("c1", "", "passport", []byte("%PDF паспорт"), nil))

	// The leader's database session is cut (a partition): the other may
	// take the lease before the old leader notices at its next check
	// (which it makes before every job), then it steps down; one replica
	// leads again and documents are still taken.
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var cut int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&cut); err != nil || cut != 1 {
		t.Fatalf("cut the leader's session: %d sessions, %v; want the one holding the lease", cut, err)
	}
	// Until the old leader has noticed, both may believe they lead.
	testenv.WaitFor(t, 30*time.Second, "the cut-off leader stepping down", func() bool {
		return replicas[first].LeaseLosses() >= 1
	})
	leader(false, 0, 1)
	taken(false, e.document("c1", "", "application", []byte("%PDF заявление"), nil))

	// The leader stops: the other takes over.
	now1 := leader(true, 0, 1)
	cancels[now1]()
	other := 1 - now1
	leader(true, other)
	taken(true, e.document("", "e1", "protocol", []byte("%PDF протокол"), nil))
	t.Logf("first leader %d, after the stop %d", first, other)
}
