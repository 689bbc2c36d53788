package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestConnectionAcceptedBeforeHandOver: a client whose connection the old
// process accepted before the hand-over, and that sends its first request
// only after it, as a client does a moment after connecting (or a browser
// after a preconnect). The old process answers it, with Connection: close,
// instead of letting Shutdown drop it unanswered.
func TestConnectionAcceptedBeforeHandOver(t *testing.T) {
	t.Parallel()
	tree := demotest.StartTree(t, demotest.CopyProgram(t, t.TempDir()))
	pid := tree.Pid()
	c, err := tree.Dial() // accepted by the old process: the only one yet
	if err != nil {
		t.Fatal(err)
	}
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown started") // handed over: the new process serves
	r := c.Do("/")
	if !r.OK() || !strings.Contains(r.Body, fmt.Sprintf("pid %d", pid)) {
		t.Fatalf("the first request on a connection accepted before the hand-over got %v, want 200 from the old process %d", r, pid)
	}
	if !r.Close {
		t.Errorf("the answer after the hand-over does not say Connection: close")
	}
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process: %s, want exit status 0", exit)
	}
}
