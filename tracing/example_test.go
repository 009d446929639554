package tracing_test

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/tracing"
)

// A service builds its provider once, hands TracerProvider() to the
// packages it uses (nil when off), and shuts it down on exit. Here, with
// no head sampling, only the request slower than the SLA is exported.
func ExampleNew() {
	exp := tracetest.NewInMemoryExporter() // in a service: Config.Endpoint, an OTLP/HTTP collector
	p, err := tracing.New(context.Background(), tracing.Config{Exporter: exp, SampleRatio: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := p.TracerProvider().Tracer("example")
	for _, took := range []time.Duration{20 * time.Millisecond, 180 * time.Millisecond} {
		t0 := time.Now()
		_, span := tr.Start(context.Background(), "GET /users/{id}", trace.WithTimestamp(t0))
		span.End(trace.WithTimestamp(t0.Add(took)))
	}
	defer p.Shutdown(context.Background())
	if err := p.ForceFlush(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	st := p.Stats()
	fmt.Printf("exported %d span(s); slow %d, dropped %d\n", len(exp.GetSpans()), st.Slow, st.Dropped)
	// Output: exported 1 span(s); slow 1, dropped 1
}
