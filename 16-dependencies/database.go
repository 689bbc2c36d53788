package main

// The database the consumer writes the orders into: SQLite, through the
// pure-Go driver step 09 uses, in a file of -store unless -database names
// another, or PostgreSQL through a pgx pool (postgres.go).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql's "sqlite" driver, in pure Go
)

// databaseAccepted says what -database takes.
const databaseAccepted = "-database takes the path of a SQLite file (data/orders.db, or file:data/orders.db) or a postgres:// URL"

// A URL starts with its scheme: a letter, then letters, digits, "+", "-" or
// ".", then ":". A file whose name starts so is written ./name.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// parseDatabase says which database -database names: a PostgreSQL URL, or
// the path of a SQLite file. Anything else is refused rather than taken
// for a file name: "mysql://localhost/orders" would otherwise become a
// folder "mysql:". A refusal never repeats the string, which can hold a
// password.
func parseDatabase(database string) (postgresURL, sqlitePath string, err error) {
	switch scheme := strings.ToLower(schemeRE.FindString(database)); {
	case scheme == "postgres:" || scheme == "postgresql:":
		if !strings.HasPrefix(database[len(scheme):], "//") {
			return "", "", fmt.Errorf("-database: a PostgreSQL URL starts with %s//; %s", scheme, databaseAccepted)
		}
		return database, "", nil
	case scheme == "file:":
		u, err := url.Parse(database)
		switch {
		case err != nil:
			return "", "", fmt.Errorf("-database: a bad file: URL (%v); %s", err, databaseAccepted)
		case u.RawQuery != "" || u.Fragment != "":
			return "", "", fmt.Errorf("-database: a file: URL without ?options or #; %s", databaseAccepted)
		case u.Host != "" && u.Host != "localhost":
			return "", "", fmt.Errorf("-database: file://%s/...: a SQLite file is on this machine; %s", u.Host, databaseAccepted)
		}
		path := u.Path
		if u.Opaque != "" {
			if path, err = url.PathUnescape(u.Opaque); err != nil {
				return "", "", fmt.Errorf("-database: a bad file: URL (%v); %s", err, databaseAccepted)
			}
		}
		if path == "" {
			return "", "", errors.New("-database: a file: URL with no path; " + databaseAccepted)
		}
		return "", path, nil
	case scheme != "":
		return "", "", fmt.Errorf("-database: a %s URL is not a database this step serves; %s", scheme, databaseAccepted)
	}
	return "", database, nil
}

// orderStore is what the handlers and the consumer need of the database.
type orderStore interface {
	// store writes o in a transaction of its own and reports whether it
	// was new: an order already stored (a redelivery whose first
	// acknowledgement was lost) changes nothing. workTime stands for the
	// rest of the work (charging a card): the transaction stays open that
	// long, and is rolled back if ctx ends first.
	store(ctx context.Context, o order, workTime time.Duration) (inserted bool, err error)
	// get returns the stored order id, or ok false if it is not stored.
	get(ctx context.Context, id string) (o order, ok bool, err error)
	// close closes the database once nothing uses it any more.
	close() error
}

// openDatabase opens the database -database names and creates the table.
// Its errors show no password of the URL.
func openDatabase(ctx context.Context, database string) (orderStore, error) {
	postgresURL, sqlitePath, err := parseDatabase(database)
	if err != nil {
		return nil, err
	}
	var db orderStore
	if postgresURL != "" {
		db, err = openPostgres(ctx, postgresURL)
	} else {
		db, err = openOrders(ctx, sqlitePath)
	}
	if err != nil {
		return nil, errors.New(hidePasswords(err.Error(), database))
	}
	return db, nil
}

// orders is the table of stored orders in a SQLite file. Its key is the order's id, the
// same id that JetStream de-duplicates on: a message delivered twice is
// inserted once.
type orders struct{ db *sql.DB }

// openOrders opens the SQLite file at path and creates the table. WAL mode
// lets GET /orders/{id} read while the consumer writes, and BEGIN
// IMMEDIATE takes the write lock when a transaction starts.
func openOrders(ctx context.Context, path string) (*orders, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id        TEXT PRIMARY KEY,
		item      TEXT NOT NULL,
		quantity  INTEGER NOT NULL,
		stored_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &orders{db: db}, nil
}

func (s *orders) store(ctx context.Context, o order, workTime time.Duration) (inserted bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() // after Commit, a no-op
	result, err := tx.ExecContext(ctx,
		`INSERT INTO orders (id, item, quantity) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		o.ID, o.Item, o.Quantity)
	if err != nil {
		return false, err
	}
	n, err := result.RowsAffected()
	if err != nil {
		return false, err
	}
	if err := work(ctx, workTime); err != nil {
		return false, err
	}
	return n == 1, tx.Commit()
}

func (s *orders) get(ctx context.Context, id string) (o order, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT id, item, quantity FROM orders WHERE id = ?`, id).Scan(&o.ID, &o.Item, &o.Quantity)
	if errors.Is(err, sql.ErrNoRows) {
		return order{}, false, nil
	}
	return o, err == nil, err
}

func (s *orders) close() error { return s.db.Close() }

// work waits for workTime, or until ctx ends.
func work(ctx context.Context, workTime time.Duration) error {
	if workTime <= 0 {
		return nil
	}
	select {
	case <-time.After(workTime):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
