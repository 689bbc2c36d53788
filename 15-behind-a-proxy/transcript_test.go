package main

import (
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./15-behind-a-proxy, then make docs. make demo-15
// narrates them live. The sessions with the proxies are make run-15's.
func TestTranscripts(t *testing.T) {
	drainDelay := demotest.Script{Name: "drain-delay", Title: "SIGTERM, the drain delay HAProxy's check reads, then the drain", Run: func(s *demotest.Session) {
		s.Start("-drain-delay", "1s")
		s.Note("HAProxy's health check: GET /readyz, every 100ms.")
		s.Answer(s.Get("/readyz"))
		s.Note("The deploy sends SIGTERM.")
		s.Signal(syscall.SIGTERM)
		s.Expect("shutdown started")
		s.Expect("drain delay started")
		s.Note("The next checks fail: after two, HAProxy marks the server DOWN.")
		s.Answer(s.Get("/readyz"))
		s.Note("A request that was already on its way is still answered.")
		if r := s.Answer(s.Get("/")); r.Close {
			s.Note("Its answer said Connection: close: the proxy drops this connection instead of pooling it.")
		}
		s.Expect("drain delay finished")
		s.WaitExit()
	}}
	idleTimeout := demotest.Script{Name: "idle-timeout", Title: "an idle timeout no longer than the proxy's", Run: func(s *demotest.Session) {
		s.Note("The steps' idle timeout, 60s, behind nginx's default upstream keepalive_timeout, 60s.")
		s.StartAt(demotest.FreeAddr(t), "-idle-timeout", "60s")
		s.WaitExit()
	}}
	demotest.Transcripts{Scripts: []demotest.Script{drainDelay, idleTimeout}}.Run(t)
}
