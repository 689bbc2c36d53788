package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// counted is how many POST /count the server has processed. A request
// adds its one before it answers, so a request whose answer is lost (cut at
// the shutdown deadline, or never read) has counted all the same: the
// work was done, and only its client does not know.
var counted atomic.Int64

// count adds one to the counter and answers its new value, after ?d= (0s
// by default): a delay between the work and the answer.
func count(w http.ResponseWriter, r *http.Request) {
	d, ok := delay(w, r, 0)
	if !ok || !readBody(w, r) {
		return
	}
	n := counted.Add(1)
	if d > 0 {
		slog.Info("count request waiting", "count", n, "d", d)
	}
	if !wait(r, d) {
		return
	}
	fmt.Fprintf(w, "%d\n", n)
}

// maxBody caps the body of a POST /count, which the server reads whole
// before it counts.
const maxBody = 1 << 20

// readBody reads the request's body before the count, or answers 413 and
// reports false when it is over maxBody. A handler that answers without
// reading its body leaves the rest to the server (HTTP/1.1 discards up to
// 256 KiB of it and closes the connection when more is left, HTTP/2 resets
// the stream when the client is still sending), and the client may then
// be told it failed for a request that counted: so the body is read, or
// refused, first.
func readBody(w http.ResponseWriter, r *http.Request) bool {
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, fmt.Sprintf("body too large: POST /count takes at most %d bytes", maxBody), http.StatusRequestEntityTooLarge)
		return false
	case err != nil:
		// The client went away while sending: nobody is left to answer.
		return false
	}
	return true
}

// delay reads ?d=, or answers 400 and reports false when it is no duration
// from 0s to maxDelay.
func delay(w http.ResponseWriter, r *http.Request, byDefault time.Duration) (time.Duration, bool) {
	vs, given := r.URL.Query()["d"]
	if !given {
		return byDefault, true
	}
	// An empty d, or two of them, is a mistake to name, not a default.
	d, err := time.ParseDuration(vs[0])
	if len(vs) > 1 || err != nil || d < 0 || d > maxDelay {
		http.Error(w, fmt.Sprintf("bad d=%q: want one duration from 0s to %s, like 3s", strings.Join(vs, "&d="), maxDelay), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}

// wait waits for d, and reports false if the request ended first: the
// client went away or the server cut the connection, and nobody is left
// to read an answer.
func wait(r *http.Request, d time.Duration) bool {
	if d == 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}
