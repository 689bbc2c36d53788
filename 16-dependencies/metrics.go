package main

// The metrics, with Prometheus' client_golang, served on a listener of
// their own (-metrics-addr): Shutdown closes the service's listener at the
// start of the HTTP drain, when the figures matter most, and this one stays
// open until the last phase is over. Prometheus pulls the figures, so there
// is nothing to flush at exit.

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the figures /metrics shows.
type metrics struct {
	registry         *prometheus.Registry
	requestsInFlight prometheus.Gauge
	messagesInHand   prometheus.Gauge
	phaseSeconds     *prometheus.GaugeVec
}

func newMetrics(c *counts) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requestsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		messagesInHand: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orders_messages_in_hand", Help: "Messages the consumer is storing.",
		}),
		phaseSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shutdown_phase_seconds", Help: "How long each phase of the shutdown took.",
		}, []string{"phase"}),
	}
	counter := func(name, help string, value func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(value()) })
	}
	m.registry.MustRegister(m.requestsInFlight, m.messagesInHand, m.phaseSeconds,
		counter("orders_accepted_total", "Orders answered 202, duplicates included.", c.accepted.Load),
		counter("orders_stored_total", "Orders this process inserted.", c.stored.Load),
		counter("orders_redelivered_total", "Deliveries that were not a message's first.", c.redelivered.Load),
	)
	return m
}

// countRequests keeps http_requests_in_flight.
func (m *metrics) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requestsInFlight.Inc()
		defer m.requestsInFlight.Dec()
		next.ServeHTTP(w, r)
	})
}

// serveMetrics serves /metrics on addr until the returned function is
// called, after the last phase.
func serveMetrics(listener net.Listener, m *metrics) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	go func() {
		if err := srv.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server failed", "err", err)
		}
	}()
	slog.Info("metrics listening", "addr", listener.Addr().String())
	return func() { srv.Close() }
}
