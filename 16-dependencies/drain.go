package main

import (
	"fmt"
	"net/http"
	"sync/atomic"
)

// drain is what changes when SIGTERM arrives and the drain delay begins:
// /readyz starts to fail, and every response asks its client to close the
// connection. The zero value is a pod that is serving.
type drain struct {
	started atomic.Bool
}

// begin starts the drain delay. It is safe to call while requests run.
func (d *drain) begin() { d.started.Store(true) }

// readyz is the readiness probe: 200 while this pod should get traffic, 503
// from the first SIGTERM on. Kubernetes marks a deleted pod's endpoint
// terminating, so not ready, without waiting for the probe; but the
// endpoint stays serving until the probe fails, and kube-proxy sends
// traffic to serving terminating endpoints when no ready one is left. The
// probe also tells anything else that watches it (an ingress, a cloud load
// balancer's health check).
func (d *drain) readyz(w http.ResponseWriter, r *http.Request) {
	if d.started.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// livez is the liveness probe: 200 for as long as the process runs, the
// drain included. Kubelets since kubernetes#110191 (1.25, and 1.22.11,
// 1.23.8, 1.24.2) stop liveness probes on a pod being deleted; an older
// one, or another platform's health check, would kill a pod whose liveness
// probe failed during its drain.
func livez(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "alive")
}

// closeConnections sets Connection: close on every response that starts
// during the drain delay. net/http then closes the connection once the
// response is written, and the client, told so, opens its next one through
// the Service, to a pod that is not going away.
//
// Why not srv.SetKeepAlivesEnabled(false)? It also closes every idle
// kept-alive connection at once, and a client may be sending its next
// request on one at that very moment: that request is lost. The header
// closes a connection only after a response that told the client so.
func (d *drain) closeConnections(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.started.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
