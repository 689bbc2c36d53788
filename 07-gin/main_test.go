package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// gin only routes; the server and its shutdown are step 05's, so the step
// keeps every guarantee of step 05.
func TestScenarios(t *testing.T) {
	demotest.Suite{}.Run(t)
}

// TestRouter: gin answers HEAD, 405 and 404 as ServeMux did in step 05
// (the 404 with gin's own body), logRequests logs every request (gin's own
// 404 and 405 included), and in the default release mode nothing but slog
// lines reach the terminal.
func TestRouter(t *testing.T) {
	t.Setenv(gin.EnvGinMode, "") // not set: the step picks release mode
	demotest.CheckRouter(t, "404 page not found")
}

// TestClientGone: /slow waits on c.Request.Context(), so a client that
// hangs up cancels it. Waiting on the *gin.Context itself would not.
func TestClientGone(t *testing.T) {
	demotest.CheckClientGone(t)
}

// TestGinModeHonoured: a GIN_MODE that is set wins over the step's release
// default, and gin's debug mode prints its route table.
func TestGinModeHonoured(t *testing.T) {
	t.Setenv(gin.EnvGinMode, gin.DebugMode)
	p := demotest.Start(t)
	p.Signal(syscall.SIGTERM)
	p.WaitExit() // the whole output is in
	for _, l := range p.Lines() {
		// [GIN-debug] GET    /slow    --> main.slow (3 handlers)
		if f := strings.Fields(l.Raw); len(f) > 2 && f[0] == "[GIN-debug]" && f[1] == "GET" && f[2] == "/slow" {
			return
		}
	}
	t.Errorf("GIN_MODE=debug: no [GIN-debug] route line for GET /slow in the output:\n%s", p.Output())
}
