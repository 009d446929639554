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

	"github.com/strata-dev/strata/internal/testdb"
)

// TestServeHedgeErrors: --hedge where no read could be hedged (a hedge
// goes to a second replica, never the primary) is a usage error naming
// the flag, before anything connects.
func TestServeHedgeErrors(t *testing.T) {
	lite := "sqlite://" + filepath.Join(t.TempDir(), "x.db")
	cfg := func(body string) string { // a file cfg.yaml of its own
		path := filepath.Join(t.TempDir(), "cfg.yaml")
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
		// no replica at all
		{"no replicas", []string{"--db", lite, "--hedge"}, "--hedge: hedged reads need replicas; give two or more with --replica"},
		// one replica: nowhere to send a hedge
		{"one replica", []string{"--db", "postgres://a@127.0.0.1:1/x", "--replica", "postgres://a@127.0.0.1:1/y", "--hedge"},
			"--hedge: hedged reads need two replicas or more (a hedge goes to another replica, never the primary); --replica gives one"},
		// the same from the config file: the error names its line
		{"one replica in the file", []string{"--config", cfg("db: postgres://a@127.0.0.1:1/x\nreplicas: [postgres://a@127.0.0.1:1/y]\nhedge: true\n")},
			"cfg.yaml:3 (key hedge): hedged reads need two replicas or more (a hedge goes to another replica, never the primary); config "},
		// hedge not a boolean
		{"hedge not a boolean", []string{"--config", cfg("hedge: often\n")}, `cfg.yaml:1: hedge: want true or false, got the string "often"`},
		// the flag wins over the file
		// (the next check's error, not the hedge's)
		{"flag off over the file", []string{"--db", lite, "--hedge=false", "--config", cfg("hedge: true\n"), "--search-tier", "bogus"}, "--search-tier: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...), &out, &out)
			if code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, c.want, out.String())
			}
		})
	}
}

// TestServeHedge: serve --hedge with two replicas turns hedging on in the
// replica router: its outcomes are exported at 0 from the start, and
// reads are answered; without --hedge there is no hedge series.
func TestServeHedge(t *testing.T) {
	primary := testdb.Postgres(t)
	replicas := testdb.PostgresReplicas(t, primary)
	args := []string{"--db", primary, "--replica", replicas[0], "--replica", replicas[1]}
	for _, c := range []struct {
		name  string
		hedge bool
	}{{"hedge", true}, {"no hedge", false}} {
		t.Run(c.name, func(t *testing.T) {
			a := args
			if c.hedge {
				a = append(a, "--hedge")
			}
			s := startServe(t, a...)
			for _, path := range []string{"/products/1", "/search?q=x"} {
				resp, err := http.Get(s.base + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("GET %s: %d", path, resp.StatusCode)
				}
			}
			resp, err := http.Get(s.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, o := range []string{"won", "lost", "failed", "skipped_budget", "skipped_no_replica"} {
				series := `strata_replica_hedges_total{outcome="` + o + `"}`
				if got := strings.Contains(string(body), series); got != c.hedge {
					t.Errorf("/metrics has %s: %v, want %v", series, got, c.hedge)
				}
			}
			if code := s.stop(); code != 0 {
				t.Fatalf("serve exit %d:\n%s", code, s.logs.String())
			}
		})
	}
}
