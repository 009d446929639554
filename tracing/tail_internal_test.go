package tracing

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestBufferExpiry: the spans of a trace whose root does not end within
// BufferTimeout are dropped and counted, on the keeper's clock; the root,
// ending later, is decided alone.
func TestBufferExpiry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	exp := tracetest.NewInMemoryExporter()
	p, err := New(context.Background(), Config{Exporter: exp, SampleRatio: -1, BufferTimeout: time.Minute,
		now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	tr := p.TracerProvider().Tracer("test")
	start := func(name string) (context.Context, trace.Span) {
		return tr.Start(context.Background(), name, trace.WithTimestamp(now))
	}
	ctx, orphan := start("orphan")
	_, c := tr.Start(ctx, "child")
	c.End()
	if st := p.Stats(); st.Buffered != 1 {
		t.Fatalf("Stats %+v, want one span held", st)
	}
	now = now.Add(p.tail.timeout - time.Second)
	ctx2, other := start("other")
	_, c2 := tr.Start(ctx2, "child")
	c2.End() // the keeper looks: not yet expired
	if st := p.Stats(); st.Buffered != 2 || st.SpansExpired != 0 {
		t.Fatalf("before the timeout: %+v, want 2 held", st)
	}
	now = now.Add(2 * time.Second)
	_, c3 := tr.Start(ctx2, "child")
	c3.End() // the keeper looks again: the orphan's span expired
	if st := p.Stats(); st.Buffered != 2 || st.SpansExpired != 1 {
		t.Fatalf("after the timeout: %+v, want the orphan's span expired, other's 2 held", st)
	}
	orphan.End(trace.WithTimestamp(now)) // slow: kept, alone
	other.End(trace.WithTimestamp(now))
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 4 {
		t.Fatalf("exported %d spans, want the orphan root and other's 3", n)
	}
}
