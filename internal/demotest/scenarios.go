package demotest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The scenarios every step is checked against. A step passes a scenario
// when the whole of its description holds.
const (
	Routes              = "routes"                // / and /slow answer as the contract says; a bad, empty or repeated d is 400, unknown paths 404
	InFlightDrain       = "in-flight-drain"       // a request in flight at SIGTERM gets its 200, then the program exits 0
	SIGINT              = "sigint"                // the same with SIGINT, the signal Ctrl+C sends
	NewConnsRefused     = "new-conns-refused"     // during the drain a new connection is refused, and the in-flight request still completes
	IdleKeepAliveClosed = "idle-keepalive-closed" // an idle keep-alive connection is closed by the server, and the program exits 0
	ConnectionClose     = "connection-close"      // a request sent with Connection: close completes and does not stall the exit
	StalledClient       = "stalled-client"        // a client that connects and sends nothing does not hold the shutdown until its deadline
	DeadlineExpiry      = "deadline-expiry"       // a request longer than -shutdown-timeout is cut at the deadline and the program exits 1
	SecondSignal        = "second-signal"         // a second signal during the drain ends the program at once, not with exit 0
	PortInUse           = "port-in-use"           // when the port is taken the program exits 1 at once, naming the address
	StrayArgs           = "stray-args"            // a word on the command line that is not a flag stops the program with exit status 2 and the usage
)

// Scenarios is every scenario, in the order they run and are reported.
var Scenarios = []string{
	Routes, InFlightDrain, SIGINT, NewConnsRefused, IdleKeepAliveClosed,
	ConnectionClose, StalledClient, DeadlineExpiry, SecondSignal, PortInUse,
	StrayArgs,
}

// Suite is a step's declaration of what it guarantees.
type Suite struct {
	// KnownToFail maps a scenario to the reason the step fails it; the step
	// must pass every other scenario. A known failure is asserted too: if
	// the step starts to pass it, the test fails until the map is updated.
	KnownToFail map[string]string
	// NotApplicable maps a scenario to the reason its check means nothing
	// for the step (the step does what the scenario names another way, by
	// design, and a test of its own proves that). Those are not run.
	NotApplicable map[string]string
	// Args, when set, gives extra flags for every run of the program, such
	// as files in a test's temporary directory.
	Args func(t *testing.T) []string
	// NoShutdownTimeout is set by a step without a -shutdown-timeout flag.
	NoShutdownTimeout bool
}

// start runs the step with the suite's extra flags and, when the step has
// one, the given -shutdown-timeout (0 keeps the step's default).
func (s Suite) start(t *testing.T, shutdownTimeout time.Duration) *Process {
	t.Helper()
	args := s.args(t)
	if shutdownTimeout > 0 && !s.NoShutdownTimeout {
		args = append(args, "-shutdown-timeout="+shutdownTimeout.String())
	}
	p := Start(t, args...)
	// Every step answers / with its pid. Another answer means another
	// process holds the port (a test binary of another package that drew
	// the same one), and the scenario would be checking the wrong program.
	if r := p.Get("/"); !strings.Contains(r.Body, fmt.Sprintf("pid %d", p.Pid())) {
		t.Fatalf("%s is not answered by the program under test (pid %d): GET / = %v", p.Addr, p.Pid(), r)
	}
	return p
}

// Run runs every scenario against the step, in parallel, as subtests named
// guaranteed/<scenario> and known-to-fail/<scenario>.
func (s Suite) Run(t *testing.T) {
	for field, decl := range map[string]map[string]string{"KnownToFail": s.KnownToFail, "NotApplicable": s.NotApplicable} {
		for name, reason := range decl {
			if !slices.Contains(Scenarios, name) {
				t.Fatalf("%s names %q, which is not a scenario", field, name)
			}
			if strings.TrimSpace(reason) == "" {
				t.Fatalf("%s gives %s no reason", field, name)
			}
		}
	}
	var run []string
	for _, name := range Scenarios {
		_, known := s.KnownToFail[name]
		_, na := s.NotApplicable[name]
		if known && na {
			t.Fatalf("%s is declared both known to fail and not applicable", name)
		}
		if !na {
			run = append(run, name)
		}
	}
	RunChecks(t, run, s.KnownToFail, func(t *testing.T, name string) error { return scenarioChecks[name](t, s) })
}

// RunChecks runs check for each of names, in parallel, as subtests named
// guaranteed/<name> and known-to-fail/<name>: a name in knownToFail must
// fail (its check returns an error), every other one pass. The gRPC suite
// (internal/grpcsuite) runs its checks with it too.
func RunChecks(t *testing.T, names []string, knownToFail map[string]string, check func(t *testing.T, name string) error) {
	for _, name := range names {
		reason, known := knownToFail[name]
		group := "guaranteed"
		if known {
			group = "known-to-fail"
		}
		t.Run(group+"/"+name, func(t *testing.T) {
			t.Parallel()
			err := check(t, name)
			switch {
			case !known && err != nil:
				t.Errorf("%s: %v", name, err)
			case known && err == nil:
				t.Errorf("%s passes now, but the step declares it known to fail (%s): update KnownToFail", name, reason)
			case known:
				t.Logf("fails as declared (%s): %v", reason, err)
			}
		})
	}
}

// A check runs one scenario and returns what went wrong, or nil. It calls
// t.Fatal only when the test itself cannot proceed (the program does not
// start); a behaviour the step lacks is an error, so a known failure can be
// asserted without failing the test.
type check func(t *testing.T, s Suite) error

var scenarioChecks = map[string]check{
	Routes:              checkRoutes,
	InFlightDrain:       checkDrain(syscall.SIGTERM),
	SIGINT:              checkDrain(syscall.SIGINT),
	NewConnsRefused:     checkNewConnsRefused,
	IdleKeepAliveClosed: checkIdleKeepAlive,
	ConnectionClose:     checkConnectionClose,
	StalledClient:       checkStalledClient,
	DeadlineExpiry:      checkDeadline,
	SecondSignal:        checkSecondSignal,
	PortInUse:           func(t *testing.T, s Suite) error { return CheckPortInUse(t, s.args(t)) },
	StrayArgs:           func(t *testing.T, s Suite) error { return CheckStrayArgs(t, s.args(t)) },
}

// args is the suite's extra flags for t.
func (s Suite) args(t *testing.T) []string {
	if s.Args == nil {
		return nil
	}
	return s.Args(t)
}

func checkRoutes(t *testing.T, s Suite) error {
	p := s.start(t, 0)
	var errs []error
	home := p.Get("/")
	if want := fmt.Sprintf("pid %d", p.Pid()); !home.OK() || !strings.Contains(home.Body, Step(t)) || !strings.Contains(home.Body, want) {
		errs = append(errs, fmt.Errorf("GET / = %v, want 200 naming %s and %s", home, Step(t), want))
	}
	if r := p.Get("/slow?d=0s"); !r.OK() {
		errs = append(errs, fmt.Errorf("GET /slow?d=0s = %v, want 200", r))
	}
	// An empty d and a repeated one are named as mistakes, not read as the
	// default or as the first value (docs/conventions.md).
	for _, d := range []string{"banana", "-1s", "61s", "2m", "5", "", "1s&d=abc", "1s&d=2s"} {
		r := p.Get("/slow?d=" + d)
		if r.Err != nil || r.Status != http.StatusBadRequest || strings.Count(strings.TrimSpace(r.Body), "\n") != 0 || strings.TrimSpace(r.Body) == "" {
			errs = append(errs, fmt.Errorf("GET /slow?d=%s = %v, want 400 with a one-line reason", d, r))
		}
	}
	if r := p.Get("/no-such-page"); r.Err != nil || r.Status != http.StatusNotFound {
		errs = append(errs, fmt.Errorf("GET /no-such-page = %v, want 404", r))
	}
	return errors.Join(errs...)
}

// checkDrain: a request in flight when sig arrives completes, shutdown is
// logged around it, and the program exits 0.
func checkDrain(sig syscall.Signal) check {
	return func(t *testing.T, s Suite) error {
		p := s.start(t, 0)
		resp := p.GetAsync("/slow?d=1s")
		p.WaitLog("slow request started")
		p.Signal(sig)
		var errs []error
		if r := AwaitResponse(resp, EventTimeout); !r.OK() {
			errs = append(errs, fmt.Errorf("the in-flight request got %v, want 200", r))
		}
		exit, ok := p.AwaitExit(EventTimeout)
		if !ok {
			return errors.Join(append(errs, fmt.Errorf("still running %s after %v", EventTimeout, sig))...)
		}
		if exit.Code != 0 {
			errs = append(errs, fmt.Errorf("%s after %v, want exit status 0", exit, sig))
		}
		if before, err := p.LoggedBefore("shutdown started", "slow request finished"); err != nil || !before {
			errs = append(errs, fmt.Errorf(`"shutdown started" must be logged before "slow request finished" (%v)`, err))
		}
		if _, ok := p.Logged("shutdown finished"); !ok {
			errs = append(errs, errors.New(`"shutdown finished" was not logged`))
		}
		return errors.Join(errs...)
	}
}

// checkNewConnsRefused: after SIGTERM, while a request is still being
// served, a new connection is refused; the in-flight request then completes.
func checkNewConnsRefused(t *testing.T, s Suite) error {
	p := s.start(t, 0)
	resp := p.GetAsync("/slow?d=1s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	// The listener should close within moments of the signal; poll until a
	// dial is refused, giving up when the in-flight request is over.
	for {
		select {
		case r := <-resp:
			return fmt.Errorf("no new connection was refused before the in-flight request ended (%v)", r)
		default:
		}
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			// A dial that raced the listener's close can complete its
			// handshake in the backlog and then be reset: refused all the same.
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
				return fmt.Errorf("dial after the signal: %v, want connection refused", err)
			}
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the listener to close
	}
	// Refused, but was the server draining or dead? Only a draining
	// server still completes the request it had in flight.
	if r := AwaitResponse(resp, EventTimeout); !r.OK() {
		return fmt.Errorf("new connections were refused, but the in-flight request got %v: the process was gone, not draining", r)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		return fmt.Errorf("%s, want exit status 0", exit)
	}
	return nil
}

// checkIdleKeepAlive: a kept-alive connection that is idle at SIGTERM is
// closed by the server, and the shutdown completes (exit 0) well before its
// deadline instead of waiting on it.
func checkIdleKeepAlive(t *testing.T, s Suite) error {
	const deadline = 2 * time.Second
	p := s.start(t, deadline)
	c, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Do("/"); !r.OK() {
		t.Fatalf("GET / on a keep-alive connection: %v", r)
	}
	p.Signal(syscall.SIGTERM)
	closed, err := c.AwaitClosed(deadline + EventTimeout)
	if err != nil {
		return err
	}
	if !closed {
		return errors.New("the idle connection stayed open")
	}
	exit := p.WaitExit()
	if exit.Code != 0 {
		return fmt.Errorf("%s: the idle connection held the shutdown to its %s deadline; want exit status 0", exit, deadline)
	}
	return nil
}

// checkConnectionClose: a request with Connection: close, in flight at
// SIGTERM, completes, and the program exits 0 instead of waiting for a
// connection state that never comes.
func checkConnectionClose(t *testing.T, s Suite) error {
	p := s.start(t, 3*time.Second)
	c, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	resp := make(chan Response, 1)
	go func() { resp <- c.Do("/slow?d=500ms", "Connection: close") }()
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	var errs []error
	if r := AwaitResponse(resp, EventTimeout); !r.OK() {
		errs = append(errs, fmt.Errorf("the Connection: close request got %v, want 200", r))
	}
	exit, ok := p.AwaitExit(EventTimeout)
	switch {
	case !ok:
		errs = append(errs, fmt.Errorf("still running %s after SIGTERM", EventTimeout))
	case exit.Code != 0:
		errs = append(errs, fmt.Errorf("%s after a Connection: close request, want exit status 0", exit))
	}
	return errors.Join(errs...)
}

// checkStalledClient: a client that connects and never sends its request
// is dropped by the server's header timeout, so the shutdown completes
// (exit 0) before its deadline.
func checkStalledClient(t *testing.T, s Suite) error {
	p := s.start(t, 4*time.Second)
	if _, err := p.Dial(); err != nil {
		t.Fatal(err)
	}
	// The server accepts connections in the order they arrived, so once a
	// later one is answered the stalled one has been accepted too.
	if r := p.Get("/"); !r.OK() {
		t.Fatalf("GET /: %v", r)
	}
	p.Signal(syscall.SIGTERM)
	exit, ok := p.AwaitExit(EventTimeout)
	switch {
	case !ok:
		return fmt.Errorf("still running %s after SIGTERM: the stalled client holds it", EventTimeout)
	case exit.Code != 0:
		return fmt.Errorf("%s: the stalled client held the shutdown to its deadline; want exit status 0", exit)
	}
	return nil
}

// checkDeadline: with -shutdown-timeout=500ms and a 20s request in flight,
// the program gives up at the deadline, cuts the request, logs
// "shutdown forced" and exits 1, long before the request would have ended.
func checkDeadline(t *testing.T, s Suite) error {
	const deadline = 500 * time.Millisecond
	p := s.start(t, deadline)
	resp := p.GetAsync("/slow?d=20s")
	p.WaitLog("slow request started")
	sent := p.Signal(syscall.SIGTERM)
	exit, ok := p.AwaitExit(deadline + EventTimeout)
	if !ok {
		return fmt.Errorf("still running %s after SIGTERM with a %s deadline", deadline+EventTimeout, deadline)
	}
	var errs []error
	if exit.Code != 1 {
		errs = append(errs, fmt.Errorf("%s when the deadline expired, want exit status 1", exit))
	}
	if line, ok := p.Logged("shutdown forced"); !ok {
		errs = append(errs, errors.New(`"shutdown forced" was not logged`))
	} else if took, err := time.ParseDuration(line.Attr("took")); err != nil || took < deadline {
		errs = append(errs, fmt.Errorf("shutdown forced took=%q, want at least the %s deadline", line.Attr("took"), deadline))
	}
	if r := AwaitResponse(resp, EventTimeout); r.Err == nil {
		errs = append(errs, fmt.Errorf("the 20s request got %v, want it cut off", r))
	}
	if waited := exit.At.Sub(sent); waited < deadline {
		errs = append(errs, fmt.Errorf("exited %s after the signal, before the %s deadline", waited, deadline))
	}
	return errors.Join(errs...)
}

// checkSecondSignal: a second SIGTERM during a long drain ends the program
// at once, with a status other than 0. With a 20s deadline and a 20s
// request, a swallowed second signal ends the program only after 20s, and
// a working one in milliseconds: patience tells the two apart however busy
// the machine, and is what a step declared to fail here costs the suite.
func checkSecondSignal(t *testing.T, s Suite) error {
	const patience = 5 * time.Second
	p := s.start(t, 20*time.Second)
	resp := p.GetAsync("/slow?d=20s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	if _, ok := p.AwaitLog("shutdown started", EventTimeout); !ok {
		return fmt.Errorf("no graceful shutdown began on the first signal (%s)", p.state())
	}
	if _, err := p.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("second signal: %v", err)
	}
	exit, ok := p.AwaitExit(patience)
	if !ok {
		return fmt.Errorf("still draining %s after a second SIGTERM: the signal was swallowed", patience)
	}
	var errs []error
	if exit.Code == 0 {
		errs = append(errs, errors.New("exit status 0 after an interrupted drain, want a failure status"))
	}
	if r := AwaitResponse(resp, EventTimeout); r.Err == nil {
		errs = append(errs, fmt.Errorf("the 20s request got %v, want it cut off", r))
	}
	return errors.Join(errs...)
}

// CheckPortInUse checks port-in-use on the step run with args: on a taken
// port the program exits 1 at once, and says which address it could not
// listen on. It needs no HTTP, so the gRPC suite (internal/grpcsuite) runs
// it too.
func CheckPortInUse(t *testing.T, args []string) error {
	// A passing run exits within moments; one that fails waits for a signal
	// that never comes, and a step declared to fail this way costs the
	// suite all of patience. Five seconds is both a generous bound for the
	// first (it exits in milliseconds, under -race on a busy machine well
	// within a second) and a short wait for the second.
	const patience = 5 * time.Second
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	p := StartAt(t, addr, args...)
	exit, ok := p.AwaitExit(patience)
	if !ok {
		return fmt.Errorf("still running %s after failing to listen: it waits for a signal that will never come", patience)
	}
	var errs []error
	if exit.Code != 1 {
		errs = append(errs, fmt.Errorf("%s, want exit status 1", exit))
	}
	out := p.Output()
	if !strings.Contains(out, addr) || !strings.Contains(out, "address already in use") {
		errs = append(errs, fmt.Errorf("the output does not name %s and say it is in use", addr))
	}
	return errors.Join(errs...)
}

// CheckStrayArgs checks stray-args on the step run with args: flag parsing
// stops at the first word without a dash, so in "-addr X shutdown-timeout
// 3s" the timeout is never read. The program must not serve without it: it
// exits 2 at once, naming the word, with the usage, as the flag package
// does for an unknown flag. Like CheckPortInUse, it needs no HTTP.
func CheckStrayArgs(t *testing.T, args []string) error {
	// A passing run exits within moments; one that fails waits for a signal
	// that never comes, and a step declared to fail this way costs the
	// suite all of patience. Five seconds is both a generous bound for the
	// first (it exits in milliseconds, under -race on a busy machine well
	// within a second) and a short wait for the second.
	const patience = 5 * time.Second
	p := StartAt(t, FreeAddr(t), append(slices.Clip(args), "shutdown-timeout", "3s")...)
	exit, ok := p.AwaitExit(patience)
	if !ok {
		return fmt.Errorf("still running %s after a stray word on its command line", patience)
	}
	var errs []error
	if exit.Code != 2 {
		errs = append(errs, fmt.Errorf("%s, want exit status 2", exit))
	}
	if out := p.Output(); !strings.Contains(out, `"shutdown-timeout" is not a flag (flags start with -`) || !strings.Contains(out, "Usage") {
		errs = append(errs, fmt.Errorf("the output does not say, as every step does, that the word is not a flag, with the usage: %q", out))
	}
	if _, ok := p.Logged("listening"); ok {
		errs = append(errs, errors.New("it logged listening: it served with a command line it did not read"))
	}
	return errors.Join(errs...)
}
