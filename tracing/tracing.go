package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/monitor"
)

// Defaults of Config.
const (
	// DefaultSampleRatio: Strata's choice (the guide gives no sampling
	// ratio); slow and failed requests are kept whatever the ratio.
	DefaultSampleRatio = 0.01
	// DefaultSlowThreshold: guide, Load Testing and the search case study:
	// p99 < 100 ms; a request slower than the SLA is always exported.
	DefaultSlowThreshold = monitor.DefaultLatencyThreshold
	// DefaultMaxSpansPerTrace: Strata's choice; a storefront request makes
	// ten to forty spans.
	DefaultMaxSpansPerTrace = 256
	// DefaultMaxBufferedSpans: Strata's choice; about 16 MiB of spans at
	// about 1 KiB each.
	DefaultMaxBufferedSpans = 16_384
	// DefaultBufferTimeout: Strata's choice; past the storefront's longest
	// request (its write timeout, 30 s).
	DefaultBufferTimeout = time.Minute
	// DefaultServiceName is the service.name of the spans.
	DefaultServiceName = "strata"
	// OTLPTracesPath is what the exporter appends to the endpoint, as for
	// OTEL_EXPORTER_OTLP_ENDPOINT.
	OTLPTracesPath = "/v1/traces"
)

// EnvEndpoint is the standard variable of the OTLP endpoint, which
// strata serve reads when --otlp-endpoint is not given.
const EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// ErrBadConfig is returned (wrapped) for a Config New cannot use; the
// message names the field.
var ErrBadConfig = errors.New("tracing: bad config")

// Config configures a Provider. The zero value is off: no endpoint, no
// exporter.
type Config struct {
	// Endpoint is the OTLP/HTTP endpoint, http:// or https://HOST:PORT
	// with an optional path prefix, as OTEL_EXPORTER_OTLP_ENDPOINT: spans
	// are sent to it plus OTLPTracesPath. Empty, with no Exporter, means
	// tracing off.
	Endpoint string
	// Exporter, when set instead of Endpoint, receives the spans (tests:
	// tracetest.NewInMemoryExporter).
	Exporter sdktrace.SpanExporter
	// SampleRatio is the share of traces exported whatever their
	// duration (head sampling): 0 < r <= 1; 0 means DefaultSampleRatio
	// (1 %), a negative value none (only slow and failed requests). A
	// request whose caller's traceparent says sampled is sampled.
	SampleRatio float64
	// SlowThreshold: a trace whose local root takes longer is exported
	// even when not sampled. 0 means DefaultSlowThreshold (100 ms).
	SlowThreshold time.Duration
	// MaxSpansPerTrace and MaxBufferedSpans bound the spans held for tail
	// keep, per trace and in all; BufferTimeout drops a trace whose root
	// has not ended in time. 0 means the defaults above.
	MaxSpansPerTrace, MaxBufferedSpans int
	BufferTimeout                      time.Duration
	// ServiceName is the spans' service.name; "" means DefaultServiceName.
	ServiceName string
	// Logger receives export failures (the first, then at most one a
	// minute); nil means slog.Default().
	Logger *slog.Logger

	now func() time.Time // the buffer's clock; nil: time.Now
}

// resolve checks c and fills in the defaults.
func (c *Config) resolve() error {
	switch r := c.SampleRatio; {
	case math.IsNaN(r) || r > 1:
		return fmt.Errorf("%w: SampleRatio %v: want a share from 0 to 1", ErrBadConfig, r)
	case r == 0:
		c.SampleRatio = DefaultSampleRatio
	case r < 0:
		c.SampleRatio = 0
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"SlowThreshold", &c.SlowThreshold, DefaultSlowThreshold}, {"BufferTimeout", &c.BufferTimeout, DefaultBufferTimeout}} {
		if *d.v < 0 {
			return fmt.Errorf("%w: %s is negative (%v)", ErrBadConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxSpansPerTrace", &c.MaxSpansPerTrace, DefaultMaxSpansPerTrace}, {"MaxBufferedSpans", &c.MaxBufferedSpans, DefaultMaxBufferedSpans}} {
		if *n.v < 0 {
			return fmt.Errorf("%w: %s is negative (%d)", ErrBadConfig, n.name, *n.v)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if c.Endpoint != "" && c.Exporter != nil {
		return fmt.Errorf("%w: both Endpoint and Exporter are set; choose one", ErrBadConfig)
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}

// ParseEndpoint checks an OTLP/HTTP endpoint (Config.Endpoint) and returns
// the URL spans are sent to: the endpoint plus OTLPTracesPath. The error
// says what is wrong without repeating the endpoint.
func ParseEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the whole URL again otherwise
		}
		return "", fmt.Errorf("not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("scheme %q: want http:// or https://HOST:PORT", u.Scheme)
	case u.Host == "":
		return "", errors.New("no host: want http:// or https://HOST:PORT")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("a query or fragment is not part of an OTLP endpoint")
	}
	u.Path = path.Join("/", u.Path, OTLPTracesPath)
	u.RawPath = ""
	return u.String(), nil
}

// Provider is a service's tracer provider. The zero Provider (and a nil
// one) is off.
type Provider struct {
	sdk  *sdktrace.TracerProvider // nil: off
	tail *tailKeeper
	exp  *exportCounter
}

// New builds the Provider cfg describes: off without Endpoint or Exporter;
// otherwise an SDK provider that records every span, exports the sampled,
// slow and failed traces in batches, and never touches otel's globals.
// Call Shutdown when done, to send what is buffered.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	exp := cfg.Exporter
	if cfg.Endpoint != "" {
		target, err := ParseEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("%w: Endpoint: %w", ErrBadConfig, err)
		}
		if exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(target)); err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
	}
	if exp == nil {
		return &Provider{}, nil
	}
	counted := &exportCounter{next: exp, log: cfg.Logger}
	tail := newTailKeeper(cfg, sdktrace.NewBatchSpanProcessor(counted))
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.ServiceName))
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(recordAll{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))}),
		sdktrace.WithSpanProcessor(tail),
		sdktrace.WithResource(res),
	)
	return &Provider{sdk: sdk, tail: tail, exp: counted}, nil
}

// TracerProvider returns the provider to give Strata's packages (their
// Config.TracerProvider, storefront's HandlerConfig): nil when off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk
}

// On reports whether p exports spans.
func (p *Provider) On() bool { return p != nil && p.sdk != nil }

// ForceFlush decides nothing new, but exports at once what was already
// kept (tests, and a process about to be suspended).
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.On() {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown exports what was kept and stops the provider: spans ended
// later are not exported. Spans still buffered for a root that has not
// ended are dropped. It is safe to call on an off Provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.On() {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Stats is a snapshot of what tail keep did, in the spirit of sql.DBStats.
type Stats struct {
	Sampled uint64 // traces exported because head sampling chose them
	Slow    uint64 // traces exported because their local root took longer than SlowThreshold
	Failed  uint64 // traces exported because their local root ended with an error status
	Dropped uint64 // traces neither sampled, slow nor failed: not exported

	SpansTraceFull    uint64 // spans not buffered: their trace already held MaxSpansPerTrace
	SpansBufferFull   uint64 // spans not buffered: MaxBufferedSpans were held
	SpansExpired      uint64 // buffered spans dropped: their root did not end within BufferTimeout
	SpansExportFailed uint64 // spans the exporter could not send (after its retries)

	Buffered int // spans held now, waiting for their root
}

// Stats returns p's counters; all zero when off.
func (p *Provider) Stats() Stats {
	if !p.On() {
		return Stats{}
	}
	s := p.tail.stats()
	s.SpansExportFailed = p.exp.failed.Load()
	return s
}

// Propagator returns the W3C Trace Context propagator (traceparent and
// tracestate), the one Strata extracts from requests and injects into
// calls.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Transport returns base (http.DefaultTransport when nil) wrapped to make
// a client span of each call and inject traceparent into it, for a
// service's calls to another; with tp off (nil) it returns base as it is.
func Transport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if tp == nil {
		return base
	}
	return otelhttp.NewTransport(base, HTTPOptions(tp)...)
}

// HTTPOptions are the otelhttp options of Strata's HTTP spans: tp, the
// W3C propagator, and no metrics (Strata's own HTTP metrics are
// Prometheus's), so that nothing falls back on otel's globals.
func HTTPOptions(tp trace.TracerProvider) []otelhttp.Option {
	return []otelhttp.Option{
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
}
