package main

// The web role's handlers: the contract's / and /slow, and the two email
// routes, which only write and read jobs in the database.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

const (
	maxDelay        = time.Minute // caps /slow?d=, so that one request cannot hold a server forever
	maxBody         = 1 << 20     // caps a POST /emails body
	maxRecipients   = 100         // caps the jobs of one POST /emails
	maxKeyLength    = 255         // caps an Idempotency-Key
	idempotencyHead = "Idempotency-Key"
)

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "09-worker-process, pid %d\n", os.Getpid())
}

// slow stands for real work: it waits for ?d= (5s by default), then answers.
func slow(w http.ResponseWriter, r *http.Request) {
	d := 5 * time.Second
	// An empty d, or two of them, is a mistake to name, not a default.
	if vs, given := r.URL.Query()["d"]; given {
		parsed, err := time.ParseDuration(vs[0])
		if len(vs) > 1 || err != nil || parsed < 0 || parsed > maxDelay {
			http.Error(w, fmt.Sprintf("bad d=%q: want one duration from 0s to %s, like 3s", strings.Join(vs, "&d="), maxDelay), http.StatusBadRequest)
			return
		}
		d = parsed
	}
	slog.Info("slow request started", "d", d)
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		slog.Info("slow request cancelled", "d", d, "cause", context.Cause(r.Context()))
		return
	}
	slog.Info("slow request finished", "d", d)
	fmt.Fprintf(w, "slow request finished after %s\n", d)
}

// emailRequest is the body of POST /emails: one job per recipient.
type emailRequest struct {
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Body    string   `json:"body"`
}

// postEmails writes one job per recipient, all in one transaction, and
// answers 202 with their ids once it is committed: from then on, no crash
// of this process can lose them. No email is sent here; a worker process
// does that.
//
// With an Idempotency-Key header, the same transaction records the key with
// the request and its job ids, so a client that sends the same request
// again (it timed out waiting for the 202, say) gets the same ids back and
// nothing is queued twice.
func postEmails(db *sql.DB, client *river.Client[*sql.Tx]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := readEmailRequest(w, r)
		if !ok {
			return
		}
		key := r.Header.Get(idempotencyHead)
		if len(key) > maxKeyLength {
			http.Error(w, fmt.Sprintf("the %s is over %d bytes", idempotencyHead, maxKeyLength), http.StatusBadRequest)
			return
		}
		request, _ := json.Marshal(req) // the request in one canonical form, to compare a retry with

		ctx := r.Context()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			serverError(w, "cannot begin a transaction", err)
			return
		}
		defer tx.Rollback() // a no-op once committed

		var ids []int64
		if key != "" {
			var storedRequest, storedIDs string
			err := tx.QueryRowContext(ctx, `SELECT request, job_ids FROM email_requests WHERE idempotency_key = $1`, key).Scan(&storedRequest, &storedIDs)
			switch {
			case err == nil && storedRequest != string(request):
				http.Error(w, fmt.Sprintf("this %s was used for a different request", idempotencyHead), http.StatusUnprocessableEntity)
				return
			case err == nil: // a retry: answer as the first time
				if err := json.Unmarshal([]byte(storedIDs), &ids); err != nil {
					serverError(w, "cannot read the stored job ids", err)
					return
				}
				accepted(w, ids)
				return
			case !errors.Is(err, sql.ErrNoRows):
				serverError(w, "cannot read the idempotency key", err)
				return
			}
		}

		jobs := make([]river.InsertManyParams, len(req.To))
		for i, to := range req.To {
			jobs[i] = river.InsertManyParams{Args: EmailArgs{To: to, Subject: req.Subject, Body: req.Body}}
		}
		results, err := client.InsertManyTx(ctx, tx, jobs)
		if err != nil {
			serverError(w, "cannot queue the jobs", err)
			return
		}
		for _, result := range results {
			ids = append(ids, result.Job.ID)
		}
		if key != "" {
			storedIDs, _ := json.Marshal(ids)
			result, err := tx.ExecContext(ctx, `INSERT INTO email_requests (idempotency_key, request, job_ids) VALUES ($1, $2, $3)
				ON CONFLICT (idempotency_key) DO NOTHING`, key, string(request), string(storedIDs))
			if err != nil {
				serverError(w, "cannot record the idempotency key", err)
				return
			}
			// On PostgreSQL, two requests with the same key can run at
			// once; the second waits here for the first to commit, and
			// then records nothing: it rolls back its jobs and says so.
			n, err := result.RowsAffected()
			if err != nil {
				serverError(w, "cannot record the idempotency key", err)
				return
			}
			if n == 0 {
				http.Error(w, fmt.Sprintf("a request with this %s was being handled: send it again for its answer", idempotencyHead), http.StatusConflict)
				return
			}
		}
		if err := tx.Commit(); err != nil {
			serverError(w, "cannot commit the jobs", err)
			return
		}
		accepted(w, ids)
	}
}

// readEmailRequest reads and checks a POST /emails body. When it is not
// usable, it answers with a 4xx and a one-line reason, and returns false.
func readEmailRequest(w http.ResponseWriter, r *http.Request) (emailRequest, bool) {
	var req emailRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, fmt.Sprintf("the body is over %d bytes", maxBody), http.StatusRequestEntityTooLarge)
		return req, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's ReadTimeout passed before the body arrived.
		http.Error(w, "the body did not arrive in time", http.StatusRequestTimeout)
		return req, false
	case err != nil:
		http.Error(w, "cannot read the body: "+err.Error(), http.StatusBadRequest)
		return req, false
	}
	// JSON text is UTF-8. encoding/json would replace each invalid byte
	// with U+FFFD and queue an email that is not the one posted.
	if !utf8.Valid(body) {
		http.Error(w, "bad JSON: the body is not valid UTF-8", http.StatusBadRequest)
		return req, false
	}
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&req); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return req, false
	}
	if _, err := decoder.Token(); err != io.EOF {
		http.Error(w, "bad JSON: more than one value", http.StatusBadRequest)
		return req, false
	}
	switch {
	case len(req.To) == 0:
		http.Error(w, `no recipients: "to" is empty`, http.StatusBadRequest)
		return req, false
	case len(req.To) > maxRecipients:
		http.Error(w, fmt.Sprintf("%d recipients: at most %d per request", len(req.To), maxRecipients), http.StatusRequestEntityTooLarge)
		return req, false
	}
	for _, to := range req.To {
		if _, err := mail.ParseAddress(to); err != nil {
			http.Error(w, fmt.Sprintf("bad address %q: %v", to, err), http.StatusBadRequest)
			return req, false
		}
	}
	return req, true
}

func accepted(w http.ResponseWriter, ids []int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string][]int64{"ids": ids})
}

func serverError(w http.ResponseWriter, what string, err error) {
	slog.Error(what, "err", err)
	http.Error(w, what, http.StatusInternalServerError)
}

// emailStatus is the answer of GET /emails/{id}. State is River's own name
// for where the job is: available, running, retryable, completed, ...
type emailStatus struct {
	ID       int64              `json:"id"`
	To       string             `json:"to"`
	Subject  string             `json:"subject"`
	State    rivertype.JobState `json:"state"`
	Attempts int                `json:"attempts"`
	Errors   []string           `json:"errors,omitempty"`
}

// getEmail answers with a job's state, read from River's table.
func getEmail(client *river.Client[*sql.Tx]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, fmt.Sprintf("no email %q: ids are numbers", r.PathValue("id")), http.StatusNotFound)
			return
		}
		job, err := client.JobGet(r.Context(), id)
		if errors.Is(err, rivertype.ErrNotFound) {
			http.Error(w, fmt.Sprintf("no email %d", id), http.StatusNotFound)
			return
		}
		if err != nil {
			serverError(w, "cannot read the job", err)
			return
		}
		var args EmailArgs
		if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
			serverError(w, "cannot read the job's arguments", err)
			return
		}
		status := emailStatus{ID: job.ID, To: args.To, Subject: args.Subject, State: job.State, Attempts: job.Attempt}
		for _, e := range job.Errors {
			status.Errors = append(status.Errors, e.Error)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status)
	}
}
