package main

import (
	"fmt"
	"log/slog"
	"net/http"
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
	if !ok {
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

// delay reads ?d=, or answers 400 and reports false when it is no duration
// from 0s to maxDelay.
func delay(w http.ResponseWriter, r *http.Request, byDefault time.Duration) (time.Duration, bool) {
	v := r.URL.Query().Get("d")
	if v == "" {
		return byDefault, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxDelay {
		http.Error(w, fmt.Sprintf("bad d=%q: want a duration from 0s to %s, like 3s", v, maxDelay), http.StatusBadRequest)
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
