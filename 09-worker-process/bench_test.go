package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// BenchmarkSend measures how soon the worker takes a job, and how many it
// sends a second, with sends that take no time (-send-time 0) and the other
// flags at their defaults. Each iteration is one run on a new database: a
// web and a worker process, then
//
//   - a trickle: trickleJobs POSTs of one recipient, at random moments
//     trickleGap apart on average (a Poisson arrival, the same in each run),
//     each timed from its 202 to the worker's "email sending" line for it
//     (the figures latency-median-ms and latency-worst-ms);
//   - a burst: burstJobs jobs, burstPerRequest per POST from burstClients
//     clients at once, timed from the first POST to the last "email sent"
//     (sent-jobs/s).
//
// It asserts no speed: it is a measurement, run by `make bench-09`, not by
// `make test` (go test runs no benchmark without -bench). The PostgreSQL
// half needs TEST_POSTGRES_URL, as the tests do. Run it without -race: the
// programs are this test binary, and the race detector slows them.
func BenchmarkSend(b *testing.B) {
	for _, db := range []struct {
		name     string
		database func(testing.TB) string
	}{
		{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "jobs.db") }},
		{"postgres", postgresDB},
	} {
		b.Run(db.name, func(b *testing.B) {
			var runs []sendRun
			for b.Loop() {
				runs = append(runs, measureSend(b, db.database(b)))
			}
			// One line per -count: the median of this line's runs.
			b.ReportMetric(median(runs, func(r sendRun) float64 { return r.jobsPerSecond }), "sent-jobs/s")
			b.ReportMetric(median(runs, func(r sendRun) float64 { return ms(r.latencyMedian) }), "latency-median-ms")
			b.ReportMetric(median(runs, func(r sendRun) float64 { return ms(r.latencyWorst) }), "latency-worst-ms")
			b.ReportMetric(0, "ns/op") // the time of a whole run says nothing
		})
	}
}

const (
	trickleJobs     = 100
	trickleGap      = 50 * time.Millisecond // 20 jobs/s on average: a pace any setting keeps up with
	burstJobs       = 1000
	burstPerRequest = 10
	burstClients    = 4
	burstTimeout    = 5 * time.Minute // a hang bound: 1000 jobs at the old 39 jobs/s take 26 s
)

type sendRun struct {
	latencyMedian, latencyWorst time.Duration
	jobsPerSecond               float64
}

func measureSend(b *testing.B, database string) sendRun {
	b.Helper()
	web := demotest.Start(b, "web", "-database", database)
	worker := demotest.StartAt(b, "", "worker", "-database", database, "-send-time", "0s")
	worker.WaitLog("worker started")
	var run sendRun

	// The trickle.
	accepted := map[string]time.Time{} // job id → when its 202 arrived
	gaps := rand.New(rand.NewPCG(9, 9))
	next := time.Now()
	for i := range trickleJobs {
		time.Sleep(time.Until(next)) // the pace of the load, not a wait for an event
		ids, at := postBench(b, web, fmt.Sprintf("trickle-%d@example.com", i))
		accepted[ids[0]] = at
		next = next.Add(time.Duration(gaps.ExpFloat64() * float64(trickleGap)))
	}
	if _, ok := worker.AwaitLogN("email sent", trickleJobs, burstTimeout); !ok {
		b.Fatalf("%d of %d trickled jobs sent", worker.Count("email sent"), trickleJobs)
	}
	var latencies []time.Duration
	for _, l := range worker.Lines() {
		if at, ok := accepted[l.Attr("id")]; ok && l.Msg() == "email sending" {
			latencies = append(latencies, l.At.Sub(at))
			delete(accepted, l.Attr("id")) // a job's first send only
		}
	}
	if len(latencies) != trickleJobs {
		b.Fatalf("%d of %d trickled jobs logged \"email sending\"", len(latencies), trickleJobs)
	}
	slices.Sort(latencies)
	run.latencyMedian, run.latencyWorst = latencies[len(latencies)/2], latencies[len(latencies)-1]

	// The burst.
	began := time.Now()
	var wg sync.WaitGroup
	requests := make(chan int)
	for range burstClients {
		wg.Go(func() {
			for first := range requests {
				to := make([]string, burstPerRequest)
				for i := range to {
					to[i] = fmt.Sprintf("burst-%d@example.com", first+i)
				}
				postBench(b, web, to...)
			}
		})
	}
	for first := 0; first < burstJobs; first += burstPerRequest {
		requests <- first
	}
	close(requests)
	wg.Wait()
	last, ok := worker.AwaitLogN("email sent", trickleJobs+burstJobs, burstTimeout)
	if !ok {
		b.Fatalf("%d of %d burst jobs sent", worker.Count("email sent")-trickleJobs, burstJobs)
	}
	run.jobsPerSecond = burstJobs / last.At.Sub(began).Seconds()
	return run
}

// postBench posts one email to the given recipients and returns the job
// ids, as text, and when the 202 arrived. Anything else fails the run.
func postBench(b *testing.B, web *demotest.Process, to ...string) ([]string, time.Time) {
	r, _ := web.PostJSON("/emails", emailBody(to...))
	var answer struct{ IDs []int64 }
	if r.Err != nil || r.Status != 202 || json.Unmarshal([]byte(r.Body), &answer) != nil || len(answer.IDs) != len(to) {
		b.Errorf("POST /emails: %v, want 202 with %d ids", r, len(to))
		return []string{""}, r.At
	}
	ids := make([]string, len(answer.IDs))
	for i, id := range answer.IDs {
		ids[i] = strconv.FormatInt(id, 10)
	}
	return ids, r.At
}

func median(runs []sendRun, figure func(sendRun) float64) float64 {
	values := make([]float64, len(runs))
	for i, r := range runs {
		values[i] = figure(r)
	}
	slices.Sort(values)
	return values[len(values)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
