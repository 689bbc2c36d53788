package main

// Traces, with OpenTelemetry: a span per request, per message and per
// shutdown phase, sent in batches over OTLP/gRPC to -otlp-endpoint. The
// batch span processor holds the spans of the last five seconds (its
// BatchTimeout) in memory: a process that exits without
// TracerProvider.Shutdown loses them, the very spans that would explain
// the deploy. So the tracer provider has a phase of its own, after the
// database: the spans of every phase before it are ended by then.

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the step's spans. Until startTracing sets a provider, it
// is OpenTelemetry's default, which records nothing.
func tracer() trace.Tracer { return otel.Tracer("16-dependencies") }

// startTracing sets the global tracer provider: batches of spans to the
// OTLP/gRPC endpoint, without TLS, as a collector on the same host or in
// the same pod listens. It returns the provider's Shutdown, for its phase.
func startTracing(ctx context.Context, endpoint string) (shutdown func(context.Context) error, err error) {
	exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "16-dependencies"))),
	)
	otel.SetTracerProvider(provider)
	return provider.Shutdown, nil
}

// checkEndpoint checks -otlp-endpoint: host:port, no scheme.
func checkEndpoint(endpoint string) error {
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return fmt.Errorf("-otlp-endpoint %q: want host:port of an OTLP/gRPC receiver, as localhost:4317", endpoint)
	}
	return nil
}

// traceRequests starts a span for each request, named by the route that
// served it, such as "POST /orders" (the mux sets Pattern).
func traceRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer().Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		r = r.WithContext(ctx)
		next.ServeHTTP(w, r)
		if r.Pattern != "" {
			span.SetName(r.Pattern)
		}
	})
}

// orderAttribute names the order a span is about.
func orderAttribute(id string) attribute.KeyValue { return attribute.String("order.id", id) }
