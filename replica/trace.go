package replica

import (
	"context"
	"database/sql"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/spans"
)

// Spans of a router with Config.TracerProvider, made only under a
// caller's span: a Read is one span (the pool that served it, the
// replicas it skipped and why, the reason it fell back to the primary,
// the read-your-writes token it carried), with the wait for a replica to
// replay that token as a span of its own; Write (and WriteTx) and
// Position are one span each; every statement a pool runs is an SQL span
// (package internal/spans: normalised text, never its arguments).
const (
	tracerScope   = "github.com/strata-dev/strata/replica"
	spanRead      = "replica.Read"
	spanWrite     = "replica.Write"
	spanPosition  = "replica.Position"
	spanTokenWait = "replica.token_wait"
)

// Attributes of the router's spans.
const (
	attrPool     = attribute.Key("strata.replica.pool")            // the pool that served the call: primary, replica1, ...
	attrRole     = attribute.Key("strata.replica.role")            // primary or replica
	attrFallback = attribute.Key("strata.replica.fallback_reason") // why a read went to the primary: no_replica, connection, acquire_timeout, retryable, stale, capped (refused)
	attrToken    = attribute.Key("strata.replica.token")           // the read-your-writes token a read carries, or a write returned
	attrKind     = attribute.Key("strata.replica.error_kind")      // why a replica was skipped (event "replica skipped")
	attrOutcome  = attribute.Key("strata.replica.token_wait.outcome")
)

// Outcomes of a token wait (attrOutcome).
const (
	waitReplayed = "replayed" // the replica replayed the token in time and served the read
	waitTimedOut = "timeout"  // FreshWait passed: the read went on elsewhere
	waitFailed   = "error"    // the replica failed, or the read's context ended
)

// eventSkipped is the event of a replica that failed a read, which then
// ran elsewhere.
const eventSkipped = "replica skipped"

// traceToken records the token a read carries on its span.
func (r *Router) traceToken(ctx context.Context, tok Token) {
	if r.tr.On() && tok != 0 {
		trace.SpanFromContext(ctx).SetAttributes(attrToken.String(tok.String()))
	}
}

// traceChoice records the pool that took a call on its span (the last
// one, when a replica failed it and another took it).
func (r *Router) traceChoice(ctx context.Context, n *node) {
	if !r.tr.On() {
		return
	}
	role := "replica"
	if n == r.primary {
		role = "primary"
	}
	trace.SpanFromContext(ctx).SetAttributes(attrPool.String(n.name), attrRole.String(role))
}

// traceSkipped records a replica that failed a read that another server
// then tried.
func (r *Router) traceSkipped(ctx context.Context, n *node, kind string) {
	if r.tr.On() {
		trace.SpanFromContext(ctx).AddEvent(eventSkipped, trace.WithAttributes(attrPool.String(n.name), attrKind.String(kind)))
	}
}

// traceFallback records why a read went to the primary (or, capped, was
// refused).
func (r *Router) traceFallback(ctx context.Context, reason string) {
	if r.tr.On() {
		trace.SpanFromContext(ctx).SetAttributes(attrFallback.String(reason))
	}
}

// tokenWait is waitReplay under a span of its own. Its polls of the
// replay position make no SQL spans: one a freshPoll would bury the
// read's own statement.
func (r *Router) tokenWait(ctx context.Context, n *node, conn *sql.Conn, tok Token) error {
	if !r.tr.On() {
		return r.waitReplay(ctx, n, conn, tok)
	}
	ctx, span := r.tr.Start(ctx, spanTokenWait, attrPool.String(n.name), attrToken.String(tok.String()))
	err := r.waitReplay(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), n, conn, tok)
	outcome, failed := waitFailed, err
	var se *serverError
	switch {
	case err == nil:
		outcome = waitReplayed
	case errors.As(err, &se) && se.kind == kindStale:
		outcome, failed = waitTimedOut, nil // not a failure of the wait: the read goes on elsewhere
	}
	span.SetAttributes(attrOutcome.String(outcome))
	spans.End(span, failed)
	return err
}

// endWrite ends a write's (or Position's) span with the token it got.
func endWrite(span trace.Span, tok Token, err error) {
	if tok != 0 {
		span.SetAttributes(attrToken.String(tok.String()))
	}
	spans.End(span, err)
}
