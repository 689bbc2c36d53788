package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// dial returns a client of the Slow service on addr, closed with the test.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) (*grpc.ClientConn, slowpb.SlowClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, slowpb.NewSlowClient(conn)
}

// rpcContext bounds one call in a test: long enough never to cut a call
// that works on a busy machine, short enough to end a test that hangs.
func rpcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sleep calls Sleep(d) and returns the answer, or the error as a status.
func sleep(t *testing.T, client slowpb.SlowClient, d time.Duration) (string, error) {
	answer, err := client.Sleep(rpcContext(t), durationpb.New(d))
	return answer.GetValue(), err
}
