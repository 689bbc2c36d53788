package main

// PostgreSQL, when -database is a postgres:// URL: the same table, through
// a pgx pool. Many instances on many machines can share it.

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresOrders is the orders table in PostgreSQL.
type postgresOrders struct{ pool *pgxpool.Pool }

// openPostgres opens a pool on databaseURL and creates the table.
func openPostgres(ctx context.Context, databaseURL string) (*postgresOrders, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pool.Exec(pingCtx, `CREATE TABLE IF NOT EXISTS orders (
		id        TEXT PRIMARY KEY,
		item      TEXT NOT NULL,
		quantity  INTEGER NOT NULL,
		stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &postgresOrders{pool: pool}, nil
}

func (s *postgresOrders) store(ctx context.Context, o order, workTime time.Duration) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	// After Commit, Rollback does nothing and returns pgx.ErrTxClosed; it
	// is there for the returns before it, where the transaction is given
	// up anyway.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx,
		`INSERT INTO orders (id, item, quantity) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		o.ID, o.Item, o.Quantity)
	if err != nil {
		return false, err
	}
	if err := work(ctx, workTime); err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, tx.Commit(ctx)
}

func (s *postgresOrders) get(ctx context.Context, id string) (order, bool, error) {
	var o order
	err := s.pool.QueryRow(ctx, `SELECT id, item, quantity FROM orders WHERE id = $1`, id).Scan(&o.ID, &o.Item, &o.Quantity)
	if errors.Is(err, pgx.ErrNoRows) {
		return order{}, false, nil
	}
	return o, err == nil, err
}

// close waits until every connection taken from the pool is given back
// (pgxpool's Close blocks on them): so the database phase comes after the
// consumer's, and is bounded by its share of the budget.
func (s *postgresOrders) close() error {
	s.pool.Close()
	return nil
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
