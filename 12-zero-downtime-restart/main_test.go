package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// Without a SIGHUP the step is step 05: every scenario of the shared suite
// holds. new-conns-refused holds only because SIGTERM stops the upgrader,
// which closes its own copy of the listening socket (see the README).
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{}.Run(t)
}

// TestBadCommandLine: a stray word or a bad flag value stops the program
// before it starts, with exit status 2 and the usage.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve"}, {"-upgrade-timeout", "0s"}, {"-shutdown-timeout", "-1s"}, {"-pid-file", "/nonexistent/dir/12.pid"}} {
		p := demotest.StartAt(t, demotest.FreeAddr(t), args...)
		if exit := p.WaitExit(); exit.Code != 2 {
			t.Errorf("%q: %s, want exit status 2", args, exit)
		}
		if args[0] == "serve" && !strings.Contains(p.Output(), "-pid-file") {
			t.Errorf("%q: the output does not show the usage:\n%s", args, p.Output())
		}
		// tableflip's own error would name its temporary file, 12.pid123…
		if args[0] == "-pid-file" && !regexp.MustCompile(`/nonexistent/dir/12\.pid\b`).MatchString(p.Output()) {
			t.Errorf("%q: the output does not name the PID file given:\n%s", args, p.Output())
		}
	}
}
