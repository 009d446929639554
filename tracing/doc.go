// Package tracing builds a service's OpenTelemetry tracer provider: spans
// exported over OTLP/HTTP, a head sampling ratio, and tail keep of the
// slow and failed requests, which are exported whatever the ratio.
//
// # Why tail keep
//
// Head sampling decides when a trace starts, before anyone knows how it
// will go: at 1 %, 99 of every 100 requests slower than the SLA are never
// seen, and those are the traces an engineer opens. So every span is
// recorded (the sampler never drops, it only marks a trace sampled or
// not), and a span processor holds the spans of each trace that head
// sampling did not choose in a buffer of its own until the trace's local
// root (the server span of a request) ends. Then the trace is exported if
// the root took longer than SlowThreshold (default the guide's p99
// target, 100 ms: monitor.DefaultLatencyThreshold) or ended with an error
// status (a 5xx), and forgotten otherwise. Spans that end after their root
// (a load the caller stopped waiting for) follow its decision.
//
// Memory is bounded: at most MaxSpansPerTrace spans a trace and
// MaxBufferedSpans in all are held, and a trace whose root has not ended
// within BufferTimeout is dropped; every span dropped is counted by
// reason ([Stats], and strata_tracing_spans_dropped_total through
// [Provider.Collector]). The price of tail keep is that every request
// records its spans, sampled or not: a few microseconds a request.
//
// # Off
//
// With no endpoint (and no exporter), [New] returns a Provider whose
// [Provider.TracerProvider] is nil: Strata's packages take a nil
// TracerProvider as off, and their hot paths then cost what they cost
// before tracing existed (docs/benchmarks.md, "Tracing off").
//
// # Propagation
//
// W3C Trace Context (traceparent, tracestate) is the only propagator:
// [Propagator] extracts it from requests and [Transport] injects it into
// outgoing calls. Nothing here reads or sets otel's global provider or
// propagator.
//
// # Libraries
//
// The SDK (go.opentelemetry.io/otel/sdk), its batch span processor and
// the OTLP/HTTP exporter (otlptracehttp) are OpenTelemetry's own: the
// reference implementation every backend (Jaeger, Tempo, the collector)
// speaks to. HTTP spans come from otelhttp, the project's own net/http
// instrumentation. Strata adds only what they lack: tail keep.
package tracing
