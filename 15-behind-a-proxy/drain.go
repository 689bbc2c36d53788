package main

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// drain is what changes when SIGTERM arrives and the drain delay begins:
// /readyz starts to fail, and every response asks its client (the proxy)
// to close the connection. The zero value is a replica that is serving.
type drain struct {
	started atomic.Bool
}

// begin starts the drain delay. It is safe to call while requests run.
func (d *drain) begin() { d.started.Store(true) }

// readyz is the readiness check: 200 while this replica should get
// traffic, 503 from the first SIGTERM on. HAProxy's `option httpchk GET
// /readyz` marks the server down after `fall` failed checks, and stops
// sending it new requests; open-source nginx has no active check, so
// behind nginx the deploy takes the replica out itself (a reload).
func (d *drain) readyz(w http.ResponseWriter, r *http.Request) {
	if d.started.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// livez answers 200 for as long as the process runs, the drain included:
// a supervisor that restarts what fails it must not restart a replica
// that is draining.
func livez(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "alive")
}

// closeConnections sets Connection: close on every response that starts
// during the drain delay. net/http then closes the connection once the
// response is written, and the proxy, told so, does not put it back in its
// pool of idle upstream connections (nginx's upstream keepalive, HAProxy's
// idle server connections): its next request opens a new connection, and
// goes to a replica that is not going away once the deploy has told it.
//
// Why not srv.SetKeepAlivesEnabled(false)? It also closes every idle
// kept-alive connection at once, and the proxy may be sending its next
// request on one at that very moment: that request is lost. The header
// closes a connection only after a response that told the proxy so.
func (d *drain) closeConnections(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.started.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// exitMargin is the time the budget leaves between the end of a forced
// shutdown and the supervisor's SIGKILL (systemd's TimeoutStopSec, a
// kubelet's grace period): for the program to log and exit.
const exitMargin = time.Second

// checkBudget checks that the drain delay and the shutdown timeout, with
// the margin, fit in the grace period, and says why not with the sums.
func checkBudget(drainDelay, shutdownTimeout, gracePeriod time.Duration) error {
	if gracePeriod <= 0 {
		return fmt.Errorf("-grace-period must be more than 0")
	}
	if need := drainDelay + shutdownTimeout + exitMargin; need > gracePeriod {
		return fmt.Errorf("-drain-delay %s + -shutdown-timeout %s + %s to exit = %s, more than -grace-period %s: "+
			"the supervisor would SIGKILL the program before it gave up on its last requests",
			drainDelay, shutdownTimeout, exitMargin, need, gracePeriod)
	}
	return nil
}
