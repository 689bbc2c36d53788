package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// keepAliveGrace bounds how long the old process waits, after the hand-over,
// for clients to send one more request on their kept-alive connections. A
// client under load sends within milliseconds; one that stays quiet longer
// has its idle connection closed by Shutdown, as in step 05.
const keepAliveGrace = time.Second

// keepAlives lets the old process give up its kept-alive connections the
// way HTTP/1.1 means it to: by answering the next request on each with
// Connection: close. Shutdown instead closes every idle connection at
// once, and a client may already be sending its next request on one; that
// request then fails, and a client that does not retry reports it.
// (SetKeepAlivesEnabled(false) does the same: it closes the idle
// connections on the spot.)
type keepAlives struct {
	mu      sync.Mutex
	stopped bool
	// open holds the connections that are new (accepted, no request read
	// yet), idle, or whose request in flight will answer with keep-alive:
	// the ones a client may send on.
	open map[net.Conn]bool
}

func newKeepAlives() *keepAlives {
	return &keepAlives{open: make(map[net.Conn]bool)}
}

// handler answers through next, with Connection: close once stop has been
// called; net/http then closes the connection after the answer. It reads
// stopped after track did for the same request, so a request that track
// did not count as keeping its connection open is sure to close it.
func (k *keepAlives) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		stopped := k.stopped
		k.mu.Unlock()
		if stopped {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// track is the server's ConnState hook.
func (k *keepAlives) track(c net.Conn, state http.ConnState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch state {
	case http.StateActive:
		// A request arrived. It stays open after its answer unless the
		// answer says Connection: close, which it does once stopped.
		if !k.stopped {
			k.open[c] = true
		} else {
			delete(k.open, c)
		}
	case http.StateNew, http.StateIdle:
		// Its client may send a request at any moment: the first one on
		// a connection accepted just before the hand-over, or the next.
		// Shutdown would drop a first request it reads after it began.
		k.open[c] = true
	default: // StateClosed, StateHijacked: gone
		delete(k.open, c)
	}
}

// stop makes every answer from now on close its connection.
func (k *keepAlives) stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
}

// wait waits, after stop, until no connection is left that a client may
// send on, for at most keepAliveGrace or until ctx ends.
func (k *keepAlives) wait(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, keepAliveGrace)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		k.mu.Lock()
		n := len(k.open)
		k.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
