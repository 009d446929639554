package shard

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/spans"
)

// Spans of a router with Config.TracerProvider, made only under a
// caller's span: Read, Write and Tx are one span each, with the key's
// virtual shard, the shard chosen (and its owner, when a move's read
// share sent the read elsewhere) and the map's epoch; a fan-out (Each) is
// one span, with one span per shard it asks. The shard's replica.Router
// traces below them (Config.Replica.TracerProvider, set from
// Config.TracerProvider when empty). For is untouched: it has no context
// and stays the allocation-free routing decision.
const (
	tracerScope = "github.com/strata-dev/strata/shard"
	spanRead    = "shard.Read"
	spanWrite   = "shard.Write"
	spanTx      = "shard.Tx"
	spanEach    = "shard.Each"
	spanCall    = "shard.call"
)

// Attributes of the router's spans.
const (
	attrKey      = attribute.Key("strata.shard.key")            // the key routed (a user id)
	attrVShard   = attribute.Key("strata.shard.virtual_shard")  // its virtual shard (hash maps)
	attrShard    = attribute.Key("strata.shard.name")           // the shard the call went to
	attrOwner    = attribute.Key("strata.shard.owner")          // the key's owner, when a move's read share sent the read to its target
	attrEpoch    = attribute.Key("strata.shard.epoch")          // the epoch of the map that routed the call
	attrMoving   = attribute.Key("strata.shard.moving")         // the key's virtual shard is being moved
	attrShards   = attribute.Key("strata.shard.count")          // shards a fan-out asks
	attrAnswered = attribute.Key("strata.shard.answered")       // shards that answered a fan-out
	eventRetry   = "read retried on the owner"                  // a move's target failed a read
	attrRetryErr = attribute.Key("strata.shard.target_failure") // what the target's failure was
)

// startRoute starts the span of a call routed by st to t for key.
func (r *Router) startRoute(ctx context.Context, name string, st *state, key int64, t *Target) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{attrKey.Int64(key), attrShard.String(t.Name), attrEpoch.Int64(st.m.Epoch)}
	if st.m.Kind == KindHash {
		attrs = append(attrs, attrVShard.Int(VirtualShard(key, len(st.m.Owners))))
	}
	if owner := st.targets[st.m.Owner(key)]; owner != t {
		attrs = append(attrs, attrOwner.String(owner.Name))
	}
	if st.move(key) != nil {
		attrs = append(attrs, attrMoving.Bool(true))
	}
	return r.tr.Start(ctx, name, attrs...)
}

// traceCall starts the span of a read, a write or a transaction of key
// routed by st to t, when on, and the function that ends it.
func (r *Router) traceCall(ctx context.Context, name string, st *state, key int64, t *Target) (context.Context, func(error)) {
	if !r.tr.On() {
		return ctx, func(error) {}
	}
	ctx, span := r.startRoute(ctx, name, st, key, t)
	return ctx, func(err error) { spans.End(span, err) }
}

// traceRetry records that a move's target failed a read, which the owner
// then served.
func (r *Router) traceRetry(ctx context.Context, err error) {
	if r.tr.On() {
		trace.SpanFromContext(ctx).AddEvent(eventRetry, trace.WithAttributes(attrRetryErr.String(spans.Describe(err))))
	}
}

// startEach starts the span of a fan-out over targets.
func (r *Router) startEach(ctx context.Context, epoch int64, targets int) (context.Context, trace.Span) {
	if !r.tr.On() {
		return ctx, nil
	}
	return r.tr.Start(ctx, spanEach, attrEpoch.Int64(epoch), attrShards.Int(targets))
}

// endEach ends a fan-out's span with the shards that answered.
func endEach(span trace.Span, res Result, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attrAnswered.Int(len(res.Answered)))
	spans.End(span, err)
}

// call runs one leg of a fan-out on t, under a span of its own when on.
func (r *Router) call(ctx context.Context, t *Target, fn func(ctx context.Context, t *Target) error) error {
	if !r.tr.On() {
		return fn(ctx, t)
	}
	ctx, span := r.tr.Start(ctx, spanCall, attrShard.String(t.Name))
	err := fn(ctx, t)
	spans.End(span, err)
	return err
}
