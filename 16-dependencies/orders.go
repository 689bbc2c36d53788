package main

// The HTTP side: POST /orders puts an order on the stream, GET /orders/{id}
// says whether the consumer has stored it, and step 10's / and /slow.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

// order is what POST /orders takes, and what the stream and the table
// hold, with its id.
type order struct {
	ID       string `json:"id"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
}

func (o order) marshal() ([]byte, error) { return json.Marshal(o) }

// idRE is what an Idempotency-Key may be: it becomes the order's id.
var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// check says what is wrong with o, in one line, or returns nil.
func (o order) check() error {
	switch {
	case !idRE.MatchString(o.ID):
		return fmt.Errorf("bad id %q: want 1 to 64 letters, digits, _ or -", o.ID)
	case strings.TrimSpace(o.Item) == "" || len(o.Item) > 100:
		return errors.New(`"item" must be 1 to 100 characters`)
	case o.Quantity < 1 || o.Quantity > 1000:
		return fmt.Errorf(`"quantity" %d: want 1 to 1000`, o.Quantity)
	}
	return nil
}

// parseOrder reads an order from the stream.
func parseOrder(data []byte) (order, error) {
	var o order
	if err := json.Unmarshal(data, &o); err != nil {
		return order{}, err
	}
	return o, o.check()
}

// postOrder answers 202 with the order's id once JetStream has stored the
// order, not before: a 202 is a promise the stream keeps. The client's
// Idempotency-Key, when it sends one, is the id, so that a POST sent again
// after a lost answer is the same order: JetStream acknowledges a second
// publish of the id within its Duplicates window without storing it, and
// the table's key turns away one that comes later.
func postOrder(js jetstream.JetStream, counts *counts) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var o order
		decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&o); err != nil {
			http.Error(w, fmt.Sprintf(`bad order: %v; want {"item":"book","quantity":1}`, err), http.StatusBadRequest)
			return
		}
		if o.ID != "" {
			http.Error(w, `bad order: the id is not chosen in the body; send an Idempotency-Key header`, http.StatusBadRequest)
			return
		}
		o.ID = r.Header.Get("Idempotency-Key")
		if o.ID == "" {
			o.ID = newID()
		}
		if err := o.check(); err != nil {
			http.Error(w, "bad order: "+err.Error(), http.StatusBadRequest)
			return
		}
		// The publish stops if the client goes away. The order may then
		// be in the stream or not: the client, which got no answer,
		// sends it again with the same key.
		duplicate, err := publish(r.Context(), js, o)
		if err != nil {
			slog.Error("publish failed", "id", o.ID, "err", err)
			http.Error(w, "the order was not accepted; send it again with the same Idempotency-Key", http.StatusServiceUnavailable)
			return
		}
		counts.accepted.Add(1)
		writeJSON(w, http.StatusAccepted, map[string]any{"id": o.ID, "duplicate": duplicate})
	}
}

// writeJSON answers status with v. A failed write means the client has
// gone: nobody is left to tell.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode the answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// newID returns a random order id.
func newID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// getOrder answers 200 with the order once it is stored, 404 until then.
func getOrder(db orderStore) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, stored, err := db.get(r.Context(), r.PathValue("id"))
		switch {
		case err != nil:
			slog.Error("cannot read the order", "id", r.PathValue("id"), "err", err)
			http.Error(w, "cannot read the order now", http.StatusServiceUnavailable)
		case !stored:
			http.Error(w, fmt.Sprintf("order %q is not stored (not yet, or never accepted)", r.PathValue("id")), http.StatusNotFound)
		default:
			writeJSON(w, http.StatusOK, o)
		}
	}
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "16-dependencies, pid %d\n", os.Getpid())
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
		// The client went away or the server cut the connection: nobody is
		// left to read an answer.
		slog.Info("slow request cancelled", "d", d, "cause", context.Cause(r.Context()))
		return
	}
	slog.Info("slow request finished", "d", d)
	fmt.Fprintf(w, "slow request finished after %s\n", d)
}
