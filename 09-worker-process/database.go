package main

// The database both roles share: which one -database names, how it is
// opened, and the schema: River's tables, created by River's migrator, and
// the two tables of this step.

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

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx" driver
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // database/sql's "sqlite" driver, in pure Go
)

// databaseAccepted says what -database takes.
const databaseAccepted = "-database takes the path of a SQLite file (data/jobs.db, or file:data/jobs.db) or a postgres:// URL"

var (
	// A URL starts with its scheme: a letter, then letters, digits, "+",
	// "-" or ".", then ":". A file whose name starts so is written ./name.
	schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// A keyword/value connection string, as libpq takes: host=... dbname=...
	keywordValueRE = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
)

// parseDatabase says which database -database names: a PostgreSQL URL, or
// the path of a SQLite file. Anything else is refused rather than taken for
// a file name: "mysql://localhost/jobs" would become a folder "mysql:",
// and "host=localhost dbname=jobs" a file of that name. A refusal never
// repeats the string, which can hold a password.
func parseDatabase(database string) (postgresURL, sqlitePath string, err error) {
	switch scheme := strings.ToLower(schemeRE.FindString(database)); {
	case database == "":
		return "", "", errors.New("-database is empty: " + databaseAccepted)
	case scheme == "postgres:" || scheme == "postgresql:":
		if !strings.HasPrefix(database[len(scheme):], "//") {
			return "", "", fmt.Errorf("-database: a PostgreSQL URL starts with %s//; %s", scheme, databaseAccepted)
		}
		return database, "", nil
	case scheme == "file:":
		// file:data/jobs.db or file:///var/lib/jobs.db, as SQLite reads
		// them, without the query: the step sets SQLite's options itself.
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
	case keywordValueRE.MatchString(database):
		return "", "", errors.New("-database: a keyword/value connection string (host=... dbname=...) is not taken; " + databaseAccepted)
	}
	return "", database, nil
}

// redacted returns database with its passwords, if any, masked, for a log.
func redacted(database string) string { return hidePasswords(database, database) }

// hidePasswords masks in s each password that the URL database holds: the
// one after user: and any password= or sslpassword= of its query, as they
// are written in the URL and decoded. An error from pgx or database/sql
// can quote the URL, and pgx's own masking of it is best effort.
func hidePasswords(s, database string) string {
	if !strings.Contains(database, "://") {
		return s
	}
	var secrets []string
	rest := database[strings.Index(database, "://")+3:]
	// The user info ends at the last "@" before the query: a password
	// may hold a "/" that a URL parser would take for the path.
	beforeQuery, _, _ := strings.Cut(rest, "?")
	beforeQuery, _, _ = strings.Cut(beforeQuery, "#")
	if at := strings.LastIndex(beforeQuery, "@"); at >= 0 {
		if _, password, ok := strings.Cut(beforeQuery[:at], ":"); ok {
			secrets = append(secrets, password)
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		query, _, _ = strings.Cut(query, "#")
		for _, pair := range strings.Split(query, "&") {
			key, value, _ := strings.Cut(pair, "=")
			if key, err := url.QueryUnescape(key); err == nil && (strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword")) {
				secrets = append(secrets, value)
			}
		}
	}
	for _, secret := range secrets {
		forms := []string{secret}
		if decoded, err := url.PathUnescape(secret); err == nil {
			forms = append(forms, decoded)
		}
		if decoded, err := url.QueryUnescape(secret); err == nil {
			forms = append(forms, decoded)
		}
		for _, form := range forms {
			if form != "" {
				s = strings.ReplaceAll(s, form, "xxxxx")
			}
		}
	}
	return s
}

// openDatabase opens -database and brings its schema up to date. Both
// databases are used through database/sql, so that the handlers and the
// worker are written once, with *sql.Tx, whichever it is.
//
//   - A postgres:// URL: PostgreSQL, through pgx. River's database/sql
//     driver does the work, and a pgx pool of its own gives it LISTEN, so
//     that a worker hears of a new job at once instead of polling for it.
//     Many web and worker processes on many machines can share it.
//   - A path, or a file: URL, names a SQLite file, shared by the processes
//     of one machine: WAL mode lets readers and the one writer work at
//     once, and the busy timeout makes a process wait for the write lock
//     instead of failing. BEGIN IMMEDIATE takes the lock when a transaction
//     starts, so that one that reads and then writes cannot fail halfway.
//
// Its errors show no password of the URL.
func openDatabase(ctx context.Context, database string) (*sql.DB, riverdriver.Driver[*sql.Tx], func(), error) {
	db, driver, closeDB, err := open(ctx, database)
	if err != nil {
		return nil, nil, nil, errors.New(hidePasswords(err.Error(), database))
	}
	return db, driver, closeDB, nil
}

func open(ctx context.Context, database string) (*sql.DB, riverdriver.Driver[*sql.Tx], func(), error) {
	postgresURL, sqlitePath, err := parseDatabase(database)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		db      *sql.DB
		driver  riverdriver.Driver[*sql.Tx]
		closeDB func()
	)
	if postgresURL != "" {
		var err error
		if db, err = sql.Open("pgx", postgresURL); err != nil {
			return nil, nil, nil, err
		}
		listenPool, err := pgxpool.New(ctx, postgresURL)
		if err != nil {
			db.Close()
			return nil, nil, nil, err
		}
		driver = riverdatabasesql.NewWithPgxListener(db, listenPool)
		closeDB = func() { db.Close(); listenPool.Close() }
	} else {
		if err := os.MkdirAll(filepath.Dir(sqlitePath), 0o755); err != nil {
			return nil, nil, nil, err
		}
		var err error
		db, err = sql.Open("sqlite", "file:"+sqlitePath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
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
