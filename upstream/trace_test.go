package upstream_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/tracing"
	"github.com/strata-dev/strata/upstream"
)

// TestTracing: with a TracerProvider, each attempt of a call is a client
// span under the caller's span, a retry one of its own, and the upstream
// receives the W3C traceparent of the attempt it answers.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := newServer(t, firstThen(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	c := newClient(t, s.URL, upstream.Config{BaseBackoff: time.Millisecond, TracerProvider: tp})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, parent := tp.Tracer("test").Start(ctx, "caller")
	req, err := c.NewRequest(ctx, http.MethodGet, "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	parent.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 after a retry", resp.StatusCode)
	}

	var clients []tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		if sp.SpanKind == trace.SpanKindClient {
			clients = append(clients, sp)
		}
	}
	seen := s.requests()
	if len(clients) != 2 || len(seen) != 2 {
		t.Fatalf("%d client spans and %d requests, want 2 of each (the attempt and its retry)", len(clients), len(seen))
	}
	for i, sp := range clients {
		if sp.Parent.SpanID() != parent.SpanContext().SpanID() || sp.SpanContext.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("client span %d is not a child of the caller's span", i)
		}
	}
	prop := tracing.Propagator()
	for i, r := range seen {
		got := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
		if got.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("request %d carried trace %s, want the caller's %s", i+1, got.TraceID(), parent.SpanContext().TraceID())
		}
		if got.SpanID() != clients[0].SpanContext.SpanID() && got.SpanID() != clients[1].SpanContext.SpanID() {
			t.Errorf("request %d's parent span %s is not one of the client spans", i+1, got.SpanID())
		}
	}
}

// TestTracingOff: without a TracerProvider, the client adds no
// traceparent of its own.
func TestTracingOff(t *testing.T) {
	s := newServer(t, status(http.StatusOK))
	c := newClient(t, s.URL, upstream.Config{})
	if got, _, err := call(t, c, 10*time.Second, http.MethodGet, ""); err != nil || got != http.StatusOK {
		t.Fatalf("status %d, err %v", got, err)
	}
	if tp := s.requests()[0].Header.Get("traceparent"); tp != "" {
		t.Errorf("traceparent %q sent with tracing off", tp)
	}
}
