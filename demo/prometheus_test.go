package demo

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnnouncePrometheus checks what the demo says of Prometheus in each
// case, and the target file it keeps while a stage runs.
func TestAnnouncePrometheus(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/-/ready" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	}))
	defer starting.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there now
	targets := filepath.Join(t.TempDir(), "demo.yml")

	cases := []struct {
		name         string
		url, targets string
		want         string // in the output; "" means no output at all
		watches      bool   // the stages go into the target file
	}{
		// No Prometheus named: not a word about it.
		{"none", "", targets, "", false},
		// A Prometheus that is not there is named, with how to start one.
		{"not there", gone.URL, targets, "Prometheus: " + gone.URL + " does not answer (", false},
		// Not ready yet (Prometheus answers 503 while it replays its WAL).
		{"not ready", starting.URL, targets, "does not answer (GET /-/ready: 503", false},
		// One that answers, without a target file: where it is, and why it
		// does not see the stages.
		{"no targets", ready.URL + "/", "", "Prometheus: " + ready.URL + " (it scrapes `strata serve`, not the demo's stages", false},
		// With a target file: it scrapes each stage.
		{"targets", ready.URL, targets, "Prometheus: " + ready.URL + ", scraping each stage while it runs (target file " + targets, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			j := &journey{cfg: Config{Prometheus: c.url, PrometheusTargets: c.targets}, out: &out}
			j.announcePrometheus(context.Background())
			if c.want == "" && out.Len() > 0 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("output %q, want it to say %q", out.String(), c.want)
			}
			j.watchStage("2 (L1)", "127.0.0.1:4242")
			data, err := os.ReadFile(targets)
			if !c.watches {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a target file (%q, %v) without a Prometheus to read it", data, err)
				}
				return
			}
			var groups []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			}
			if err := json.Unmarshal(data, &groups); err != nil || len(groups) != 1 ||
				len(groups[0].Targets) != 1 || groups[0].Targets[0] != "127.0.0.1:4242" || groups[0].Labels["stage"] != "2 (L1)" {
				t.Fatalf("target file %s: %v, want the stage's address labelled with the stage", data, err)
			}
			j.unwatch()
			if _, err := os.Stat(targets); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the target file is still there after the demo: %v", err)
			}
		})
	}
}

// TestWatchStageFails checks that a target file the demo cannot write is
// reported once, and the demo goes on without it.
func TestWatchStageFails(t *testing.T) {
	var out strings.Builder
	j := &journey{out: &out, prom: promWatch{url: "http://x", targets: filepath.Join(t.TempDir(), "no", "such", "folder", "demo.yml"), up: true}}
	j.watchStage("1", "127.0.0.1:1")
	j.watchStage("2", "127.0.0.1:2")
	if n := strings.Count(out.String(), "Prometheus will not scrape the stages"); n != 1 {
		t.Fatalf("output %q: want the failure reported once", out.String())
	}
	j.unwatch() // nothing to remove, nothing to say
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("output %q: unwatch said something", out.String())
	}
}
