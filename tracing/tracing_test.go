package tracing_test

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/strata-dev/strata/tracing"
)

// TestConfigErrors: a Config New cannot use is ErrBadConfig, naming the
// field and not repeating the endpoint.
func TestConfigErrors(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	for _, c := range []struct {
		name string
		cfg  tracing.Config
		want string // in the message
	}{
		{"ratio over 1", tracing.Config{Exporter: exp, SampleRatio: 1.5}, "SampleRatio 1.5"},
		{"slow negative", tracing.Config{Exporter: exp, SlowThreshold: -time.Second}, "SlowThreshold is negative"},
		{"spans negative", tracing.Config{Exporter: exp, MaxBufferedSpans: -1}, "MaxBufferedSpans is negative"},
		{"both", tracing.Config{Exporter: exp, Endpoint: "http://127.0.0.1:4318"}, "both Endpoint and Exporter"},
		{"no scheme", tracing.Config{Endpoint: "collector:4318"}, "scheme"},
		{"grpc scheme", tracing.Config{Endpoint: "grpc://collector:4317"}, `scheme "grpc"`},
		{"no host", tracing.Config{Endpoint: "http:///v1"}, "no host"},
		{"query", tracing.Config{Endpoint: "http://collector:4318/?token=secret"}, "query or fragment"},
		{"not a URL", tracing.Config{Endpoint: "http://[::1"}, "Endpoint: not a URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tracing.New(context.Background(), c.cfg)
			if !errors.Is(err, tracing.ErrBadConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want ErrBadConfig saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error repeats the endpoint: %v", err)
			}
		})
	}
}

// TestParseEndpoint: the endpoint is a base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT: spans go to its path plus /v1/traces.
func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":          "http://127.0.0.1:4318/v1/traces",
		"https://otel.example:4318/":     "https://otel.example:4318/v1/traces",
		"http://gw.example/otlp/tenant1": "http://gw.example/otlp/tenant1/v1/traces",
	} {
		if got, err := tracing.ParseEndpoint(in); err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestOff: no endpoint, no exporter: no provider for the packages, zero
// stats, and the metrics still exported, at 0.
func TestOff(t *testing.T) {
	p, err := tracing.New(context.Background(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.TracerProvider() != nil || p.On() || p.Stats() != (tracing.Stats{}) {
		t.Fatalf("an off provider: TracerProvider %v, On %v, Stats %+v", p.TracerProvider(), p.On(), p.Stats())
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(p.Collector()); n != 9 {
		t.Fatalf("the collector exports %d series while off, want all 9 (at 0)", n)
	}
	if problems, err := testutil.CollectAndLint(p.Collector()); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// newProvider returns a provider exporting to an in-memory exporter.
func newProvider(t *testing.T, cfg tracing.Config) (*tracing.Provider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	cfg.Exporter = exp
	p, err := tracing.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p, exp
}

// request makes a root span lasting took with two children, the second
// ending after the root when late, and returns its trace id.
func request(p *tracing.Provider, parent context.Context, took time.Duration, fail, late bool) trace.TraceID {
	tr := p.TracerProvider().Tracer("test")
	t0 := time.Now()
	ctx, root := tr.Start(parent, "GET /users/{id}", trace.WithTimestamp(t0), trace.WithSpanKind(trace.SpanKindServer))
	_, a := tr.Start(ctx, "cache.Get", trace.WithTimestamp(t0))
	a.End(trace.WithTimestamp(t0.Add(took / 2)))
	_, b := tr.Start(ctx, "SELECT", trace.WithTimestamp(t0))
	if !late {
		b.End(trace.WithTimestamp(t0.Add(took / 2)))
	}
	if fail {
		root.SetStatus(codes.Error, "503")
	}
	root.End(trace.WithTimestamp(t0.Add(took)))
	if late {
		b.End(trace.WithTimestamp(t0.Add(took + time.Millisecond)))
	}
	return root.SpanContext().TraceID()
}

// TestTailKeep: at ratio 0 (none) a trace slower than the SLA, or
// failed, is exported whole (its late span too) and a fast one is not;
// at ratio 1 every one is. Timestamps, not sleeps, make a span slow.
func TestTailKeep(t *testing.T) {
	for _, c := range []struct {
		name       string
		ratio      float64
		took       time.Duration
		fail, late bool
		kept       bool
		want       tracing.Stats
	}{
		// over 100 ms: kept though not sampled
		{"slow", -1, 150 * time.Millisecond, false, false, true, tracing.Stats{Slow: 1}},
		// under: dropped
		{"fast", -1, 20 * time.Millisecond, false, false, false, tracing.Stats{Dropped: 1}},
		// fast but failed: kept
		{"failed", -1, 20 * time.Millisecond, true, false, true, tracing.Stats{Failed: 1}},
		// a span ending after its slow root follows it
		{"slow, late span", -1, 150 * time.Millisecond, false, true, true, tracing.Stats{Slow: 1}},
		// a span ending after its fast root is dropped with it
		{"fast, late span", -1, 20 * time.Millisecond, false, true, false, tracing.Stats{Dropped: 1}},
		// head sampling at 1 keeps fast traces
		{"sampled", 1, 20 * time.Millisecond, false, false, true, tracing.Stats{Sampled: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, exp := newProvider(t, tracing.Config{SampleRatio: c.ratio})
			id := request(p, context.Background(), c.took, c.fail, c.late)
			if err := p.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := exp.GetSpans()
			if !c.kept {
				if len(got) > 0 {
					t.Fatalf("exported %d spans of a trace to drop", len(got))
				}
			} else if len(got) != 3 {
				t.Fatalf("exported %d spans, want the trace's 3", len(got))
			}
			for _, s := range got {
				if s.SpanContext.TraceID() != id || !s.SpanContext.IsSampled() {
					t.Errorf("span %s: trace %s sampled %v, want trace %s, sampled", s.Name, s.SpanContext.TraceID(), s.SpanContext.IsSampled(), id)
				}
			}
			if st := p.Stats(); st != c.want {
				t.Errorf("Stats = %+v, want %+v", st, c.want)
			}
		})
	}
}

// TestRemoteParent: a request whose caller sent an unsampled
// traceparent is a local root of the caller's trace, kept when slow.
func TestRemoteParent(t *testing.T) {
	p, exp := newProvider(t, tracing.Config{SampleRatio: -1})
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 1}, SpanID: trace.SpanID{0xb7, 0xad, 1}, Remote: true})
	id := request(p, trace.ContextWithRemoteSpanContext(context.Background(), caller), 150*time.Millisecond, false, false)
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if id != caller.TraceID() {
		t.Fatalf("the request's trace is %s, not the caller's %s", id, caller.TraceID())
	}
	var root *tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "GET /users/{id}" {
			root = &s
		}
	}
	if root == nil || root.Parent.SpanID() != caller.SpanID() {
		t.Fatalf("exported %v: want the server span, child of the caller's span", exp.GetSpans())
	}
}

// TestBufferBounds: the spans held for tail keep are bounded per trace
// and in all; what does not fit is dropped and counted, and the trace is
// still decided by its root.
func TestBufferBounds(t *testing.T) {
	p, exp := newProvider(t, tracing.Config{SampleRatio: -1, MaxSpansPerTrace: 1, MaxBufferedSpans: 2})
	tr := p.TracerProvider().Tracer("test")
	t0 := time.Now()
	// Three open traces: the first holds one span (its second is over the
	// per-trace bound), the second one, the third none (over the total).
	var roots []trace.Span
	for i := range 3 {
		ctx, root := tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
		roots = append(roots, root)
		for range 2 - min(i, 1) {
			_, s := tr.Start(ctx, "child", trace.WithTimestamp(t0))
			s.End(trace.WithTimestamp(t0))
		}
	}
	want := tracing.Stats{SpansTraceFull: 1, SpansBufferFull: 1, Buffered: 2}
	if st := p.Stats(); st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	for _, r := range roots {
		r.End(trace.WithTimestamp(t0.Add(time.Second))) // slow: kept
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 5 {
		t.Fatalf("exported %d spans, want 3 roots and the 2 held", n)
	}
	if st := p.Stats(); st.Slow != 3 || st.Buffered != 0 {
		t.Fatalf("after the roots: %+v, want 3 slow, none held", st)
	}
}

// otlpReceiver is an OTLP/HTTP receiver: it decodes each protobuf
// request and sends it on.
func otlpReceiver(t *testing.T) (*httptest.Server, <-chan *coltrace.ExportTraceServiceRequest) {
	t.Helper()
	got := make(chan *coltrace.ExportTraceServiceRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP request to %s, %s", r.URL.Path, r.Header.Get("Content-Type"))
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		req := new(coltrace.ExportTraceServiceRequest)
		if err == nil {
			err = proto.Unmarshal(data, req)
		}
		if err != nil {
			t.Errorf("decode the OTLP request: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
		got <- req
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// TestOTLPExport: a slow trace reaches an OTLP/HTTP receiver on loopback
// as protobuf, with the service name and the parent links intact; a
// fast one does not.
func TestOTLPExport(t *testing.T) {
	srv, got := otlpReceiver(t)
	p, err := tracing.New(context.Background(), tracing.Config{Endpoint: srv.URL, SampleRatio: -1, ServiceName: "storefront-test"})
	if err != nil {
		t.Fatal(err)
	}
	fast := request(p, context.Background(), 10*time.Millisecond, false, false)
	slow := request(p, context.Background(), 300*time.Millisecond, false, false)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	var service string
	for len(got) > 0 {
		req := <-got
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
					if trace.TraceID(s.TraceId) != slow {
						t.Errorf("span %s of trace %x exported; only the slow trace %s should be (the fast one is %s)", s.Name, s.TraceId, slow, fast)
					}
				}
			}
		}
	}
	if len(names) != 3 || service != "storefront-test" {
		t.Fatalf("received spans %v of service %q, want the slow trace's 3 of storefront-test", names, service)
	}
	if st := p.Stats(); st.SpansExportFailed != 0 {
		t.Fatalf("Stats %+v: export failures", st)
	}
}

// TestExportFailures: spans the receiver refuses are counted, and the
// provider goes on.
func TestExportFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad", http.StatusBadRequest) // not retried
	}))
	defer srv.Close()
	p, err := tracing.New(context.Background(), tracing.Config{Endpoint: srv.URL, SampleRatio: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	request(p, context.Background(), time.Millisecond, false, false)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.SpansExportFailed != 3 {
		t.Fatalf("Stats %+v, want 3 spans failed", st)
	}
}

// TestTransport: a call through Transport carries the caller's trace in
// traceparent, under a client span; off, the transport is the base one.
func TestTransport(t *testing.T) {
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("traceparent")
	}))
	defer srv.Close()
	if tracing.Transport(nil, http.DefaultTransport) != http.DefaultTransport {
		t.Fatal("off, Transport wrapped the base transport")
	}
	p, exp := newProvider(t, tracing.Config{SampleRatio: 1})
	ctx, root := p.TracerProvider().Tracer("test").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/users/1/recommendations", nil)
	resp, err := (&http.Client{Transport: tracing.Transport(p.TracerProvider(), nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	root.End()
	tp := <-seen
	if parts := strings.Split(tp, "-"); len(parts) != 4 || parts[1] != root.SpanContext().TraceID().String() {
		t.Fatalf("traceparent %q, want the caller's trace %s", tp, root.SpanContext().TraceID())
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var client *tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			client = &s
		}
	}
	if client == nil || client.Parent.SpanID() != root.SpanContext().SpanID() || !strings.Contains(tp, client.SpanContext.SpanID().String()) {
		t.Fatalf("want a client span under the caller's, whose id traceparent carries: %+v", client)
	}
}
