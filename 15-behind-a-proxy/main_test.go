package main

import (
	"strings"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The shared suite checks what a drain must do once it begins; as in step
// 10, the drain delay would move the listener's close that some scenarios
// time, so the suite runs without one. The proxies' tests (nginx_test.go,
// haproxy_test.go) run it with its delay.
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{Args: func(*testing.T) []string { return []string{"-drain-delay=0s"} }}.Run(t)
}

// TestBadCommandLine: an idle timeout the program cannot honour stops it
// before it serves, with exit status 2 and a message that says why: 0 or
// less (net/http would read it as another value), or not at least a second
// longer than the proxy's keep-alive timeout. Step 10's checks stay.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-idle-timeout=0s"}, "-idle-timeout must be more than 0"},
		{[]string{"-idle-timeout=-1s"}, "-idle-timeout must be more than 0"},
		{[]string{"-idle-timeout=60s"}, "-idle-timeout 1m0s must be at least 1s longer than -proxy-keepalive 1m0s"},
		{[]string{"-proxy-keepalive=75s"}, "-idle-timeout 1m15s must be at least 1s longer than -proxy-keepalive 1m15s"},
		{[]string{"-idle-timeout=5s", "-proxy-keepalive=4500ms"}, "-idle-timeout 5s must be at least 1s longer than -proxy-keepalive 4.5s"},
		{[]string{"-proxy-keepalive=-1s"}, "-proxy-keepalive must not be negative"},
		{[]string{"-drain-delay=-1s"}, "-drain-delay must not be negative"},
		{[]string{"-drain-delay=25s"}, "-drain-delay 25s + -shutdown-timeout 10s + 1s to exit = 36s, more than -grace-period 30s"},
		{[]string{"idle-timeout", "75s"}, `"idle-timeout" is not a flag (flags start with -`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			p := demotest.StartAt(t, demotest.FreeAddr(t), c.args...)
			exit := p.WaitExit()
			if exit.Code != 2 {
				t.Errorf("%s, want exit status 2", exit)
			}
			if out := p.Output(); !strings.Contains(out, c.want) {
				t.Errorf("the output does not say %q:\n%s", c.want, out)
			}
		})
	}
	// The edge: 61s is a second longer than nginx's default 60s.
	t.Run("-idle-timeout=61s fits", func(t *testing.T) {
		t.Parallel()
		p := demotest.Start(t, "-idle-timeout=61s")
		if l := p.WaitLog("listening"); l.Attr("idle_timeout") != "1m1s" {
			t.Errorf("listening idle_timeout=%q, want 1m1s", l.Attr("idle_timeout"))
		}
	})
}
