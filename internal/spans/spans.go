// Package spans is how Strata's libraries (cache, replica, shard) and
// the SQL they run make OpenTelemetry spans, under two rules.
//
// Off costs nothing: a [Tracer] made from a nil TracerProvider (or the
// otel noop provider) is the zero Tracer, whose On is a nil check; hot
// paths test it before they build a single attribute.
//
// Spans are children only: Start and the SQL tracer make a span only
// under a span already in the context (a request's server span, a
// caller's own span), never a root. Background work (health checks,
// refreshes, warming, map polls) makes no traces of its own, so a
// service's traces are its requests.
//
// The libraries take a trace.TracerProvider in their configs and never
// read or set otel's global provider.
package spans

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/strata-dev/strata/internal/sqltext"
)

// Tracer makes the child spans of one library. The zero Tracer is off.
type Tracer struct{ t trace.Tracer }

// New returns the Tracer of the instrumentation scope (the library's
// import path) from tp: off for a nil tp or the otel noop provider.
func New(tp trace.TracerProvider, scope string) Tracer {
	if tp == nil {
		return Tracer{}
	}
	if _, noopTP := tp.(noop.TracerProvider); noopTP {
		return Tracer{}
	}
	return Tracer{t: tp.Tracer(scope)}
}

// On reports whether the Tracer makes spans.
func (t Tracer) On() bool { return t.t != nil }

// none is the span Start returns when it starts none: every method does
// nothing.
var none trace.Span = noop.Span{}

// Start starts a span named name under the span in ctx, with attrs. Off,
// or with no span in ctx, it starts nothing and returns ctx and a span
// whose methods do nothing.
func (t Tracer) Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t.t == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, none
	}
	return t.t.Start(ctx, name, trace.WithAttributes(attrs...))
}

// Carry returns dst carrying the span of src, when t is on: for work
// detached from its caller's context (a load callers share, which
// outlives any one of them) whose spans still belong to the caller's
// trace. Off, it returns dst as it is, at no cost.
func (t Tracer) Carry(dst, src context.Context) context.Context {
	if t.t == nil {
		return dst
	}
	if sc := trace.SpanContextFromContext(src); !sc.IsValid() {
		return dst
	}
	return trace.ContextWithSpan(dst, trace.SpanFromContext(src))
}

// maxErrorText bounds the error text a span keeps.
const maxErrorText = 200

// End ends span, with an error status when err is not nil. A database
// error is described by its SQLSTATE alone: PostgreSQL's messages can
// quote the values of a statement ("invalid input syntax for type
// bigint: ..."), which a trace must not carry.
func End(span trace.Span, err error) {
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			span.SetAttributes(attribute.String("error.type", pe.Code))
		}
		span.SetStatus(codes.Error, Describe(err))
	}
	span.End()
}

// Describe is what a span may say of err: "SQLSTATE code" for a database
// error (see End), else its text, cut to a bound.
func Describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "SQLSTATE " + pe.Code
	}
	return sqltext.Clip(strings.ToValidUTF8(err.Error(), "?"), maxErrorText)
}
