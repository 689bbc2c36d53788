package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./06-background-workers, then make docs. make demo-06
// narrates them live.
//
// The three sessions share one outbox and spool, in this order: a drain,
// a budget that runs out, and the restart that sends what it spooled. One
// worker keeps the log lines in one order on every run.
func TestTranscripts(t *testing.T) {
	t.Parallel() // the sessions wait on timers, not on the CPU
	dir := t.TempDir()
	ids := map[string]string{} // a job id, as named in the transcript
	jobID := regexp.MustCompile(`\b[A-Z2-7]{26}\b`)
	requestID := regexp.MustCompile(`request_id=\S+`)
	paths := regexp.MustCompile(`/\S*/(outbox|spool)\.jsonl\b`)
	demotest.Transcripts{
		Scripts: []demotest.Script{
			{Name: "drain", Title: "three emails, then SIGTERM: the workers drain the queue", Run: func(s *demotest.Session) { emailsDrain(s, dir) }},
			{Name: "budget", Title: "three emails and a short budget: the rest is spooled", Run: emailsBudget},
			{Name: "restart", Title: "the next start sends what the spool holds", Run: func(s *demotest.Session) { emailsRestart(s, dir) }},
		},
		Args: func(*testing.T) []string { return files(dir) },
		Normalize: func(line string) string {
			line = jobID.ReplaceAllStringFunc(line, func(id string) string {
				if ids[id] == "" {
					ids[id] = fmt.Sprintf("JOB%d", len(ids)+1)
				}
				return ids[id]
			})
			line = requestID.ReplaceAllString(line, "request_id=<request id>")
			return paths.ReplaceAllString(line, "data/$1.jsonl")
		},
	}.Run(t)
}

func emailsDrain(s *demotest.Session, dir string) {
	s.Start("-workers", "1", "-send-time", "300ms")
	s.Note("A client asks for three emails. The answer comes at once: sending is background work.")
	s.PostJSON("/emails", emailBody("ann@example.com", "bob@example.com", "cy@example.com"))
	s.Expect("email sending")
	s.Note("A deploy sends SIGTERM while the first email is on its way and two wait in the queue.")
	s.Signal(syscall.SIGTERM)
	s.WaitExit()
	s.Note(outboxSays(s, dir))
}

func emailsBudget(s *demotest.Session) {
	s.Start("-workers", "1", "-send-time", "1s", "-shutdown-timeout", "300ms")
	s.Note("Three more emails, but the shutdown may take 300ms and one email takes 1s.")
	s.PostJSON("/emails", emailBody("dee@example.com", "eve@example.com", "fay@example.com"))
	s.Expect("email sending")
	s.Signal(syscall.SIGTERM)
	s.WaitExit()
}

func emailsRestart(s *demotest.Session, dir string) {
	s.Note("The next start queues what the spool holds before it serves.")
	s.Start("-workers", "1", "-send-time", "300ms")
	s.Expect("email sending")
	s.Signal(syscall.SIGTERM)
	s.WaitExit()
	s.Note(outboxSays(s, dir))
}

// outboxSays sums up the outbox: how many emails, and whether any
// recipient got two.
func outboxSays(s *demotest.Session, dir string) string {
	sent, err := ReadSpool(filepath.Join(dir, "outbox.jsonl"))
	if err != nil {
		return "cannot read the outbox: " + err.Error()
	}
	seen := map[string]bool{}
	for _, job := range sent {
		if seen[job.To] {
			return fmt.Sprintf("The outbox holds %d emails, and %s got two.", len(sent), job.To)
		}
		seen[job.To] = true
	}
	return fmt.Sprintf("The outbox holds %d emails, one per recipient.", len(sent))
}
