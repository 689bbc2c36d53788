package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The shared suite checks what a drain must do once it begins, and some of
// its scenarios time the signal against the listener's close (a new
// connection is refused during the drain). The delay moves that close by
// -drain-delay, so the suite runs without one; TestDrainDelay proves the
// delay itself.
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{Args: func(*testing.T) []string { return []string{"-drain-delay=0s"} }}.Run(t)
}

// TestDrainDelay: from SIGTERM on, /readyz answers 503 at once, while for
// the whole -drain-delay the program goes on serving as before, new
// connections included, and tells every kept-alive client to close;
// /livez still answers 200; a kept-alive connection that stays idle is
// left open for its client. Then the drain: the listener closes, idle
// connections are closed, the request in flight completes, exit 0.
func TestDrainDelay(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second // room for the checks below on a busy machine
	p := demotest.Start(t, "-drain-delay="+delay.String(), "-shutdown-timeout=5s")
	for _, path := range []string{"/readyz", "/livez"} {
		if r := p.Get(path); !r.OK() {
			t.Fatalf("GET %s before the signal = %v, want 200", path, r)
		}
	}
	kept, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if r := kept.Do("/"); !r.OK() || r.Close {
		t.Fatalf("GET / on a keep-alive connection before the signal = %v (close %t), want 200, kept alive", r, r.Close)
	}
	// A second one stays idle throughout: nothing can warn it, so it must
	// stay open for its client for the whole delay, and Shutdown closes it.
	idle, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if r := idle.Do("/"); !r.OK() || r.Close {
		t.Fatalf("GET / on a second keep-alive connection = %v (close %t), want 200, kept alive", r, r.Close)
	}
	// A request still running when the delay ends is drained by Shutdown.
	inFlight := p.GetAsync("/slow?d=" + (delay + 300*time.Millisecond).String())
	p.WaitLog("slow request started")

	sent := p.Signal(syscall.SIGTERM)
	// Poll until /readyz fails: each probe is a connection of its own.
	var during []demotest.Response
	for {
		r := p.Get("/readyz")
		if r.Err == nil && r.Status == 503 {
			t.Logf("/readyz answered 503 %s after SIGTERM", r.At.Sub(sent).Round(time.Millisecond))
			during = append(during, r)
			break
		}
		if !r.OK() {
			t.Fatalf("GET /readyz after SIGTERM = %v, want 200 and then 503", r)
		}
		if time.Since(sent) > demotest.EventTimeout {
			t.Fatalf("/readyz still answers 200 %s after SIGTERM", demotest.EventTimeout)
		}
	}
	// During the delay: new connections are served, every response says
	// Connection: close, and the server then closes the connection.
	for _, path := range []string{"/", "/slow?d=10ms", "/livez"} {
		r := p.Get(path)
		if !r.OK() || !r.Close {
			t.Errorf("GET %s on a new connection during the delay = %v (close %t), want 200 with Connection: close", path, r, r.Close)
		}
		during = append(during, r)
	}
	r := kept.Do("/")
	if !r.OK() || !r.Close {
		t.Errorf("GET / on the kept-alive connection during the delay = %v (close %t), want 200 with Connection: close", r, r.Close)
	}
	during = append(during, r)
	if closed, err := kept.AwaitClosed(demotest.EventTimeout); !closed {
		t.Errorf("the server kept the connection open after Connection: close (%v)", err)
	}

	finished := p.WaitLog("drain delay finished")
	if closed, err := idle.AwaitClosed(demotest.EventTimeout); !closed {
		t.Errorf("the idle kept-alive connection was not closed after the delay (%v)", err)
	} else if early := time.Until(sent.Add(delay)); early > 0 {
		t.Errorf("the idle kept-alive connection was closed %s before the delay ended", early)
	}
	for _, r := range during {
		if r.At.After(finished.At) {
			t.Errorf("an answer came %s after the delay ended; the checks above must run during it", r.At.Sub(finished.At))
		}
	}
	if took, err := time.ParseDuration(finished.Attr("took")); err != nil || took < delay {
		t.Errorf("drain delay finished took=%q, want at least %s", finished.Attr("took"), delay)
	}
	// After the delay the listener closes, while the request in flight
	// is still being served.
	refused := false
	for !refused && time.Since(finished.At) < demotest.EventTimeout {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the listener to close
	}
	if !refused {
		t.Errorf("new connections were still accepted after the delay")
	}
	if r := demotest.AwaitResponse(inFlight, demotest.EventTimeout); !r.OK() {
		t.Errorf("the request in flight through the delay got %v, want 200", r)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	order := []string{"shutdown started", "drain delay started", "drain delay finished", "shutdown finished"}
	for i := range len(order) - 1 {
		if before, err := p.LoggedBefore(order[i], order[i+1]); err != nil || !before {
			t.Errorf("%q must be logged before %q (%v)", order[i], order[i+1], err)
		}
	}
}

// TestSecondSignalSkipsTheDelay: a second signal during a long drain
// delay (the second Ctrl+C) ends the program at once, killed by the
// signal: what is left of the delay and the whole drain are skipped, and
// the request in flight is cut, not finished.
func TestSecondSignalSkipsTheDelay(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, "-drain-delay=10s")
	inFlight := p.GetAsync("/slow?d=3s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGINT)
	p.WaitLog("drain delay started")
	p.Signal(syscall.SIGINT)
	exit, ok := p.AwaitExit(demotest.EventTimeout) // a hang bound: it exits at once
	if !ok {
		t.Fatalf("still running %s after a second SIGINT in the drain delay", demotest.EventTimeout)
	}
	if exit.Code == 0 {
		t.Errorf("%s after an interrupted delay, want a failure status", exit)
	}
	if r := demotest.AwaitResponse(inFlight, demotest.EventTimeout); r.OK() {
		t.Errorf("the request in flight got %v: want it cut by the second signal", r)
	}
	if l, ok := p.Logged("shutdown finished"); ok {
		t.Errorf("logged %q: the drain ran after a second signal", l.Raw)
	}
}

// TestPortTakenLogsNoListening: the program binds its port before it
// logs "listening", so when the port is taken it says only that it cannot
// listen, naming the address, and exits 1.
func TestPortTakenLogsNoListening(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := demotest.StartAt(t, taken.Addr().String())
	exit, ok := p.AwaitExit(demotest.EventTimeout) // a hang bound
	if !ok {
		t.Fatalf("still running %s with its port taken", demotest.EventTimeout)
	}
	if exit.Code != 1 {
		t.Errorf("%s, want exit status 1", exit)
	}
	if l, ok := p.Logged("listening"); ok {
		t.Errorf("logged %q with its port taken: listening was never true", l.Raw)
	}
	if _, ok := p.Logged("cannot listen"); !ok {
		t.Errorf("no \"cannot listen\" line:\n%s", p.Output())
	}
}

// TestBadCommandLine: a bad flag, a stray word, or a budget that does not
// fit in the grace period stops the program before it serves, with exit
// status 2 and a message that says why (the sums, for the budget).
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-drain-delay=-1s"}, "-drain-delay must not be negative"},
		{[]string{"-drain-delay=soon"}, `invalid value "soon" for flag -drain-delay`},
		{[]string{"-shutdown-timeout=0s"}, "-shutdown-timeout must be more than 0"},
		{[]string{"-grace-period=0s"}, "-grace-period must be more than 0"},
		{[]string{"drain-delay", "3s"}, `"drain-delay" is not a flag (flags start with -`},
		{[]string{"-drain-delay=25s"}, "-drain-delay 25s + -shutdown-timeout 10s + 1s to exit = 36s, more than -grace-period 30s"},
		{[]string{"-grace-period=15s"}, "-drain-delay 5s + -shutdown-timeout 10s + 1s to exit = 16s, more than -grace-period 15s"},
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
			if c.args[0] == "drain-delay" && !strings.Contains(p.Output(), "Usage of") {
				t.Errorf("a stray word must print the usage:\n%s", p.Output())
			}
		})
	}
	// The budget's edge: 5s + 10s + 1s fits in 16s exactly.
	t.Run("-grace-period=16s fits", func(t *testing.T) {
		t.Parallel()
		p := demotest.Start(t, "-grace-period=16s") // it serves: the budget was accepted
		if r := p.Get("/"); !r.OK() {
			t.Errorf("GET / = %v, want 200", r)
		}
	})
}
