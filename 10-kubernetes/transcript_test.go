package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/kubesim"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./10-kubernetes, then make docs. make demo-10 narrates them live.
// The same run rewrites testdata/idle-pool.txt, the counts of an idle
// pool through five rolling updates, which differ from run to run and so
// are recorded, not compared.
func TestTranscripts(t *testing.T) {
	drainDelay := demotest.Script{Name: "drain-delay", Title: "SIGTERM, the drain delay, then the drain", Run: func(s *demotest.Session) {
		s.Start("-drain-delay", "1s")
		s.Note("The kubelet's readiness probe: the pod is ready.")
		s.Answer(s.Get("/readyz"))
		s.Note("A rolling update deletes the pod: the kubelet sends SIGTERM.")
		s.Signal(syscall.SIGTERM)
		s.Expect("shutdown started")
		s.Expect("drain delay started")
		s.Answer(s.Get("/readyz"))
		s.Note("Not every proxy has heard yet: a new connection still gets its answer.")
		if r := s.Answer(s.Get("/")); r.Close {
			s.Note("The answer said Connection: close; the client's next request opens a connection to another pod.")
		}
		s.Expect("drain delay finished")
		s.WaitExit()
	}}
	budget := demotest.Script{Name: "budget", Title: "a drain that cannot fit in the grace period", Run: func(s *demotest.Session) {
		s.Note("A shutdown timeout of 30s, in a pod whose grace period is the default 30s.")
		s.StartAt(demotest.FreeAddr(t), "-shutdown-timeout", "30s")
		s.WaitExit()
	}}
	demotest.Transcripts{Scripts: []demotest.Script{drainDelay, budget}}.Run(t)
	if os.Getenv(demotest.UpdateEnv) == "1" {
		t.Run("idle-pool", recordIdlePool)
	}
}

// proxyPort is the simulated Service's address in an error, which changes
// from run to run.
var proxyPort = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// recordIdlePool runs five rolling updates with TestRollingUpdateDropsNothing's
// times and idle pool, and writes what the pool counted, summed.
func recordIdlePool(t *testing.T) {
	const runs, propagation, drainDelay = 5, 200 * time.Millisecond, 500 * time.Millisecond
	pool := idlePool(drainDelay)
	var sum kubesim.IdlePoolResult
	for range runs {
		_, r, _ := rolloutWithIdlePool(t, propagation, drainDelay, pool)
		sum.Requests += r.Requests
		sum.OK += r.OK
		sum.Lost = append(sum.Lost, r.Lost...)
		sum.Opened += r.Opened
		sum.Told += r.Told
		sum.ClosedIdle += r.ClosedIdle
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rolling updates of 3 replicas, propagation %s, -drain-delay %s, each beside the busy clients\n", runs, propagation, drainDelay)
	fmt.Fprintf(&b, "an idle pool: %d connections, %d requesters sending one request each every %s, never retried.\n", pool.Conns, pool.Conns, pool.Every)
	fmt.Fprintf(&b, "requests:                                           %d\n", sum.Requests)
	fmt.Fprintf(&b, "lost:                                               %d\n", len(sum.Lost))
	for _, l := range sum.Lost {
		fmt.Fprintf(&b, "  %s\n", proxyPort.ReplaceAllString(l, "127.0.0.1:<port>"))
	}
	fmt.Fprintf(&b, "connections opened:                                 %d\n", sum.Opened)
	fmt.Fprintf(&b, "told Connection: close by a response in the delay: %d\n", sum.Told)
	fmt.Fprintf(&b, "closed by Shutdown while idle, untold:              %d\n", sum.ClosedIdle)
	if err := os.WriteFile(filepath.Join("testdata", "idle-pool.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
