package main

// The queue between POST /orders and the database: a NATS server that runs
// inside this process, with JetStream keeping the orders in a stream of
// files in -store, and the one connection the handlers publish on and the
// consumer pulls through.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	streamName   = "ORDERS"
	orderSubject = "orders.placed"
	consumerName = "orders-db" // durable: it keeps its place across restarts
)

// startNATS runs a NATS server in this process, JetStream on, its file
// store in storeDir. It listens on no port: the process is its only
// client, through an in-process pipe.
func startNATS(storeDir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "16-dependencies",
		DontListen: true,
		JetStream:  true,
		StoreDir:   storeDir,
		// Without NoSigs the server catches SIGINT and SIGTERM itself,
		// shuts down and calls os.Exit (server/signal.go): the ordered
		// shutdown below would never run.
		NoSigs: true,
	})
	if err != nil {
		return nil, err
	}
	// Start returns once the server runs; JetStream may still be
	// recovering its store, which ReadyForConnections waits for.
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("the embedded NATS server was not ready within 10s")
	}
	return ns, nil
}

// connect opens the connection: to the embedded server ns, or, when ns is
// nil, to the NATS servers of natsURL. closed is closed when the
// connection is: after nc.Drain has finished, which returns at once.
func connect(ns *server.Server, natsURL string) (nc *nats.Conn, closed <-chan struct{}, err error) {
	done := make(chan struct{})
	options := []nats.Option{
		nats.Name("16-dependencies"),
		nats.ClosedHandler(func(*nats.Conn) { close(done) }),
	}
	if ns != nil {
		options = append(options, nats.InProcessServer(ns))
	}
	nc, err = nats.Connect(natsURL, options...)
	return nc, done, err
}

// parseNATSURL checks -nats-url: one or more nats:// or tls:// URLs,
// separated by commas, as nats.Connect takes them. It returns them with
// their passwords masked, for the log.
func parseNATSURL(natsURL string) (redacted string, err error) {
	var shown []string
	for _, one := range strings.Split(natsURL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return "", errors.New("-nats-url takes nats://host:port or tls://host:port, several separated by commas")
		}
		shown = append(shown, u.Redacted())
	}
	return strings.Join(shown, ","), nil
}

// setUpStream creates the stream and the durable consumer, or checks
// that they are as configured. Duplicates is the window in which a second
// publish with the same Nats-Msg-Id is acknowledged without being stored
// again.
func setUpStream(ctx context.Context, js jetstream.JetStream, ackWait time.Duration) (jetstream.Consumer, error) {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       streamName,
		Subjects:   []string{orderSubject},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streamName, err)
	}
	consumer, err := js.CreateOrUpdateConsumer(ctx, streamName, jetstream.ConsumerConfig{
		Durable:   consumerName,
		AckPolicy: jetstream.AckExplicitPolicy,
		// A message neither acknowledged nor handed back within AckWait
		// is delivered again: after a kill -9, this is how long its
		// orders wait. It must be longer than the work on one message, or
		// the same order is worked twice at once.
		AckWait: ackWait,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", consumerName, err)
	}
	return consumer, nil
}

// publish puts o on the stream and returns once JetStream has stored it.
// Its id is the message id: a second publish of the same id within the
// Duplicates window is acknowledged as a duplicate and not stored again.
func publish(ctx context.Context, js jetstream.JetStream, o order) (duplicate bool, err error) {
	data, err := o.marshal()
	if err != nil {
		return false, err
	}
	ack, err := js.Publish(ctx, orderSubject, data, jetstream.WithMsgID(o.ID))
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}
