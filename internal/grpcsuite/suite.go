// Package grpcsuite runs internal/demotest's scenarios against a step that
// serves gRPC instead of HTTP (step 14): the same names, the same meaning,
// each checked over gRPC where the scenario talks to the server. It is a
// package of its own so that the other steps' test binaries, which import
// demotest, do not link grpc.
package grpcsuite

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// Suite is a gRPC step's declaration of what it guarantees, as
// demotest.Suite is an HTTP step's.
type Suite struct {
	// KnownToFail maps a scenario to the reason the step fails it; the step
	// must pass every other scenario that applies. A known failure is
	// asserted too: if the step starts to pass it, the test fails.
	KnownToFail map[string]string
	// NotApplicable maps a scenario to the reason it means nothing for a
	// gRPC server. Those are not run. Every other scenario must have a
	// check here: a scenario added to demotest fails this suite until it
	// gets one or is declared not applicable.
	NotApplicable map[string]string
	// Args, when set, gives extra flags for every run of the program.
	Args func(t *testing.T) []string
}

// A check runs one scenario and returns what went wrong, or nil; it calls
// t.Fatal only when the test cannot proceed, as demotest's checks do.
type check func(t *testing.T, s Suite) error

// checks are the scenarios this suite can run over gRPC. ConnectionClose
// has none: Connection: close is an HTTP/1.1 header.
var checks = map[string]check{
	demotest.Routes:              checkRoutes,
	demotest.InFlightDrain:       checkDrain(syscall.SIGTERM),
	demotest.SIGINT:              checkDrain(syscall.SIGINT),
	demotest.NewConnsRefused:     checkNewConnsRefused,
	demotest.IdleKeepAliveClosed: checkIdleConnClosed,
	demotest.StalledClient:       checkStalledClient,
	demotest.DeadlineExpiry:      checkDeadline,
	demotest.SecondSignal:        checkSecondSignal,
	demotest.PortInUse:           func(t *testing.T, s Suite) error { return demotest.CheckPortInUse(t, s.args(t)) },
	demotest.StrayArgs:           func(t *testing.T, s Suite) error { return demotest.CheckStrayArgs(t, s.args(t)) },
}

// validate reports what is wrong with the declaration: a key that is no
// scenario, a reason left empty, a scenario declared twice, or one that
// is neither checked here nor declared not applicable.
func (s Suite) validate() error {
	var errs []error
	for _, m := range []struct {
		field string
		decl  map[string]string
	}{{"KnownToFail", s.KnownToFail}, {"NotApplicable", s.NotApplicable}} {
		for _, name := range slices.Sorted(maps.Keys(m.decl)) {
			switch {
			case !slices.Contains(demotest.Scenarios, name):
				errs = append(errs, fmt.Errorf("%s names %q, which is not a scenario", m.field, name))
			case strings.TrimSpace(m.decl[name]) == "":
				errs = append(errs, fmt.Errorf("%s gives %s no reason", m.field, name))
			}
		}
	}
	for _, name := range demotest.Scenarios {
		_, known := s.KnownToFail[name]
		_, na := s.NotApplicable[name]
		switch {
		case known && na:
			errs = append(errs, fmt.Errorf("%s is declared both known to fail and not applicable", name))
		case !na && checks[name] == nil:
			errs = append(errs, fmt.Errorf("scenario %s has no gRPC check: write one in internal/grpcsuite, or declare it NotApplicable with the reason", name))
		}
	}
	return errors.Join(errs...)
}

// Run runs every scenario that applies, in parallel, as subtests named
// guaranteed/<scenario> and known-to-fail/<scenario>.
func (s Suite) Run(t *testing.T) {
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, name := range demotest.Scenarios {
		if _, na := s.NotApplicable[name]; !na {
			run = append(run, name)
		}
	}
	demotest.RunChecks(t, run, s.KnownToFail, func(t *testing.T, name string) error { return checks[name](t, s) })
}

func (s Suite) args(t *testing.T) []string {
	if s.Args == nil {
		return nil
	}
	return s.Args(t)
}

// server is a started program and a client of it.
type server struct {
	*demotest.Process
	cc *grpc.ClientConn
}

// start runs the step with the suite's flags and the given
// -shutdown-timeout (0 keeps the step's default), and checks that the port
// is answered by that very process: Sleep(0s) names its pid.
func (s Suite) start(t *testing.T, shutdownTimeout time.Duration, opts ...grpc.DialOption) server {
	t.Helper()
	args := s.args(t)
	if shutdownTimeout > 0 {
		args = append(args, "-shutdown-timeout="+shutdownTimeout.String())
	}
	p := demotest.Start(t, args...)
	srv := server{p, dial(t, p.Addr, opts...)}
	if text, err := srv.sleep(0); err != nil || !strings.Contains(text, fmt.Sprintf("pid %d", p.Pid())) {
		t.Fatalf("%s is not answered by the program under test (pid %d): Sleep(0s) = %q, %v", p.Addr, p.Pid(), text, err)
	}
	return srv
}
