package monitor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/monitor"
	"github.com/strata-dev/strata/storefront"
)

// TestParseSLOs: the --slo syntax, and a clear error naming the bad part
// for each way it can be wrong.
func TestParseSLOs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []monitor.SLO
		wantErr string
	}{
		// both SLOs, the defaults' spelling
		{in: "availability=99.9,latency=p99<100ms", want: monitor.DefaultSLOs()},
		// spaces around parts, a finer quantile, seconds
		{in: " latency = p99.9 < 0.25s ", want: []monitor.SLO{{Name: "latency", Objective: 99.9, Threshold: 250 * time.Millisecond}}},
		// none: no burn-rate alerts
		{in: "none", want: []monitor.SLO{}},
		// nothing at all is a mistake, not "none"
		{in: "", wantErr: "SLO list is empty"},
		// no value
		{in: "availability", wantErr: `SLO "availability": want NAME=VALUE`},
		// an unknown SLO is named
		{in: "throughput=99", wantErr: `unknown SLO "throughput"`},
		// a percentage must be a plain number
		{in: "availability=99.9%", wantErr: `"99.9%" is not a percentage`},
		// no exponents or signs
		{in: "availability=-1", wantErr: "is not a percentage"},
		// 100 % leaves no budget
		{in: "availability=100", wantErr: "objective 100 %"},
		// too loose for the page alert's burn rate
		{in: "availability=90", wantErr: "want over 93.056"},
		// latency needs a quantile and a threshold
		{in: "latency=100ms", wantErr: "want latency=pNN<DURATION"},
		// a bad quantile
		{in: "latency=pX<100ms", wantErr: `"pX" is not a quantile`},
		// a bad duration
		{in: "latency=p99<fast", wantErr: `"fast" is not a duration`},
		// a threshold between buckets cannot be measured; the buckets are listed
		{in: "latency=p99<120ms", wantErr: "threshold 120ms is not a bucket of strata_http_request_duration_seconds; want one of 500µs, 1ms"},
		// each SLO once
		{in: "availability=99,availability=99.5", wantErr: "SLO availability given twice"},
		// an empty part between commas
		{in: "availability=99.9,", wantErr: `SLO "": want NAME=VALUE`},
		// a huge input is not echoed back
		{in: strings.Repeat("x", 5000), wantErr: "SLO list is 5000 bytes; want at most 1024"},
		// a long bad part is cut in the message
		{in: "availability=" + strings.Repeat("9", 500), wantErr: "… (513 bytes)"},
	} {
		t.Run(tc.in[:min(len(tc.in), 30)], func(t *testing.T) {
			got, err := monitor.ParseSLOs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "monitor: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSLOs: %v, want an error with %q", err, tc.wantErr)
				}
				if len(err.Error()) > 400 {
					t.Errorf("the message is %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) || got == nil {
				t.Fatalf("ParseSLOs = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseSLOs: any input gives SLOs or an error, never a panic; what
// it accepts writes back (String) to the same SLOs, and generates rules;
// errors stay short.
func FuzzParseSLOs(f *testing.F) {
	for _, s := range []string{"availability=99.9,latency=p99<100ms", "none", "latency=p99.9<1s", "availability=99.95", "latency=p50<5ms,availability=93.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		slos, err := monitor.ParseSLOs(in)
		if err != nil {
			if len(err.Error()) > 500 || !utf8.ValidString(err.Error()) && utf8.ValidString(in) {
				t.Fatalf("error of %d bytes: %.200s", len(err.Error()), err)
			}
			return
		}
		var parts []string
		for _, s := range slos {
			parts = append(parts, s.String())
		}
		if len(parts) > 0 {
			again, err := monitor.ParseSLOs(strings.Join(parts, ","))
			if err != nil || !slices.Equal(again, slos) {
				t.Fatalf("%q → %v → %q → %v, %v", in, slos, strings.Join(parts, ","), again, err)
			}
		}
		if _, err := monitor.Generate(monitor.Config{SLOs: slos}); err != nil {
			t.Fatalf("ParseSLOs(%q) accepted SLOs Generate refuses: %v", in, err)
		}
	})
}

// TestHTTPBuckets: HTTPBuckets are the buckets the storefront registers,
// so a latency SLO threshold is a bucket the metric has.
func TestHTTPBuckets(t *testing.T) {
	ctx := context.Background()
	store, err := storefront.Open(ctx, testdb.SQLite(t), storefront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(storefront.NewHandler(store, storefront.HandlerConfig{Registerer: reg, Gatherer: reg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "strata_http_request_duration_seconds" {
			continue
		}
		var got []float64
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			got = append(got, b.GetUpperBound())
		}
		if !slices.Equal(got, monitor.HTTPBuckets()) {
			t.Fatalf("the storefront's buckets are %v; monitor.HTTPBuckets %v", got, monitor.HTTPBuckets())
		}
		return
	}
	t.Fatal("no strata_http_request_duration_seconds after a request")
}
