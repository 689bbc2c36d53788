package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// A scenario is a load put on a step, with a SIGTERM sent at a chosen
// moment. Every step goes through the same scenarios.
type scenario struct {
	Name  string // short, for table headings
	About string // one sentence, for the doc
	// ShutdownTimeout is passed as -shutdown-timeout to the steps that
	// have the flag.
	ShutdownTimeout time.Duration
	// DrainDelay is passed as -drain-delay to the steps that have the flag
	// (step 10). Zero, as in the scenarios here, which time the listener's
	// closing, makes step 10 close it at the signal as step 05 does; the
	// rolling update (rolling.go) gives it its delay.
	DrainDelay time.Duration
	// drive puts the load on p, calls signal once, at the moment the
	// scenario chose, and returns every request once all have ended.
	drive func(p *process, signal func()) ([]Request, error)
}

const (
	inFlightCount    = 20
	inFlightDelay    = "600ms"
	loadClients      = 8
	loadDelay        = "100ms"
	loadStagger      = 100 * time.Millisecond / loadClients
	loadBeforeSignal = 44 // requests started before the signal is sent
	longDelay        = "5s"
	shortDelay       = "200ms"
	deadline         = 500 * time.Millisecond
	drainTimeout     = 2 * time.Second
)

var scenarios = []scenario{
	{
		Name:            "in-flight",
		About:           fmt.Sprintf("%d requests to `/slow?d=%s`, each on a connection of its own that the client closes after the response (as curl does); SIGTERM once the step has logged all %d `slow request started`.", inFlightCount, inFlightDelay, inFlightCount),
		ShutdownTimeout: drainTimeout,
		drive:           driveInFlight,
	},
	{
		Name:            "keep-alive load",
		About:           fmt.Sprintf("%d clients, each sending `/slow?d=%s` back to back on one kept-alive connection; the clients start %s apart, so their requests overlap evenly; SIGTERM when the %dth request has started, so that every client has a request in flight. A client stops at its first refused connection, as it would move on to another instance behind a load balancer, so turned away counts clients.", loadClients, loadDelay, loadStagger, loadBeforeSignal),
		ShutdownTimeout: drainTimeout,
		drive:           driveLoad,
	},
	{
		Name:            "past the deadline",
		About:           fmt.Sprintf("`-shutdown-timeout=%s`; one request to `/slow?d=%s` and one to `/slow?d=%s`, each on its own connection; SIGTERM once both have started.", deadline, longDelay, shortDelay),
		ShutdownTimeout: deadline,
		drive:           driveDeadline,
	},
	{
		Name:            "idle keep-alive",
		About:           "One request to `/`, whose connection the client then keeps open and idle; SIGTERM once the response is in.",
		ShutdownTimeout: drainTimeout,
		drive:           driveIdle,
	},
}

func driveInFlight(p *process, signal func()) ([]Request, error) {
	requests := make([]Request, inFlightCount)
	var wg sync.WaitGroup
	for i := range inFlightCount {
		wg.Go(func() {
			c := newClient(p.Addr, i)
			requests[i] = c.get("/slow?d=" + inFlightDelay)
			c.Close()
		})
	}
	err := p.awaitLog("slow request started", inFlightCount)
	signal()
	wg.Wait()
	return requests, err
}

func driveLoad(p *process, signal func()) ([]Request, error) {
	const maxPerClient = 1000 // a safety net: the load ends when the step stops serving
	perClient := make([][]Request, loadClients)
	var wg sync.WaitGroup
	for i := range loadClients {
		wg.Go(func() {
			// Spread the clients over one request's time, so that at any
			// moment most connections have a request in flight.
			time.Sleep(time.Duration(i) * loadStagger)
			c := newClient(p.Addr, i)
			defer c.Close()
			for range maxPerClient {
				r := c.get("/slow?d=" + loadDelay)
				perClient[i] = append(perClient[i], r)
				if r.Outcome == TurnedAway {
					return
				}
			}
		})
	}
	err := p.awaitLog("slow request started", loadBeforeSignal)
	signal()
	wg.Wait()
	var requests []Request
	for _, rs := range perClient {
		requests = append(requests, rs...)
	}
	return requests, err
}

func driveDeadline(p *process, signal func()) ([]Request, error) {
	requests := make([]Request, 2)
	var wg sync.WaitGroup
	for i, d := range []string{longDelay, shortDelay} {
		wg.Go(func() {
			c := newClient(p.Addr, i)
			requests[i] = c.get("/slow?d=" + d)
			c.Close()
		})
	}
	err := p.awaitLog("slow request started", 2)
	signal()
	wg.Wait()
	return requests, err
}

func driveIdle(p *process, signal func()) ([]Request, error) {
	c := newClient(p.Addr, 0)
	r := c.get("/")
	if !c.Connected() {
		signal()
		return []Request{r}, fmt.Errorf("no idle connection to keep: GET / was %s (%s)", r.Outcome, r.Err)
	}
	signal()
	return []Request{r, c.awaitClosed(r.End)}, nil
}

// runScenario starts the step in a temporary directory of its own (a step
// may write files relative to its working directory), drives the scenario,
// and records what happened.
func runScenario(s *step, sc scenario) Run {
	run := Run{Step: s.Name, Scenario: sc.Name}
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		run.Err = err
		return run
	}
	defer os.RemoveAll(dir)
	args := s.roleArgs()
	if s.HasShutdownTimeout {
		args = append(args, "-shutdown-timeout="+sc.ShutdownTimeout.String())
	}
	if s.HasDrainDelay {
		args = append(args, "-drain-delay="+sc.DrainDelay.String())
	}
	p, err := start(s.Bin, dir, args...)
	if err != nil {
		run.Err = fmt.Errorf("did not start: %w", err)
		return run
	}
	defer p.Kill()

	// signal sends SIGTERM, then probes the listener and watches for the
	// exit while the scenario's clients wait for their answers. Should the
	// step not exit in time, the lab kills it, which ends those waits too.
	stopProbe := make(chan struct{})
	probed := make(chan struct{})
	watched := make(chan error, 1)
	var signalErr error
	signaled := false
	signal := func() {
		signaled = true
		run.Signal, signalErr = p.Signal(syscall.SIGTERM)
		go func() {
			run.ListenerOpen, run.ListenerClosed = probeListener(dialer(p.Addr), p.loggedOrExited("shutdown started"), stopProbe)
			close(probed)
		}()
		go func() { watched <- p.awaitExit(sc.ShutdownTimeout + proc.EventTimeout) }()
	}
	requests, driveErr := sc.drive(p, signal)
	if !signaled {
		signal()
	}
	exitErr := <-watched
	// Once the process is gone its port refuses connections, so the probe
	// ends by itself; stop is for a port someone else took in the meantime.
	select {
	case <-probed:
	case <-time.After(proc.EventTimeout):
		close(stopProbe)
		<-probed
	}
	run.Requests = requests
	exit, _ := p.Exited()
	run.Exit, run.ExitStatus = exit.At, exitStatus(exit)
	run.ShutdownLogged = p.firstLogged("shutdown started")
	if run.ListenerClosed.IsZero() {
		run.ListenerClosed = run.Exit
	}
	run.Err = errors.Join(signalErr, driveErr, exitErr)
	return run
}
