package grpcsuite

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// The step's service, by the names on the wire. The suite calls it with
// grpc.ClientConn.Invoke and the well-known types, not with the step's
// generated client: so it checks the contract a client without the step's
// code relies on (grpcurl, another language), and a renamed service or
// method fails here instead of being followed silently.
const (
	service     = "walkthrough.v1.Slow"
	sleepMethod = "/" + service + "/Sleep"
	ticksMethod = "/" + service + "/Ticks"
)

// dial returns a client of the program at addr, closed when the test ends.
// It connects at its first call, as grpc.NewClient does.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// callContext bounds a call that should take d: it only keeps a broken
// program from hanging the test, as demotest.EventTimeout does.
func callContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d+demotest.EventTimeout)
}

// sleep calls Sleep with the given request and returns the answer's text.
func sleep(cc *grpc.ClientConn, in *durationpb.Duration) (string, error) {
	return sleepWithin(cc, in, in.AsDuration())
}

// sleepWithin is sleep with the call bounded by callContext(d): a request
// the server must refuse at once gets d = 0, so that a server that sleeps
// on it anyway does not hold the test for as long.
func sleepWithin(cc *grpc.ClientConn, in *durationpb.Duration, d time.Duration) (string, error) {
	ctx, cancel := callContext(d)
	defer cancel()
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, sleepMethod, in, out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// reply is how a call ended: the answer's text, or the error; done is
// false when it had not ended when the wait gave up.
type reply struct {
	text string
	err  error
	done bool
}

func (r reply) answered() bool { return r.done && r.err == nil }
func (r reply) failed() bool   { return r.done && r.err != nil }

func (r reply) String() string {
	switch {
	case !r.done:
		return "no answer nor error yet"
	case r.err != nil:
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("the answer %q", r.text)
}

// sleepAsync calls Sleep(d) in the background; the channel gets how it ended.
func sleepAsync(cc *grpc.ClientConn, d time.Duration) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		text, err := sleep(cc, durationpb.New(d))
		ch <- reply{text, err, true}
	}()
	return ch
}

// awaitReply waits up to timeout for a call to end.
func awaitReply(ch <-chan reply, timeout time.Duration) reply {
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		return reply{}
	}
}

// badTicks calls Ticks(every) with an interval the server must refuse at
// once, and returns the outcome of the first receive: nil for a first
// tick, or the stream's error.
func badTicks(cc *grpc.ClientConn, every *durationpb.Duration) error {
	ctx, cancel := callContext(0)
	defer cancel() // ends the stream, if it is running
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, ticksMethod)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(every); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return stream.RecvMsg(new(timestamppb.Timestamp))
}

// watchedConn is a client's TCP connection that reports when it ends: when
// a Read returns an error, the end of the stream from the server (EOF) or
// the client's own close after the server's GOAWAY.
type watchedConn struct {
	net.Conn
	once  sync.Once
	ended chan struct{} // closed when a Read first fails
	err   error         // that Read's error, set before ended is closed
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.once.Do(func() {
			c.err = err
			close(c.ended)
		})
	}
	return n, err
}

// watchingDialer is a dial option whose connections are sent on conns,
// which must have room for every connection the client makes.
func watchingDialer(conns chan<- *watchedConn) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		w := &watchedConn{Conn: c, ended: make(chan struct{})}
		select {
		case conns <- w:
		default: // more connections than the test looks at
		}
		return w, nil
	})
}
