package replica_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/strata-dev/strata/replica"
)

// attrs returns s's attributes as text.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes() {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

// TestTraceRouter: under a request's span, a Read is a replica.Read span
// naming the pool that served it, over the SQL span of its statement; a
// read whose token no replica replays within FreshWait shows the wait
// timing out, the replica skipped, and the fallback to the primary with
// its reason; a Write is a replica.Write span with its token. Without a
// span in the context, the router makes none.
func TestTraceRouter(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := shared(t, replica.Config{TracerProvider: tp})
	setup(t, r)
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("a write with no span in its context made %d spans", n)
	}
	read := func(ctx context.Context, q replica.Querier) error { _, err := port(ctx, q); return err }
	for _, c := range []struct {
		name string
		call func(ctx context.Context) error
		span string
		want map[string]string // attributes; a value ending in * is a prefix
		sub  string            // a child span that must exist besides the SQL
	}{
		// a plain read: a replica serves it
		{"read", func(ctx context.Context) error { return r.Read(ctx, read) }, "replica.Read",
			map[string]string{"strata.replica.pool": "replica*", "strata.replica.role": "replica"}, ""},
		// a token from the future: the wait times out, the primary serves
		{"stale token", func(ctx context.Context) error { return r.Read(replica.WithToken(ctx, replica.Token(1)<<60), read) }, "replica.Read",
			map[string]string{"strata.replica.pool": "primary", "strata.replica.fallback_reason": "stale", "strata.replica.token": "10000000/0"}, "replica.token_wait"},
		// a write: its token
		{"write", func(ctx context.Context) error {
			_, err := r.Write(ctx, func(ctx context.Context, q replica.Querier) error {
				_, err := q.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = $1", 1)
				return err
			})
			return err
		}, "replica.Write", map[string]string{"strata.replica.pool": "primary", "strata.replica.token": "*"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, request := tp.Tracer("test").Start(context.Background(), "request")
			if err := c.call(ctx); err != nil {
				t.Fatal(err)
			}
			request.End()
			checkRouterSpans(t, rec.Ended(), request.SpanContext().SpanID().String(), c.span, c.want, c.sub)
		})
	}
}

// checkRouterSpans finds the span named name under the request and checks
// its attributes, its SQL child and, if sub is set, that child too.
func checkRouterSpans(t *testing.T, ended []sdktrace.ReadOnlySpan, request, name string, want map[string]string, sub string) {
	t.Helper()
	var span sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == name && s.Parent().SpanID().String() == request {
			span = s
		}
	}
	if span == nil {
		t.Fatalf("no %s span under the request", name)
	}
	got := attrs(span)
	for k, v := range want {
		if p, prefix := strings.CutSuffix(v, "*"); got[k] != v && !(prefix && strings.HasPrefix(got[k], p) && got[k] != "") {
			t.Errorf("%s: %s = %q, want %q (%v)", name, k, got[k], v, got)
		}
	}
	children := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		if s.Parent().SpanID() == span.SpanContext().SpanID() {
			children[s.Name()] = s
		}
	}
	sql := children["SELECT"]
	if name == "replica.Write" {
		sql = children["UPDATE"]
	}
	if sql == nil || attrs(sql)["db.system.name"] != "postgresql" {
		t.Errorf("%s: no SQL span under it: %v", name, children)
	}
	if sub != "" {
		w, ok := children[sub]
		if !ok || attrs(w)["strata.replica.token_wait.outcome"] != "timeout" {
			t.Errorf("%s: no %s that timed out under it: %v", name, sub, children)
		}
		if ev := span.Events(); len(ev) != 1 || ev[0].Name != "replica skipped" {
			t.Errorf("%s: events %v, want one replica skipped", name, ev)
		}
	}
}
