package main

import (
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./10-kubernetes, then make docs. make demo-10 narrates them live.
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
}
