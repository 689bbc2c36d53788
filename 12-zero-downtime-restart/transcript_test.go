package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./12-zero-downtime-restart, then make docs. make demo-12
// narrates them live.
func TestTranscripts(t *testing.T) {
	t.Parallel() // the sessions wait on timers, not on the CPU
	demotest.Transcripts{Scripts: []demotest.Script{demotest.DrainScript, demotest.PortInUseScript}}.Run(t)
	demotest.RunTreeTranscript(t, "upgrade", "a slow request, then SIGHUP: the new binary takes over", upgradeSession)
}

// upgradeSession: a request in flight, a SIGHUP, the new process answers
// while the old one finishes the request and exits 0; then SIGTERM.
func upgradeSession(s *demotest.TreeSession) {
	dir := s.T().TempDir()
	pidFile := filepath.Join(dir, "12.pid")
	s.Normalize = func(line string) string { return strings.ReplaceAll(line, dir+string(filepath.Separator), "") }
	s.Start(demotest.CopyProgram(s.T(), dir), "-pid-file", pidFile)
	old := s.Tree.Pid()
	s.Get("/")
	s.Note("A client asks for a request that takes 5s: long enough that the new process is up and serving before it ends, even on a busy machine.")
	slow := s.GetAsync("/slow?d=5s")
	s.Expect("slow request started")
	s.Note("A deploy has replaced the binary. You ask the server to restart into it.")
	s.Signal(old, syscall.SIGHUP)
	s.Expect("upgrade started")
	s.Expect("listening")
	s.Expect("shutdown started")
	s.Note("The new process serves; the old one only finishes what it has.")
	s.Get("/")
	s.Expect("slow request finished")
	s.Answer(slow)
	s.Expect("shutdown finished")
	s.WaitExit(old)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		s.T().Fatal(err)
	}
	s.Note("The PID file names the new process: " + strings.TrimSpace(string(b)) + ".")
	current := demotest.PidOf(s.Tree.WaitLogN("listening", 2))
	s.Signal(current, syscall.SIGTERM)
	s.Expect("shutdown finished")
	s.WaitExit(current)
	s.Note("No request failed, and the port was never closed.")
}
