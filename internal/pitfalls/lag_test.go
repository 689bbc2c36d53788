package pitfalls

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkShutdownLag measures what Shutdown's polling costs: the time
// from the moment the last client has its whole answer to the moment
// Shutdown returns, which is when a step's main goes on to exit. Shutdown
// notices that the server is quiet only when it next polls, and its poll
// interval doubles from 1 ms up to 500 ms, so the later the last request
// ends, the longer the wait.
//
// Each sub-benchmark lets the one request in flight end a given time
// after the drain began, and reports the mean and the worst lag in ms, for
// Shutdown (drain=Shutdown) and for quickDrain (drain=quick), which ends
// the wait when the last busy connection is done, in the same run. It is a
// measurement, not a test: nothing asserts on the figures. Run it with a
// fixed count, as docs/internals.md shows.
func BenchmarkShutdownLag(b *testing.B) {
	for _, requestLeft := range []time.Duration{
		time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond, 300 * time.Millisecond, 1200 * time.Millisecond,
	} {
		for _, drain := range drains {
			b.Run(fmt.Sprintf("request-ends-after=%s/drain=%s", requestLeft, drain.name), func(b *testing.B) {
				benchmarkLag(b, drain.install, requestLeft)
			})
		}
	}
}

// benchmarkLag measures the lag of one drain, installed on each server by
// install, when the request ends requestLeft after the drain began.
func benchmarkLag(b *testing.B, install func(*http.Server) func(context.Context) error, requestLeft time.Duration) {
	var lags []time.Duration
	for b.Loop() {
		lags = append(lags, measureShutdownLag(b, install, requestLeft))
	}
	var total time.Duration
	for _, lag := range lags {
		total += lag
	}
	b.ReportMetric(float64(total.Microseconds())/float64(len(lags))/1000, "mean-lag-ms")
	b.ReportMetric(float64(slices.Max(lags).Microseconds())/1000, "max-lag-ms")
}

// measureShutdownLag serves one request that is still running when the
// drain begins and ends requestLeft later, and returns the time from the
// client's answer to the drain's return.
func measureShutdownLag(b *testing.B, install func(*http.Server) func(context.Context) error, requestLeft time.Duration) time.Duration {
	h := newBlockingHandler()
	ln := mustListen(b)
	srv := &http.Server{Handler: h}
	drain := install(srv)
	go srv.Serve(ln)
	defer srv.Close()
	resp := getAsync(ln.Addr().String(), "/")
	<-h.started

	shutdownDone := make(chan time.Time, 1)
	go func() {
		if err := drain(context.Background()); err != nil {
			b.Error(err)
		}
		shutdownDone <- time.Now()
	}()
	// The rest of the request's work: the workload, not a synchronisation.
	time.Sleep(requestLeft)
	close(h.release)
	r := <-resp
	if !r.OK() {
		b.Fatalf("the request got %v", r)
	}
	return (<-shutdownDone).Sub(r.At)
}
