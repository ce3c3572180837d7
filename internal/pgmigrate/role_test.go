package pgmigrate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/pgmigrate"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestEnsureRoleConcurrently: installations migrating at the same moment
// on one cluster (two tests, two replicas of a migrate job) each set the
// same role's password. The role is one row of the cluster's catalogue, and
// PostgreSQL refuses the second of two concurrent updates of it ("tuple
// concurrently updated"); every migrate must still succeed, and the role
// must log in with the password they all set.
func TestEnsureRoleConcurrently(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	const role, password = "nokstream_concurrent_role", "same-for-all"
	const workers, rounds = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for r := 0; r < rounds; r++ {
				if err := pgmigrate.EnsureRole(ctx, conn, "runtime role", role, password); err != nil {
					errs <- fmt.Errorf("round %d: %w", r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = role, password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("the role does not log in with its password: %v", err)
	}
	_ = conn.Close(ctx)
}
