package main

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthServer is grpc-go's health service with one change: its Watch
// streams end when the drain begins.
//
// health.Server's Watch sends every status change, NOT_SERVING included,
// and returns only when its stream's context is done, that is, when the
// client goes (grpc-go v1.85.0, health/server.go). health.Server.Shutdown
// does not end it. So a client that watches health, as a load balancer
// doing client-side health checks does, holds GracefulStop to its deadline.
type healthServer struct {
	*health.Server
	draining context.Context
}

// Watch runs health.Server's Watch on a stream whose context also ends with
// draining, and reports UNAVAILABLE when that is why it ended.
func (h *healthServer) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(h.draining, cancel)()
	err := h.Server.Watch(in, watchStream{stream, ctx})
	if h.draining.Err() != nil && stream.Context().Err() == nil {
		return status.Error(codes.Unavailable, shuttingDown)
	}
	return err
}

// watchStream is a Watch stream with another context.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
