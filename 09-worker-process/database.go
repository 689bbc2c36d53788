package main

// The database both roles share: which one -database names, how it is
// opened, and the schema: River's tables, created by River's migrator, and
// the two tables of this step.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx" driver
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // database/sql's "sqlite" driver, in pure Go
)

// openDatabase opens -database and brings its schema up to date. Both
// databases are used through database/sql, so that the handlers and the
// worker are written once, with *sql.Tx, whichever it is.
//
//   - A postgres:// URL: PostgreSQL, through pgx. River's database/sql
//     driver does the work, and a pgx pool of its own gives it LISTEN, so
//     that a worker hears of a new job at once instead of polling for it.
//     Many web and worker processes on many machines can share it.
//   - Anything else is the path of a SQLite file, shared by the processes
//     of one machine: WAL mode lets readers and the one writer work at
//     once, and the busy timeout makes a process wait for the write lock
//     instead of failing. BEGIN IMMEDIATE takes the lock when a transaction
//     starts, so that one that reads and then writes cannot fail halfway.
func openDatabase(ctx context.Context, database string) (*sql.DB, riverdriver.Driver[*sql.Tx], func(), error) {
	var (
		db      *sql.DB
		driver  riverdriver.Driver[*sql.Tx]
		closeDB func()
	)
	if strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://") {
		var err error
		if db, err = sql.Open("pgx", database); err != nil {
			return nil, nil, nil, err
		}
		listenPool, err := pgxpool.New(ctx, database)
		if err != nil {
			db.Close()
			return nil, nil, nil, err
		}
		driver = riverdatabasesql.NewWithPgxListener(db, listenPool)
		closeDB = func() { db.Close(); listenPool.Close() }
	} else {
		if err := os.MkdirAll(filepath.Dir(database), 0o755); err != nil {
			return nil, nil, nil, err
		}
		var err error
		db, err = sql.Open("sqlite", "file:"+database+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
		if err != nil {
			return nil, nil, nil, err
		}
		// River's advice for SQLite: one connection per process, as SQLite
		// runs one write at a time anyway.
		db.SetMaxOpenConns(1)
		driver = riversqlite.New(db)
		closeDB = func() { db.Close() }
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	if err := migrate(pingCtx, db, driver); err != nil {
		closeDB()
		return nil, nil, nil, fmt.Errorf("cannot create the schema: %w", err)
	}
	return db, driver, closeDB, nil
}

// The step's own tables. sent is what a send changes in the world, here a
// row: it is written in the transaction that completes the job, so a job is
// in it once or not at all. email_requests maps an Idempotency-Key to the
// jobs its request queued. Both statements work on SQLite and PostgreSQL.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS sent (
		job_id    BIGINT PRIMARY KEY,
		recipient TEXT NOT NULL,
		subject   TEXT NOT NULL,
		sent_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`,
	`CREATE TABLE IF NOT EXISTS email_requests (
		idempotency_key TEXT PRIMARY KEY,
		request         TEXT NOT NULL,
		job_ids         TEXT NOT NULL,
		created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`,
}

// migrate creates River's tables with River's migrator, then the step's.
func migrate(ctx context.Context, db *sql.DB, driver riverdriver.Driver[*sql.Tx]) error {
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	// The migrator reads which versions are applied, then applies each
	// missing one in a transaction of its own. Two processes that start
	// at once on a new database both find it empty, and the second to
	// create a table fails, its transaction rolled back. Each try finds
	// more of the schema done, so a few tries always get through. (In
	// production, migrate once per deploy, before starting the processes.)
	for try := 1; ; try++ {
		err = migrateOnce(ctx, db, migrator)
		if err == nil || try == 10 || ctx.Err() != nil {
			return err
		}
	}
}

func migrateOnce(ctx context.Context, db *sql.DB, migrator *rivermigrate.Migrator[*sql.Tx]) error {
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	for _, statement := range schema {
		if _, err := db.ExecContext(ctx, statement); err != nil {
			return err
		}
	}
	return nil
}
