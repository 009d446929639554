package cache

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/spans"
)

// Spans of a cache with Config.TracerProvider, made only under a caller's
// span (a request's): a read of Get or Query is one span, with the level
// that answered; the wait for another instance's lease and the loader
// call are spans of their own under it. A load that callers share runs
// under the span of the caller that started it.
const (
	tracerScope   = "github.com/strata-dev/strata/cache"
	spanGet       = "cache.Get"
	spanQuery     = "cache.Query"
	spanLeaseWait = "cache.lease_wait"
	spanLoad      = "cache.load"
)

// Attributes of the cache's spans.
const (
	attrNamespace = attribute.Key("strata.cache.namespace")     // Config.Namespace
	attrKey       = attribute.Key("strata.cache.key")           // the key read (Query: a hash of the SQL and its arguments)
	attrLevel     = attribute.Key("strata.cache.level")         // the level that answered: l1, l2, loader; none on an error
	attrShared    = attribute.Key("strata.cache.shared")        // the value came from a load another caller started (Info.Shared)
	attrStale     = attribute.Key("strata.cache.stale")         // a stale value was served while it refreshes (Info.Stale)
	attrNotFound  = attribute.Key("strata.cache.not_found")     // the answer is ErrNotFound, which is not a failure
	attrOutcome   = attribute.Key("strata.cache.lease.outcome") // filled, timeout, canceled or l2_error
	attrWaited    = attribute.Key("strata.cache.lease.wait_seconds")
)

// Outcomes of a lease wait (attrOutcome).
const (
	leaseFilled   = "filled"   // the holder's value arrived in L2 and was served
	leaseTimedOut = "timeout"  // LeaseWait passed; the reader loads by itself
	leaseCanceled = "canceled" // the read's context ended first
	leaseL2Failed = "l2_error" // L2 failed during the wait; the reader loads by itself
)

// maxKeyAttr bounds the key a span shows.
const maxKeyAttr = 128

// getTraced is get under a span named name.
func (c *Cache[V]) getTraced(ctx context.Context, name, key string, load LoaderFunc[V], opts []Option) (V, Info, error) {
	shown := key
	if len(shown) > maxKeyAttr {
		shown = shown[:maxKeyAttr]
	}
	ctx, span := c.tr.Start(ctx, name, attrNamespace.String(c.cfg.Namespace), attrKey.String(shown))
	v, info, err := c.get(ctx, key, load, opts, c.l1, true)
	level := info.Source.String()
	if err != nil && !errors.Is(err, ErrNotFound) {
		level = SourceNone.String()
	}
	span.SetAttributes(attrLevel.String(level), attrShared.Bool(info.Shared), attrStale.Bool(info.Stale))
	spans.End(span, found(span, err))
	return v, info, err
}

// found marks span not found for ErrNotFound, which it then does not
// count as an error; other errors are returned as they are.
func found(span trace.Span, err error) error {
	if errors.Is(err, ErrNotFound) {
		span.SetAttributes(attrNotFound.Bool(true))
		return nil
	}
	return err
}

// callTraced calls load, under a span when traced.
func (c *Cache[V]) callTraced(ctx context.Context, key string, load LoaderFunc[V]) (V, error) {
	if !c.tr.On() {
		return load(ctx, key)
	}
	ctx, span := c.tr.Start(ctx, spanLoad, attrNamespace.String(c.cfg.Namespace))
	v, err := load(ctx, key)
	spans.End(span, found(span, err))
	return v, err
}

// endLeaseWait ends a lease wait's span with its outcome and duration.
func endLeaseWait(span trace.Span, outcome string, waited time.Duration, err error) {
	span.SetAttributes(attrOutcome.String(outcome), attrWaited.Float64(waited.Seconds()))
	spans.End(span, err)
}
