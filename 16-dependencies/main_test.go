package main

import (
	"strings"
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
		KnownToFail: map[string]string{
			demotest.DeadlineExpiry: "by design: the HTTP drain is cut at its share of -shutdown-timeout, before the whole budget ends, so that the consumer, NATS and the database keep theirs (TestConsumerOverrun)",
		},
	}.Run(t)
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
