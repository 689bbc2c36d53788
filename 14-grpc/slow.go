package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
)

// Bounds of the durations the service takes, so that one call cannot hold a
// server forever, nor a stream flood its client.
const (
	maxSleep     = time.Minute
	minTick      = 10 * time.Millisecond
	maxTick      = time.Minute
	shuttingDown = "server is shutting down: call again to reach another instance"
)

// slept is how many Sleep calls the server has answered.
var slept atomic.Int64

// slowServer is the step's own service, walkthrough.v1.Slow (slow.proto).
type slowServer struct {
	slowpb.UnimplementedSlowServer
	// draining is cancelled when the drain begins; streams end then.
	draining context.Context
}

// Sleep stands for real work: it waits for the duration, then answers.
func (s *slowServer) Sleep(ctx context.Context, in *durationpb.Duration) (*wrapperspb.StringValue, error) {
	d, err := duration(in, 0, maxSleep)
	if err != nil {
		return nil, err
	}
	slog.Info("sleep started", "d", d)
	select {
	case <-time.After(d):
	case <-ctx.Done():
		// The client went away, its deadline passed, or Stop cut the
		// connection: nobody is left to read an answer.
		slog.Info("sleep cancelled", "d", d, "cause", context.Cause(ctx))
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	slept.Add(1)
	slog.Info("sleep finished", "d", d)
	return wrapperspb.String(fmt.Sprintf("slept %s (14-grpc, pid %d)", d, os.Getpid())), nil
}

// Ticks sends the time at every interval until the client goes or the
// drain begins. Left to itself it never ends, and GracefulStop would wait
// for it: so it ends when draining does, with UNAVAILABLE, the code a
// client takes to mean "try again, elsewhere".
func (s *slowServer) Ticks(in *durationpb.Duration, stream grpc.ServerStreamingServer[timestamppb.Timestamp]) error {
	every, err := duration(in, minTick, maxTick)
	if err != nil {
		return err
	}
	if s.draining.Err() != nil {
		// Between the end of the streams and GracefulStop's GOAWAY, a
		// client told to call again could reach this server once more.
		return status.Error(codes.Unavailable, shuttingDown)
	}
	slog.Info("ticks started", "every", every)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for sent := 0; ; sent++ {
		select {
		case <-stream.Context().Done():
			slog.Info("ticks ended", "by", "client", "sent", sent)
			return status.FromContextError(stream.Context().Err()).Err()
		case <-s.draining.Done():
			slog.Info("ticks ended", "by", "server", "sent", sent)
			return status.Error(codes.Unavailable, shuttingDown)
		case now := <-ticker.C:
			if err := stream.Send(timestamppb.New(now)); err != nil {
				return err
			}
		}
	}
}

// duration reads a request's duration, or returns INVALID_ARGUMENT with one
// line saying what is wrong.
func duration(in *durationpb.Duration, lowest, highest time.Duration) (time.Duration, error) {
	if err := in.CheckValid(); err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "bad duration: %v", err)
	}
	d := in.AsDuration()
	if d < lowest || d > highest {
		return 0, status.Errorf(codes.InvalidArgument, "bad duration %s: want one from %s to %s, like 3s", readable(in), lowest, highest)
	}
	return d, nil
}

// readable writes a duration as a person reads it, 100000h0m0s or 1ns.
// Beyond time.Duration's range (about 292 years) AsDuration saturates, so
// such a duration is written as it was sent, in seconds: 315576000000s.
func readable(in *durationpb.Duration) string {
	if d := in.AsDuration(); d != math.MaxInt64 && d != math.MinInt64 {
		return d.String()
	}
	s := strconv.FormatInt(in.GetSeconds(), 10)
	if n := in.GetNanos(); n != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", max(n, -n)), "0")
	}
	return s + "s"
}
