package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/testenv"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var first string
	t.Run("fresh database", func(t *testing.T) {
		first = testenv.Postgres(t)
		conn, err := pgx.Connect(ctx, first)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		var tables int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
			t.Fatalf("count tables: %v", err)
		}
		if tables != 0 {
			t.Errorf("new database has %d tables, want 0", tables)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE leftover (id int)`); err != nil {
			t.Fatalf("create table: %v", err)
		}
		// A second database in the same test is another database.
		second := testenv.Postgres(t)
		if second == first {
			t.Errorf("two calls returned the same DSN %q", first)
		}
		conn2, err := pgx.Connect(ctx, second)
		if err != nil {
			t.Fatalf("connect second: %v", err)
		}
		defer conn2.Close(ctx)
		if err := conn2.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
			t.Fatalf("count tables: %v", err)
		}
		if tables != 0 {
			t.Errorf("second database has %d tables, want 0", tables)
		}
	})

	// The subtest's cleanup dropped its database, even though a connection
	// to it was still open when the test ended.
	conn, err := pgx.Connect(ctx, first)
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("database of a finished test still accepts connections")
	}
}

func TestPostgresParallel(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "b", "c", "d"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, testenv.Postgres(t))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
				t.Fatalf("create table: %v", err)
			}
		})
	}
}
