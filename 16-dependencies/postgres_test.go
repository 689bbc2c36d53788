package main

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/jackc/pgx/v5"
)

// postgresDB returns the URL of a new schema of its own on the PostgreSQL
// server that TEST_POSTGRES_URL names (sh .ci/postgres.sh starts one),
// dropped after the test. Without it, the test skips; on CI it fails.
func postgresDB(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but TEST_POSTGRES_URL is not set: .ci/run sets it")
		}
		t.Skip("no PostgreSQL: run `sh .ci/postgres.sh` and set TEST_POSTGRES_URL to the URL it prints")
	}
	schema := "test_" + strings.ToLower(rand.Text())
	execSQL(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { execSQL(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema) // the step's table goes there
	u.RawQuery = q.Encode()
	return u.String()
}

func execSQL(t *testing.T, database, statement string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), statement); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// postgresRows reads the orders table at database: how many rows each id
// has.
func postgresRows(t *testing.T, database string) map[string]int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT id, COUNT(*) FROM orders GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// onEachDatabase runs test on SQLite and on PostgreSQL, in parallel, each
// with a -store of its own.
func onEachDatabase(t *testing.T, test func(t *testing.T, store, database string)) {
	t.Parallel()
	for name, database := range map[string]func(t *testing.T, store string) string{
		"sqlite":   func(_ *testing.T, store string) string { return filepath.Join(store, "orders.db") },
		"postgres": func(t *testing.T, _ string) string { return postgresDB(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store := t.TempDir()
			test(t, store, database(t, store))
		})
	}
}

// TestDatabasePasswordMasked: a PostgreSQL that cannot be reached ends the
// program with exit status 1, and neither the error nor any other line
// shows the URL's password.
func TestDatabasePasswordMasked(t *testing.T) {
	t.Parallel()
	p := demotest.StartAt(t, demotest.FreeAddr(t), "-store", t.TempDir(),
		"-database", "postgres://orders:Secr3t-pw@127.0.0.1:1/orders?connect_timeout=5")
	exit, ok := p.AwaitExit(demotest.EventTimeout)
	if !ok || exit.Code != 1 {
		t.Fatalf("%v, want exit status 1", exit)
	}
	out := p.Output()
	if strings.Contains(out, "Secr3t-pw") || !strings.Contains(out, "cannot open the database") || !strings.Contains(out, "orders:xxxxx@") {
		t.Errorf("output %q: want the error, the URL with its password masked", out)
	}
}
