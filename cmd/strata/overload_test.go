package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeOverloadErrors: a bad --sla or --capacity-rps, from a flag or
// the config file, is a usage error (exit 2) naming where it came from,
// and so is either of them without overload control.
func TestServeOverloadErrors(t *testing.T) {
	dir := t.TempDir()
	lite := "sqlite://" + filepath.Join(dir, "x.db")
	cfg := func(body string) string {
		path := filepath.Join(dir, strings.NewReplacer(" ", "", ":", "", "\n", "").Replace(body)+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		// an SLA that is not a duration
		{"bad sla", []string{"--overload", "--sla", "fast"}, `--sla "fast": not a duration`},
		// an SLA of nothing
		{"zero sla", []string{"--overload", "--sla", "0s"}, `--sla "0s": must be positive`},
		// a capacity below zero
		{"negative capacity", []string{"--overload", "--capacity-rps", "-10"}, "--capacity-rps -10: want a rate"},
		// a capacity that is not a number at all
		{"NaN capacity", []string{"--overload", "--capacity-rps", "NaN"}, "--capacity-rps NaN: want a rate"},
		// the SLA with overload control off
		{"sla alone", []string{"--sla", "50ms"}, "--sla: applies to overload control, which is off"},
		// the capacity with overload control off
		{"capacity alone", []string{"--capacity-rps", "900"}, "--capacity-rps: applies to overload control, which is off"},
		// a bad SLA in the file is blamed on its line
		{"sla in file", []string{"--config", cfg("overload:\n  enabled: true\n  sla: soon\n")}, `(key overload.sla) "soon": not a duration`},
		// a capacity in the file that is not a number
		{"capacity a string", []string{"--config", cfg("overload:\n  capacity_rps: lots\n")}, `:2: overload.capacity_rps: want a number, got the string "lots"`},
		// a capacity in the file with overload control off
		{"capacity in file alone", []string{"--config", cfg("overload:\n  capacity_rps: 900\n")}, "(key overload.capacity_rps): applies to overload control, which is off"},
		// an unknown key of the section
		{"unknown key", []string{"--config", cfg("overload:\n  limit: 5\n")}, `unknown key "overload.limit" (known here: capacity_rps, enabled, sla)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", lite}, c.args...), &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, out.String())
			}
		})
	}
}

// TestServeOverload: strata serve --overload --capacity-rps, or the same
// from the config file, says so in its log line and exports the
// limiter's metrics, the utilisation among them; without it, none.
func TestServeOverload(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "s.db")
	if code, _, errOut := runCLI(t, "seed", "--db", db, "--users", "20", "--products", "20", "--actions", "100"); code != 0 {
		t.Fatalf("seed: exit %d: %s", code, errOut)
	}
	file := filepath.Join(dir, "strata.yaml")
	if err := os.WriteFile(file, []byte("overload:\n  enabled: true\n  sla: 80ms\n  capacity_rps: 900.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		args    []string
		log     string
		metrics bool
	}{
		{"flags", []string{"--overload", "--capacity-rps", "900"}, `overload_control="on (SLA p99 < 100ms, capacity 900 requests/s)"`, true},
		{"config", []string{"--config", file}, `overload_control="on (SLA p99 < 80ms, capacity 900.5 requests/s)"`, true},
		{"off", nil, "overload_control=off", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServe(t, append([]string{"--db", db}, c.args...)...)
			if !strings.Contains(s.logs.String(), c.log) {
				t.Errorf("logs lack %s:\n%s", c.log, s.logs.String())
			}
			if code := get(t, s.base+"/users/1"); code != 200 {
				t.Errorf("GET /users/1: %d", code)
			}
			resp, err := http.Get(s.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{"strata_overload_limit ", `strata_overload_admitted_total{class="critical"} 1`, "strata_overload_utilisation_ratio "} {
				if strings.Contains(string(body), m) != c.metrics {
					t.Errorf("/metrics has %q: %v, want %v", m, !c.metrics, c.metrics)
				}
			}
		})
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
