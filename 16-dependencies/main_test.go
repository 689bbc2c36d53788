package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, func() { main() }) }

// The shared suite, without a drain delay (step 10's TestDrainDelay proves
// the delay; the suite times the listener's close against the signal).
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{
		Args: func(t *testing.T) []string { return []string{"-drain-delay=0s", "-store=" + t.TempDir()} },
		NotApplicable: map[string]string{
			demotest.DeadlineExpiry: "by design: the HTTP drain is cut at its share of -shutdown-timeout, before the whole budget ends, so that the consumer, NATS and the database keep theirs (TestSlowRequestCutAtTheHTTPShare)",
		},
	}.Run(t)
}

// TestSlowRequestCutAtTheHTTPShare is this step's deadline scenario: a
// request longer than the budget is cut when the HTTP phase's share runs
// out, not at the end of -shutdown-timeout, and every later phase still
// runs in what is left; the program exits 1 and names the phase.
func TestSlowRequestCutAtTheHTTPShare(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, "-drain-delay=0s", "-shutdown-timeout=2s", "-store="+t.TempDir())
	slow := p.GetAsync("/slow?d=20s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	exit := p.WaitExit()
	if exit.Code != 1 {
		t.Errorf("%v, want exit status 1: the http phase overran", exit)
	}
	if r := demotest.AwaitResponse(slow, demotest.EventTimeout); r.Err == nil {
		t.Errorf("the 20s request got %v, want it cut off", r)
	}
	if l, ok := p.Logged("phase overran"); !ok || l.Attr("phase") != "http" {
		t.Errorf("phase overran line %v, want phase=http", l.Attrs)
	}
	if l, ok := p.Logged("shutdown forced"); !ok || l.Attr("overran") != "http" {
		t.Errorf("shutdown forced line %v, want overran=http", l.Attrs)
	}
	for _, phase := range []string{"consumer", "nats", "database", "nats-server"} {
		if !loggedPhase(p, phase) {
			t.Errorf("the %s phase did not run after the http phase overran", phase)
		}
	}
}

// TestBadCommandLine: each mistake stops the program with exit status 2 and
// one line that names it; a URL of a scheme the step does not serve is
// refused, not taken for a file name.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-database", "mysql://localhost/orders"}, "a mysql: URL is not a database this step serves"},
		{[]string{"-database", "postgres:u:secret@localhost/orders"}, "a PostgreSQL URL starts with postgres://"},
		{[]string{"-drain-delay", "6s", "-shutdown-timeout", "10s"}, "want from 0s to half of -shutdown-timeout"},
		{[]string{"-work-time", "40s"}, "less than -ack-wait 30s"},
		{[]string{"-prefetch", "0"}, "-prefetch 0: want 1 or more"},
		{[]string{"-shutdown-timeout", "0s"}, "-shutdown-timeout must be more than 0"},
		{[]string{"-nats-url", "http://u:secret@localhost:4222"}, "-nats-url takes nats://host:port"},
		{[]string{"-nats-url", "localhost:4222"}, "-nats-url takes nats://host:port"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			p := demotest.StartAt(t, demotest.FreeAddr(t), append([]string{"-store", t.TempDir()}, c.args...)...)
			exit, ok := p.AwaitExit(demotest.EventTimeout)
			if !ok || exit.Code != 2 {
				t.Fatalf("%v, want exit status 2", exit)
			}
			out := p.Output()
			if !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("output %q, want one line saying %q", out, c.want)
			}
			if strings.Contains(out, "secret") {
				t.Errorf("output %q shows the password", out)
			}
		})
	}
}
