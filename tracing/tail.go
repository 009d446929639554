package tracing

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// recordAll is the sampler of tail keep: the head sampler's decision,
// except that a span it would drop is recorded, unsampled, so that the
// tail keeper sees it.
type recordAll struct{ head sdktrace.Sampler }

func (s recordAll) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	r := s.head.ShouldSample(p)
	if r.Decision == sdktrace.Drop {
		r.Decision = sdktrace.RecordOnly
	}
	return r
}

func (s recordAll) Description() string { return "RecordAll{" + s.head.Description() + "}" }

// rememberDecided bounds how many decided traces the keeper remembers,
// for spans that end after their root: the oldest is forgotten first.
const rememberDecided = 4096

// tailKeeper is the span processor of tail keep (see the package doc):
// spans of sampled traces go straight to next; the others wait in a
// buffer per trace for their local root, which decides.
type tailKeeper struct {
	next     sdktrace.SpanProcessor
	slow     time.Duration
	perTrace int
	maxSpans int
	timeout  time.Duration
	now      func() time.Time

	sampled, slowKept, failed, dropped atomic.Uint64 // traces, by outcome
	traceFull, bufferFull, expired     atomic.Uint64 // spans dropped, by reason

	mu       sync.Mutex
	held     map[trace.TraceID]*heldTrace
	order    []*heldTrace // held traces by arrival, for expiry
	buffered int          // spans in held
	decided  map[trace.TraceID]bool
	ring     [rememberDecided]trace.TraceID // decided, oldest at next once full
	ringNext int
}

// heldTrace is the buffer of one trace whose root has not ended.
type heldTrace struct {
	id    trace.TraceID
	since time.Time
	spans []sdktrace.ReadOnlySpan
	gone  bool // decided or expired: order skips it
}

var _ sdktrace.SpanProcessor = (*tailKeeper)(nil)

func newTailKeeper(cfg Config, next sdktrace.SpanProcessor) *tailKeeper {
	return &tailKeeper{next: next, slow: cfg.SlowThreshold, perTrace: cfg.MaxSpansPerTrace, maxSpans: cfg.MaxBufferedSpans,
		timeout: cfg.BufferTimeout, now: cfg.now, held: map[trace.TraceID]*heldTrace{}, decided: map[trace.TraceID]bool{}}
}

// localRoot reports whether s is its trace's first span in this process:
// no parent, or a parent in a caller (a traceparent).
func localRoot(s sdktrace.ReadOnlySpan) bool {
	p := s.Parent()
	return !p.IsValid() || p.IsRemote()
}

func (k *tailKeeper) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	k.next.OnStart(parent, s)
}

func (k *tailKeeper) OnEnd(s sdktrace.ReadOnlySpan) {
	switch {
	case s.SpanContext().IsSampled():
		k.next.OnEnd(s)
		if localRoot(s) {
			k.sampled.Add(1)
		}
	case localRoot(s):
		k.endRoot(s)
	default:
		k.hold(s)
	}
}

// endRoot decides the trace of s, an unsampled local root, and exports
// its held spans and itself if it keeps it.
func (k *tailKeeper) endRoot(s sdktrace.ReadOnlySpan) {
	keep := true
	switch {
	case s.Status().Code == codes.Error:
		k.failed.Add(1)
	case s.EndTime().Sub(s.StartTime()) > k.slow:
		k.slowKept.Add(1)
	default:
		keep = false
		k.dropped.Add(1)
	}
	id := s.SpanContext().TraceID()
	k.mu.Lock()
	var spans []sdktrace.ReadOnlySpan
	if h := k.held[id]; h != nil {
		spans, h.spans, h.gone = h.spans, nil, true
		delete(k.held, id)
		k.buffered -= len(spans)
	}
	k.remember(id, keep)
	k.mu.Unlock()
	if keep {
		for _, sp := range spans {
			k.next.OnEnd(kept{sp})
		}
		k.next.OnEnd(kept{s})
	}
}

// hold buffers s, an unsampled span that is not a root, until its root
// decides; a span whose root has decided already follows the decision.
func (k *tailKeeper) hold(s sdktrace.ReadOnlySpan) {
	id := s.SpanContext().TraceID()
	now := k.now()
	k.mu.Lock()
	k.expire(now)
	if keep, ok := k.decided[id]; ok {
		k.mu.Unlock()
		if keep {
			k.next.OnEnd(kept{s})
		}
		return
	}
	h := k.held[id]
	switch {
	case h != nil && len(h.spans) >= k.perTrace:
		k.traceFull.Add(1)
	case k.buffered >= k.maxSpans:
		k.bufferFull.Add(1)
	default:
		if h == nil {
			h = &heldTrace{id: id, since: now}
			k.held[id] = h
			k.order = append(k.order, h)
		}
		h.spans = append(h.spans, s)
		k.buffered++
	}
	k.mu.Unlock()
}

// expire drops the held traces older than the timeout, under k.mu.
func (k *tailKeeper) expire(now time.Time) {
	for len(k.order) > 0 {
		h := k.order[0]
		if !h.gone && now.Sub(h.since) < k.timeout {
			return
		}
		if !h.gone {
			k.expired.Add(uint64(len(h.spans)))
			k.buffered -= len(h.spans)
			delete(k.held, h.id)
			h.spans, h.gone = nil, true
		}
		k.order[0] = nil
		k.order = k.order[1:]
	}
}

// remember records a trace's decision for its late spans, forgetting the
// oldest past rememberDecided, under k.mu.
func (k *tailKeeper) remember(id trace.TraceID, keep bool) {
	if old := k.ring[k.ringNext]; old.IsValid() {
		delete(k.decided, old)
	}
	k.ring[k.ringNext] = id
	k.ringNext = (k.ringNext + 1) % rememberDecided
	k.decided[id] = keep
}

func (k *tailKeeper) ForceFlush(ctx context.Context) error { return k.next.ForceFlush(ctx) }

// Shutdown stops the export; what is still held is dropped.
func (k *tailKeeper) Shutdown(ctx context.Context) error {
	k.mu.Lock()
	k.held, k.order, k.buffered = map[trace.TraceID]*heldTrace{}, nil, 0
	k.mu.Unlock()
	return k.next.Shutdown(ctx)
}

func (k *tailKeeper) stats() Stats {
	k.mu.Lock()
	buffered := k.buffered
	k.mu.Unlock()
	return Stats{
		Sampled: k.sampled.Load(), Slow: k.slowKept.Load(), Failed: k.failed.Load(), Dropped: k.dropped.Load(),
		SpansTraceFull: k.traceFull.Load(), SpansBufferFull: k.bufferFull.Load(), SpansExpired: k.expired.Load(),
		Buffered: buffered,
	}
}

// kept is a span of a trace tail keep exports: marked sampled, as the
// batch processor exports only sampled spans.
type kept struct{ sdktrace.ReadOnlySpan }

func (s kept) SpanContext() trace.SpanContext {
	sc := s.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}

// exportLogEvery bounds the export failures logged: the first at once,
// then one a minute with the count of those not logged.
const exportLogEvery = time.Minute

// exportCounter counts and logs the exporter's failures itself: the batch
// processor would hand them to otel's global error handler, which writes
// to the standard logger on every failed batch.
type exportCounter struct {
	next   sdktrace.SpanExporter
	log    *slog.Logger
	failed atomic.Uint64 // spans not sent

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int
}

func (e *exportCounter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.next.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.failed.Add(uint64(len(spans)))
	e.mu.Lock()
	now := time.Now()
	if !e.lastLog.IsZero() && now.Sub(e.lastLog) < exportLogEvery {
		e.unlogged++
		e.mu.Unlock()
		return nil
	}
	unlogged := e.unlogged
	e.lastLog, e.unlogged = now, 0
	e.mu.Unlock()
	e.log.Warn("tracing: spans could not be exported; they are dropped", "spans", len(spans), "err", err, "failures_not_logged", unlogged)
	return nil
}

func (e *exportCounter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }
