package main

import (
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// TestSIGTERMKillsInFlightRequest is the lesson of this step: without a
// shutdown, SIGTERM ends the process in the middle of a request, and the
// client is left with an error instead of an answer.
func TestSIGTERMKillsInFlightRequest(t *testing.T) {
	p := demotest.Start(t)
	resp := p.GetAsync("/slow?d=2s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)

	if r := demotest.AwaitResponse(resp, demotest.EventTimeout); r.Err == nil {
		t.Errorf("the in-flight request got %v; want it to die with the process", r)
	}
	if exit := p.WaitExit(); exit.Signal != syscall.SIGTERM {
		t.Errorf("%s; want killed by SIGTERM", exit)
	}
	if _, ok := p.Logged("slow request finished"); ok {
		t.Error(`"slow request finished" was logged; the request should have died unfinished`)
	}
}

func TestScenarios(t *testing.T) {
	demotest.Suite{NoShutdownTimeout: true, KnownToFail: map[string]string{
		demotest.InFlightDrain:       "no signal handling: SIGTERM kills the process mid-request",
		demotest.SIGINT:              "no signal handling: Ctrl+C kills the process mid-request",
		demotest.NewConnsRefused:     "there is no drain: the process is simply gone",
		demotest.IdleKeepAliveClosed: "the process dies with its connections instead of closing them",
		demotest.ConnectionClose:     "the request dies with the process",
		demotest.StalledClient:       "the process dies instead of shutting down",
		demotest.DeadlineExpiry:      "there is no deadline: the process dies at once, killed by the signal",
		demotest.SecondSignal:        "the first signal already killed it",
	}}.Run(t)
}
