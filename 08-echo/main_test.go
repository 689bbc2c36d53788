package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// e.Shutdown is e.Server's Shutdown, so the step keeps every guarantee of
// step 05.
func TestScenarios(t *testing.T) {
	demotest.Suite{}.Run(t)
}

// TestRouter: echo answers HEAD, 405 and 404 as ServeMux did in step 05
// (the 404 in echo's JSON), logRequests logs every request (echo's own 404
// and 405 included), and with the banner and port line hidden nothing but
// slog lines reach the terminal.
func TestRouter(t *testing.T) {
	demotest.CheckRouter(t, `{"message":"Not Found"}`)
}

// TestClientGone: /slow waits on the request's context, so a client that
// hangs up cancels it.
func TestClientGone(t *testing.T) {
	demotest.CheckClientGone(t)
}
