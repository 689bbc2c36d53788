package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestDeadlineCutsTheRequestBeforeTheTeardown: when the budget runs out
// during the HTTP drain, srv.Close cuts the request that is left at once:
// its client sees the connection end at the deadline, while the program is
// still busy with the rest of its shutdown. Without Close, the connection
// would stay open until the process exits.
//
// The test holds the rest of the shutdown for as long as it needs: the
// outbox is a named pipe that it does not read, and an email whose outbox
// line is larger than a pipe holds (64 KiB on Linux, at most that on macOS)
// blocks its worker in the write, so the workers' drain cannot end, nor the
// program exit, until the test reads the pipe.
func TestDeadlineCutsTheRequestBeforeTheTeardown(t *testing.T) {
	t.Parallel()
	const deadline = 500 * time.Millisecond
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox.jsonl")
	if err := syscall.Mkfifo(outbox, 0o600); err != nil {
		t.Fatal(err)
	}
	// Open the reading end first, without waiting for a writer, so that
	// the program's open for writing finds a reader and does not block.
	pipe, err := os.OpenFile(outbox, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	p := demotest.Start(t, "-outbox", outbox, "-spool", filepath.Join(dir, "spool.jsonl"),
		"-send-time", "0s", "-shutdown-timeout", deadline.String())
	large := `{"to":["ann@example.com"],"subject":"` + strings.Repeat("x", 512<<10) + `"}`
	if r, _ := p.PostJSON("/emails", large); r.Err != nil || r.Status != 202 {
		t.Fatalf("POST /emails = %v, want 202", r)
	}
	p.WaitLog("email sending") // and then blocked, writing to the pipe

	resp := p.GetAsync("/slow?d=20s")
	p.WaitLog("slow request started")
	sent := p.Signal(syscall.SIGTERM)
	var r demotest.Response
	select {
	case r = <-resp:
	case <-time.After(deadline + demotest.EventTimeout):
		t.Fatalf("the request's connection is still open %s after SIGTERM with a %s deadline, while the program shuts down its workers",
			deadline+demotest.EventTimeout, deadline)
	}
	if r.Err == nil {
		t.Errorf("the 20s request got %v, want it cut", r)
	}
	if waited := r.At.Sub(sent); waited < deadline {
		t.Errorf("the request was cut %s after the signal, before the %s deadline", waited, deadline)
	}
	if exit, ok := p.Exited(); ok {
		t.Fatalf("the program had exited (%s) before its workers could stop: the test held nothing", exit)
	}

	// Let the worker write its line: the shutdown goes on, and the program
	// exits 1, the deadline having cut a request.
	go func() { _, _ = io.Copy(io.Discard, pipe) }() // read until the program closes it
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s, want exit status 1", exit)
	}
	if _, ok := p.Logged("email sent"); !ok {
		t.Error(`"email sent" was not logged once the outbox was read`)
	}
}
