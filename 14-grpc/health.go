package main

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthServer is grpc-go's health service with two changes: its Watch
// streams end when the drain begins, and say NOT_SERVING before they do;
// and a Watch that starts after Shutdown ends at once, with no message.
//
// health.Server's Watch sends the latest status of its service whenever
// it changes (a one-slot channel: a change overtaken by the next is not
// sent), NOT_SERVING included, and returns only when its stream's context
// is done, that is, when the client goes, or when a Send fails (grpc-go
// v1.85.0, health/server.go). health.Server.Shutdown does not end it. So
// a client that watches health, as a load balancer doing client-side
// health checks does, holds GracefulStop to its deadline.
type healthServer struct {
	*health.Server
	draining context.Context
	shutDown atomic.Bool // set by Shutdown, at SIGTERM
}

// Shutdown marks the server as going, then sets every status NOT_SERVING
// and sends that to the Watch streams open on them.
func (h *healthServer) Shutdown() {
	h.shutDown.Store(true)
	h.Server.Shutdown()
}

// Watch refuses a stream that starts once the server is going; any other it
// runs with health.Server's Watch on a stream whose context also ends with
// draining, and reports UNAVAILABLE when that is why it ended.
func (h *healthServer) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	// A Watch that starts once the server is going ends with UNAVAILABLE
	// and sends nothing, as Ticks does once the drain has begun. grpc-go's client health checker
	// resets its backoff whenever it receives a message (v1.85.0,
	// health/client.go, "tryCnt = 0"): a NOT_SERVING before the end would
	// send it straight back, again and again, until it read the GOAWAY.
	// With no message, each retry waits longer (1s, 1.6s, 2.6s…).
	//
	// A Watch open at SIGTERM still hears NOT_SERVING, then UNAVAILABLE, and
	// cannot loop: it was running before, so it ends only once; the retry
	// that follows at once is a new Watch, which gets no message, and the
	// backoff applies from there.
	if h.shutDown.Load() {
		return status.Error(codes.Unavailable, shuttingDown)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(h.draining, cancel)()
	watch := &watchStream{Health_WatchServer: stream, ctx: ctx, last: -1}
	err := h.Server.Watch(in, watch)
	if h.draining.Err() == nil || stream.Context().Err() != nil {
		return err // the client went away
	}
	// health.Server's Watch waits in a select for a status change or its
	// context's end, and Go picks at random when both are ready, as they
	// can be when the drain follows SIGTERM at once (-drain-delay=0s): the
	// NOT_SERVING that Shutdown set may not have been sent. Send it now,
	// so that every watcher hears it before the stream ends.
	if now, err := h.Check(stream.Context(), in); err == nil && now.Status != watch.last {
		if err := stream.Send(now); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, shuttingDown)
}

// watchStream is a Watch stream with another context, which remembers the
// last status it sent.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx  context.Context
	last healthpb.HealthCheckResponse_ServingStatus
}

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(r *healthpb.HealthCheckResponse) error {
	w.last = r.Status
	return w.Health_WatchServer.Send(r)
}
