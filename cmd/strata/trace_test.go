package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/strata-dev/strata/tracing"
)

// TestServeTraceErrors: a bad tracing flag, config key or
// OTEL_EXPORTER_OTLP_ENDPOINT is a usage error (exit 2) naming where the
// value came from; sampling options without an endpoint are refused, as
// they would do nothing.
func TestServeTraceErrors(t *testing.T) {
	dir := t.TempDir()
	lite := "sqlite://" + filepath.Join(dir, "x.db")
	const endpoint = "http://127.0.0.1:4318"
	for _, c := range []struct {
		name string
		args []string
		env  string // OTEL_EXPORTER_OTLP_ENDPOINT
		file string // a config file's body
		want string
	}{
		// a ratio over 1
		{"sample over 1", []string{"--otlp-endpoint", endpoint, "--trace-sample", "1.5"}, "", "", `--trace-sample "1.5": want a share from 0 to 1`},
		// not a number
		{"sample not a number", []string{"--otlp-endpoint", endpoint, "--trace-sample", "some"}, "", "", `--trace-sample "some": want a share`},
		// a threshold that is not a duration, or not positive
		{"slow not a duration", []string{"--otlp-endpoint", endpoint, "--trace-slow", "fast"}, "", "", `--trace-slow "fast": want a positive duration`},
		{"slow negative", []string{"--otlp-endpoint", endpoint, "--trace-slow", "-1s"}, "", "", `--trace-slow "-1s": want a positive duration`},
		// gRPC is not what the exporter speaks
		{"grpc endpoint", []string{"--otlp-endpoint", "grpc://127.0.0.1:4317"}, "", "", `--otlp-endpoint "grpc://127.0.0.1:4317": scheme "grpc"`},
		// no scheme
		{"no scheme", []string{"--otlp-endpoint", "collector:4318"}, "", "", `--otlp-endpoint "collector:4318"`},
		// a bad endpoint from the environment is blamed on the variable
		{"bad env", nil, "ftp://collector", "", `OTEL_EXPORTER_OTLP_ENDPOINT "ftp://collector": scheme "ftp"`},
		// sampling with nowhere to export
		{"sample without endpoint", []string{"--trace-sample", "0.5"}, "", "", "--trace-sample: traces are exported only to an OTLP collector; add --otlp-endpoint"},
		// from the config file: blamed on its line
		{"bad sample in file", nil, "", "tracing:\n  otlp_endpoint: " + endpoint + "\n  sample: lots\n", `cfg.yaml:3: tracing.sample: want a number, got the string "lots"`},
		{"sample out of range in file", nil, "", "tracing:\n  otlp_endpoint: " + endpoint + "\n  sample: 2\n", `cfg.yaml:3 (key tracing.sample) "2": want a share`},
		{"sample a list in file", nil, "", "tracing:\n  sample: [1]\n", "cfg.yaml:2: tracing.sample: want a number, got a list"},
		{"bad endpoint in file", nil, "", "tracing:\n  otlp_endpoint: nowhere\n", `cfg.yaml:2 (key tracing.otlp_endpoint) "nowhere"`},
		{"slow in file without endpoint", nil, "", "tracing:\n  slow: 200ms\n", "cfg.yaml:2 (key tracing.slow): traces are exported only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(tracing.EnvEndpoint, c.env)
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", lite}, c.args...)
			if c.file != "" {
				path := filepath.Join(dir, "cfg.yaml")
				if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			var out bytes.Buffer
			code := run(context.Background(), args, &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, out.String())
			}
		})
	}
}

// otlpSpans is an OTLP/HTTP receiver that keeps the names of the spans
// it receives.
type otlpSpans struct {
	mu    sync.Mutex
	names []string
}

func (o *otlpSpans) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	req := new(coltrace.ExportTraceServiceRequest)
	if err == nil {
		err = proto.Unmarshal(data, req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.names = append(o.names, s.Name)
			}
		}
	}
	o.mu.Unlock()
	resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(resp)
}

// TestServeTraces: strata serve with --otlp-endpoint (here from the
// environment) and --trace-sample 1 exports each request's spans to the
// collector by the time it stops, and counts them on /metrics; the
// probes are not traced.
func TestServeTraces(t *testing.T) {
	spans := &otlpSpans{}
	collector := httptest.NewServer(spans)
	defer collector.Close()
	t.Setenv(tracing.EnvEndpoint, collector.URL)
	s := startServe(t, "--db", "sqlite://"+filepath.Join(t.TempDir(), "x.db"), "--cache", "--trace-sample", "1")
	for _, path := range []string{"/healthz", "/products/1", "/users/1"} {
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `strata_tracing_traces_total{outcome="sampled"} 2`) {
		t.Errorf("/metrics does not count the 2 sampled traces:\n%s", grepLines(string(metrics), "strata_tracing_"))
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.logs.String())
	}
	spans.mu.Lock()
	defer spans.mu.Unlock()
	got := strings.Join(spans.names, ", ")
	for _, want := range []string{"GET /products/{id}", "GET /users/{id}", "cache.Get", "cache.load"} {
		if !strings.Contains(got, want) {
			t.Errorf("the collector received %s; no %s", got, want)
		}
	}
	if strings.Contains(got, "healthz") {
		t.Errorf("a probe was traced: %s", got)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
