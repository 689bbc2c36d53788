package grpcsuite

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

func (s server) sleep(d time.Duration) (string, error) { return sleep(s.cc, durationpb.New(d)) }

// waitSleepStarted waits for the line that says a Sleep(d) began: start's
// Sleep(0s) logged one too, before it.
func (s server) waitSleepStarted(t *testing.T, d time.Duration) {
	t.Helper()
	for n := 1; ; n++ {
		l, ok := s.AwaitLogN("sleep started", n, demotest.EventTimeout)
		if !ok {
			t.Fatalf("%s never logged msg=\"sleep started\" d=%s (%s)", demotest.Step(t), d, state(s.Process))
		}
		if l.Attr("d") == d.String() {
			return
		}
	}
}

// logIndex is the index of the first line with msg, and with d=d unless d
// is "", or -1 if there is none.
func (s server) logIndex(msg, d string) int {
	return slices.IndexFunc(s.Lines(), func(l slogline.Line) bool { return l.Msg() == msg && (d == "" || l.Attr("d") == d) })
}

// checkRoutes: the contract of demotest's routes, over gRPC. Sleep(0s)
// answers naming the step and its pid; health says SERVING for the server
// and for the service; reflection lists the service; a duration out of
// bounds or invalid is INVALID_ARGUMENT with a one-line message; an
// unknown method is UNIMPLEMENTED; and the server still answers after all
// of them.
func checkRoutes(t *testing.T, s Suite) error {
	srv := s.start(t, 0)
	var errs []error
	text, err := srv.sleep(0)
	if want := fmt.Sprintf("pid %d", srv.Pid()); err != nil || !strings.Contains(text, demotest.Step(t)) || !strings.Contains(text, want) {
		errs = append(errs, fmt.Errorf("Sleep(0s) = %q, %v; want an answer naming %s and %s", text, err, demotest.Step(t), want))
	}
	health := healthpb.NewHealthClient(srv.cc)
	for _, name := range []string{"", service} {
		ctx, cancel := callContext(0)
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		cancel()
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			errs = append(errs, fmt.Errorf("health Check(%q) = %v, %v; want SERVING", name, r.GetStatus(), err))
		}
	}
	if names, err := listServices(srv.cc); err != nil || !slices.Contains(names, service) {
		errs = append(errs, fmt.Errorf("reflection lists %v, %v; want %s among them", names, err, service))
	}
	for _, in := range []*durationpb.Duration{
		durationpb.New(-time.Second), durationpb.New(61 * time.Second), durationpb.New(2 * time.Minute),
		{Seconds: 1, Nanos: -1}, // signs differ: no valid Duration
	} {
		_, err := sleepWithin(srv.cc, in, 0)
		if err := wantInvalidArgument(err); err != nil {
			errs = append(errs, fmt.Errorf("Sleep(seconds=%d nanos=%d): %v", in.GetSeconds(), in.GetNanos(), err))
		}
	}
	for _, every := range []time.Duration{time.Millisecond, 2 * time.Minute} {
		if err := wantInvalidArgument(badTicks(srv.cc, durationpb.New(every))); err != nil {
			errs = append(errs, fmt.Errorf("Ticks(%s): %v", every, err))
		}
	}
	for _, method := range []string{"/" + service + "/NoSuchMethod", "/walkthrough.v1.NoSuchService/Sleep"} {
		ctx, cancel := callContext(0)
		err := srv.cc.Invoke(ctx, method, durationpb.New(0), new(wrapperspb.StringValue))
		cancel()
		if status.Code(err) != codes.Unimplemented {
			errs = append(errs, fmt.Errorf("%s: %v, want UNIMPLEMENTED", method, err))
		}
	}
	if _, err := srv.sleep(0); err != nil {
		errs = append(errs, fmt.Errorf("after the bad calls, Sleep(0s) failed: %v (%s)", err, state(srv.Process)))
	}
	return errors.Join(errs...)
}

// wantInvalidArgument says what is wrong with err as the answer to a bad
// request: nil for INVALID_ARGUMENT with a one-line message.
func wantInvalidArgument(err error) error {
	st := status.Convert(err)
	msg := strings.TrimSpace(st.Message())
	switch {
	case err == nil:
		return errors.New("answered, want INVALID_ARGUMENT")
	case st.Code() != codes.InvalidArgument:
		return fmt.Errorf("%v, want INVALID_ARGUMENT", err)
	case msg == "" || strings.Contains(msg, "\n"):
		return fmt.Errorf("INVALID_ARGUMENT with message %q, want one line saying what is wrong", st.Message())
	}
	return nil
}

// listServices asks server reflection for the services, as grpcurl list does.
func listServices(cc *grpc.ClientConn) ([]string, error) {
	ctx, cancel := callContext(0)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	r, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	return names, stream.CloseSend()
}

func state(p *demotest.Process) string {
	if e, ok := p.Exited(); ok {
		return e.String()
	}
	return "still running"
}

// checkDrain: a Sleep in flight when sig arrives gets its answer, shutdown
// is logged around it, and the program exits 0.
func checkDrain(sig syscall.Signal) check {
	return func(t *testing.T, s Suite) error {
		srv := s.start(t, 0)
		call := sleepAsync(srv.cc, time.Second)
		srv.waitSleepStarted(t, time.Second)
		srv.Signal(sig)
		var errs []error
		if r := awaitReply(call, demotest.EventTimeout); !r.answered() {
			errs = append(errs, fmt.Errorf("the in-flight Sleep(1s) got %v, want its answer", r))
		}
		exit, ok := srv.AwaitExit(demotest.EventTimeout)
		if !ok {
			return errors.Join(append(errs, fmt.Errorf("still running %s after %v", demotest.EventTimeout, sig))...)
		}
		if exit.Code != 0 {
			errs = append(errs, fmt.Errorf("%s after %v, want exit status 0", exit, sig))
		}
		if started, finished := srv.logIndex("shutdown started", ""), srv.logIndex("sleep finished", "1s"); started < 0 || finished < 0 || started > finished {
			errs = append(errs, fmt.Errorf(`"shutdown started" (line %d) must be logged before "sleep finished" d=1s (line %d)`, started, finished))
		}
		if _, ok := srv.Logged("shutdown finished"); !ok {
			errs = append(errs, errors.New(`"shutdown finished" was not logged`))
		}
		return errors.Join(errs...)
	}
}

// checkNewConnsRefused: after SIGTERM, while a Sleep is still being served,
// a new TCP connection is refused; the Sleep then gets its answer.
func checkNewConnsRefused(t *testing.T, s Suite) error {
	srv := s.start(t, 0)
	call := sleepAsync(srv.cc, time.Second)
	srv.waitSleepStarted(t, time.Second)
	srv.Signal(syscall.SIGTERM)
	// GracefulStop closes the listener first; poll until a dial is
	// refused, giving up when the in-flight call is over.
	for refused := false; !refused; {
		select {
		case r := <-call:
			return fmt.Errorf("no new connection was refused before the in-flight Sleep ended (%v)", r)
		default:
		}
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			// A dial that raced the listener's close can complete its
			// handshake in the backlog and then be reset: refused all the same.
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
				return fmt.Errorf("dial after the signal: %v, want connection refused", err)
			}
			refused = true
			continue
		}
		c.Close()
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the listener to close
	}
	// Refused, but was the server draining or dead? Only a draining one
	// still answers the call it had in flight.
	if r := awaitReply(call, demotest.EventTimeout); !r.answered() {
		return fmt.Errorf("new connections were refused, but the in-flight Sleep got %v: the process was gone, not draining", r)
	}
	if exit := srv.WaitExit(); exit.Code != 0 {
		return fmt.Errorf("%s, want exit status 0", exit)
	}
	return nil
}

// checkIdleConnClosed: a client connection that is idle at SIGTERM (one
// call done, then nothing) is ended, and the shutdown completes (exit 0)
// instead of waiting for it until the deadline. The end is seen on the
// TCP connection itself: the server's GOAWAY makes grpc-go's client close
// a connection with no calls on it, or the server closes it.
func checkIdleConnClosed(t *testing.T, s Suite) error {
	const deadline = 2 * time.Second
	conns := make(chan *watchedConn, 1)
	srv := s.start(t, deadline, watchingDialer(conns)) // its Sleep(0s) made the connection
	var c *watchedConn
	select {
	case c = <-conns:
	default:
		t.Fatal("the client's call made no connection through the test's dialer")
	}
	select {
	case <-c.ended:
		t.Fatalf("the connection ended before the signal: %v", c.err)
	default:
	}
	srv.Signal(syscall.SIGTERM)
	select {
	case <-c.ended:
		t.Logf("the idle connection ended: %v", c.err)
	case <-time.After(deadline + demotest.EventTimeout):
		return errors.New("the idle connection stayed open")
	}
	if exit := srv.WaitExit(); exit.Code != 0 {
		return fmt.Errorf("%s: the idle connection held the shutdown to its %s deadline; want exit status 0", exit, deadline)
	}
	return nil
}

// checkStalledClient: a client that connects and never sends HTTP/2's
// preface does not hold the shutdown: the program exits 0 before its 4s
// deadline. grpc-go's GracefulStop and Stop both wait for every handshake
// in progress, for up to grpc.ConnectionTimeout (120s by default), before
// they look at the connections.
func checkStalledClient(t *testing.T, s Suite) error {
	srv := s.start(t, 4*time.Second)
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The server writes its SETTINGS frame as soon as it has accepted a
	// connection, and then waits for the client's preface: reading that
	// frame proves this connection was accepted and is in its handshake,
	// and it sends nothing.
	c.SetReadDeadline(time.Now().Add(demotest.EventTimeout))
	head := make([]byte, 9) // an HTTP/2 frame header; byte 3 is the type
	if _, err := io.ReadFull(c, head); err != nil || head[3] != 0x4 {
		t.Fatalf("no SETTINGS frame from the server on a new connection: % x, %v", head, err)
	}
	c.SetReadDeadline(time.Time{})
	dropped := make(chan time.Time, 1)
	go func() {
		// It ends when the server closes the connection, or its process
		// exits: when is what matters, not the error.
		_, _ = io.Copy(io.Discard, c)
		dropped <- time.Now()
	}()
	sent := srv.Signal(syscall.SIGTERM)
	exit, ok := srv.AwaitExit(demotest.EventTimeout)
	switch {
	case !ok:
		return fmt.Errorf("still running %s after SIGTERM: the stalled client holds it (and holds Stop too)", demotest.EventTimeout)
	case exit.Code != 0:
		return fmt.Errorf("%s: the stalled client held the shutdown to its deadline; want exit status 0", exit)
	}
	select {
	case at := <-dropped:
		if at.Before(sent) {
			return errors.New("the server dropped the stalled connection before the signal: the shutdown was never asked to wait for it")
		}
	case <-time.After(demotest.EventTimeout):
		return errors.New("the stalled connection stayed open after the program exited")
	}
	t.Logf("exited %s after SIGTERM", exit.At.Sub(sent).Round(time.Millisecond))
	return nil
}

// checkDeadline: with -shutdown-timeout=500ms and a Sleep(20s) in flight,
// the program gives up at the deadline, cuts the call, logs
// "shutdown forced" and exits 1, long before the call would have ended.
func checkDeadline(t *testing.T, s Suite) error {
	const deadline = 500 * time.Millisecond
	srv := s.start(t, deadline)
	call := sleepAsync(srv.cc, 20*time.Second)
	srv.waitSleepStarted(t, 20*time.Second)
	sent := srv.Signal(syscall.SIGTERM)
	exit, ok := srv.AwaitExit(deadline + demotest.EventTimeout)
	if !ok {
		return fmt.Errorf("still running %s after SIGTERM with a %s deadline", deadline+demotest.EventTimeout, deadline)
	}
	var errs []error
	if exit.Code != 1 {
		errs = append(errs, fmt.Errorf("%s when the deadline expired, want exit status 1", exit))
	}
	if line, ok := srv.Logged("shutdown forced"); !ok {
		errs = append(errs, errors.New(`"shutdown forced" was not logged`))
	} else if took, err := time.ParseDuration(line.Attr("took")); err != nil || took < deadline {
		errs = append(errs, fmt.Errorf("shutdown forced took=%q, want at least the %s deadline", line.Attr("took"), deadline))
	}
	if r := awaitReply(call, demotest.EventTimeout); !r.failed() {
		errs = append(errs, fmt.Errorf("the Sleep(20s) got %v, want it cut off", r))
	}
	if waited := exit.At.Sub(sent); waited < deadline {
		errs = append(errs, fmt.Errorf("exited %s after the signal, before the %s deadline", waited, deadline))
	}
	return errors.Join(errs...)
}

// checkSecondSignal: a second SIGTERM during a long drain ends the program
// at once, with a status other than 0. With a 20s deadline and a
// Sleep(20s), a swallowed second signal ends the program only after 20s,
// and a working one in milliseconds: patience tells the two apart however
// busy the machine, and is what a step declared to fail here costs the
// suite.
func checkSecondSignal(t *testing.T, s Suite) error {
	const patience = 5 * time.Second
	srv := s.start(t, 20*time.Second)
	call := sleepAsync(srv.cc, 20*time.Second)
	srv.waitSleepStarted(t, 20*time.Second)
	srv.Signal(syscall.SIGTERM)
	if _, ok := srv.AwaitLog("shutdown started", demotest.EventTimeout); !ok {
		return fmt.Errorf("no graceful shutdown began on the first signal (%s)", state(srv.Process))
	}
	if _, err := srv.Process.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("second signal: %v", err)
	}
	exit, ok := srv.AwaitExit(patience)
	if !ok {
		return fmt.Errorf("still draining %s after a second SIGTERM: the signal was swallowed", patience)
	}
	var errs []error
	if exit.Code == 0 {
		errs = append(errs, errors.New("exit status 0 after an interrupted drain, want a failure status"))
	}
	if r := awaitReply(call, demotest.EventTimeout); !r.failed() {
		errs = append(errs, fmt.Errorf("the Sleep(20s) got %v, want it cut off", r))
	}
	return errors.Join(errs...)
}
