package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/store"
)

// TestAuditChain: rows written side by side form one chain that verifies;
// then, as someone with the database's owner rights would, a row is
// changed, one removed, one inserted in the middle, and one changed with its
// hash recomputed: each time verification names the first row that does
// not hold.
func TestAuditChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Audit(ctx, store.AuditEntry{ActorID: int64(i % 3), // 0: no actor (NULL) ActorLogin: fmt.Sprintf("user%d", i%3), Action: "media.get",
				Object: fmt.Sprintf("site1/cam%d", i%4), RemoteAddr: "10.0.0.1", Purpose: "review", Detail: map[string]any{"n": i, "ключ": "значение"}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	brk, head, err := s.VerifyAuditLog(ctx, nil)
	if err != nil || brk != nil || head.Rows < 40 {
		t.Fatalf("fresh log: break %v, %d rows, %v; want intact, at least 40 rows", brk, head.Rows, err)
	}
	// The head is an anchor: its hash stays.
	if h, err := s.AuditHash(ctx, head.ID); err != nil || h != head.Hash {
		t.Fatalf("hash of the head row %d: %q %v, want %s", head.ID, h, err, head.Hash)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ids := auditIDs(t, conn)
	tamper := func(sql string, args ...any) {
		t.Helper()
		for _, q := range []string{`ALTER TABLE audit_log DISABLE TRIGGER USER`, sql, `ALTER TABLE audit_log ENABLE TRIGGER USER`} {
			var a []any
			if q == sql {
				a = args
			}
			if _, err := conn.Exec(ctx, q, a...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	expect := func(what string, id int64, changed bool) {
		t.Helper()
		brk, _, err := s.VerifyAuditLog(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if brk == nil || brk.ID != id || brk.Changed != changed {
			t.Fatalf("%s: verification says %v, want row %d named (changed %v)", what, brk, id, changed)
		}
		t.Logf("%s: %s", what, brk)
	}

	// A purpose rewritten: that row.
	tamper(`UPDATE audit_log SET purpose = 'appeal' WHERE id = $1`, ids[10])
	expect("a purpose changed", ids[10], true)
	tamper(`UPDATE audit_log SET purpose = 'review' WHERE id = $1`, ids[10])
	if brk, _, _ := s.VerifyAuditLog(ctx, nil); brk != nil {
		t.Fatalf("restored: %v", brk)
	}
	// Changed and its hash recomputed: the next row no longer follows.
	tamper(`UPDATE audit_log SET actor_login = 'someone', hash = audit_log_digest(prev_hash, id, at, actor_id, 'someone', action, object, remote_addr, purpose, detail) WHERE id = $1`, ids[20])
	expect("a login changed, its hash recomputed", ids[21], false)
	// A row removed: the one after it.
	tamper(`DELETE FROM audit_log WHERE id = $1`, ids[5])
	expect("a row removed", ids[6], false)
	// A row inserted before the others: it does not start the chain.
	tamper(`INSERT INTO audit_log (id, action, prev_hash, hash) VALUES (0, 'media.get', '\x', '\x00')`)
	expect("a row inserted in front", 0, true)
}

func auditIDs(t *testing.T, conn *pgx.Conn) []int64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id FROM audit_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
