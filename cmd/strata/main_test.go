package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // a bound far past any command here
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	wrongType := filepath.Join(dir, "type.yaml")
	badPlan := filepath.Join(dir, "plan.yaml")
	exists := filepath.Join(dir, "exists.yaml")
	infPlan := filepath.Join(dir, "inf.yaml")
	goodPlan := filepath.Join(dir, "good.yaml")
	attackJSON := filepath.Join(dir, "attack.json")
	for path, body := range map[string]string{bad: "db: sqlite://x.db\nport: 80\n", wrongType: "addr: [1, 2]\n",
		badPlan: "target: http://127.0.0.1:1\nrequests: [{path: /}]\nphases:\n  - name: a\n    rate: -3\n", exists: "x",
		infPlan:    "target: http://127.0.0.1:1\nrequests: [{path: /}]\nphases:\n  - name: a\n    rate: .inf\n    duration: 1s\n",
		goodPlan:   "target: http://127.0.0.1:1\nrequests: [{path: /}]\nphases:\n  - name: a\n    rate: 10\n    duration: 1h\n",
		attackJSON: `{"requests": 10, "errors": 0, "achieved_rps": 10, "latency_ms": {"p50": 1}}`} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout+stderr
	}{
		// Help works on every command.
		{"root help", []string{"--help"}, 0, "strata demo"},
		{"serve help", []string{"serve", "--help"}, 0, "--db"},
		{"seed help", []string{"seed", "--help"}, 0, "--actions"},
		{"demo help", []string{"demo", "--help"}, 0, "--full"},
		{"version", []string{"version"}, 0, "strata"},
		// Usage errors exit 2 and say what was wrong.
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"serve", "--nope"}, 2, "unknown flag: --nope"},
		{"flag wrong type", []string{"seed", "--users", "many"}, 2, "--users"},
		{"stray argument", []string{"serve", "extra"}, 2, "takes no arguments"},
		{"bad log level", []string{"--log-level", "loud", "version"}, 2, "--log-level"},
		{"bad log level used", []string{"--log-level", "loud", "seed", "--users", "1"}, 2, "--log-level"},
		{"bad addr", []string{"serve", "--addr", "nowhere"}, 2, "--addr"},
		{"missing config", []string{"serve", "--config", filepath.Join(dir, "none.yaml")}, 2, "no such file"},
		{"unknown config key", []string{"serve", "--config", bad}, 2, ":2: unknown key \"port\""},
		{"config wrong type", []string{"serve", "--config", wrongType}, 2, "type.yaml:1: addr: want a string, got a list"},
		{"zero users", []string{"seed", "--users", "0"}, 2, "--users must be at least 1"},
		{"negative actions", []string{"seed", "--actions", "-1"}, 2, "--actions must not be negative"},
		{"attack help", []string{"loadtest", "attack", "--help"}, 0, "--connections"},
		{"attack no rate", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--duration", "1s"}, 2, "--rate is required"},
		{"attack bad rate", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "fast", "--duration", "1s"}, 2, "--rate"},
		{"attack NaN rate", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "NaN", "--duration", "1s"}, 2, "--rate \"NaN\""},
		{"attack infinite rate", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "Inf", "--duration", "1s"}, 2, "--rate \"Inf\""},
		{"attack too many connections", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "5", "--duration", "1s", "--connections", "100000000"}, 2, "Connections: 100000000"},
		{"attack bad method", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "5", "--duration", "1s", "--method", "GE T"}, 2, "Method: \"GE T\" is not an HTTP method"},
		{"attack bad duration", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "5", "--duration", "-1s"}, 2, "--duration"},
		{"attack bad threshold", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "5", "--duration", "1s", "--threshold", "p(99)<100"}, 2, "needs a unit"},
		{"attack bad url", []string{"loadtest", "attack", "ftp://x", "--rate", "5", "--duration", "1s"}, 2, "Targets[0].URL"},
		{"threshold of a phase in attack", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "5", "--duration", "1s", "--threshold", "breaking_point>=5"}, 2, "measured by a plan's phases"},
		{"run help", []string{"loadtest", "run", "--help"}, 0, "--split"},
		{"run no plan", []string{"loadtest", "run", filepath.Join(dir, "none.yaml")}, 2, "no such file"},
		{"run bad plan", []string{"loadtest", "run", badPlan}, 2, "plan.yaml:5: phases[0].rate: -3: want requests per second"},
		{"run infinite rate", []string{"loadtest", "run", infPlan}, 2, "inf.yaml:5: phases[0].rate: +Inf: want requests per second"},
		{"run scale overflows", []string{"loadtest", "run", goodPlan, "--scale", "1e300"}, 2, "after scale 1e+300 is over 168h0m0s"},
		{"run too many connections", []string{"loadtest", "run", goodPlan, "--set", "connections=100000000"}, 2, "connections: 100000000: want 1 to 65536"},
		{"run bad set", []string{"loadtest", "run", badPlan, "--set", "a.rate"}, 2, "want key=value"},
		{"run bad scale", []string{"loadtest", "run", badPlan, "--scale", "0"}, 2, "--scale 0"},
		{"run bad split", []string{"loadtest", "run", badPlan, "--split", "3/2"}, 2, "--split \"3/2\""},
		{"run bad start", []string{"loadtest", "run", badPlan, "--start-at", "soon"}, 2, "--start-at"},
		{"init exists", []string{"loadtest", "init", "-o", exists}, 2, "--force replaces it"},
		{"init bad target", []string{"loadtest", "init", "--target", "nowhere"}, 2, "target"},
		{"merge nothing", []string{"loadtest", "merge", filepath.Join(dir, "none.json")}, 2, "no such file"},
		{"merge not json", []string{"loadtest", "merge", bad}, 2, "not a load-test report"},
		{"merge an attack's json", []string{"loadtest", "merge", attackJSON}, 2, "no phases (is it an attack's --json?"},
		{"demo full and smoke", []string{"demo", "--full", "--smoke"}, 2, "--full and --smoke: choose one"},
		{"demo bad rate", []string{"demo", "--rate", "0.5"}, 2, "Rate 0.5: want 1 to 50000"},
		{"replica without postgres", []string{"serve", "--replica", "postgres://a@127.0.0.1/x", "--addr", "127.0.0.1:0", "--db", "sqlite://" + filepath.Join(dir, "r.db")}, 2, "not PostgreSQL"},
		{"bad db scheme", []string{"serve", "--db", "mysql://localhost/x", "--addr", "127.0.0.1:0"}, 2, "--db: database: bad URL: unsupported scheme"},
		// Query samples are for strata advise, which needs PostgreSQL.
		{"sample queries on sqlite", []string{"serve", "--sample-queries", "--addr", "127.0.0.1:0", "--db", "sqlite://" + filepath.Join(dir, "s.db")}, 2, "--sample-queries: the samples are for strata advise, which needs PostgreSQL"},
		// Runtime errors exit 1.
		{"attack refused", []string{"loadtest", "attack", "http://127.0.0.1:1/", "--rate", "20", "--duration", "200ms"}, 1, "requests failed"},
		{"unreachable postgres", []string{"seed", "--db", "postgres://strata@127.0.0.1:1/x?sslmode=disable", "--users", "1", "--products", "1"}, 1, "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(out+errOut, c.want) {
				t.Fatalf("strata %v: exit %d, want %d; output lacks %q?\nstdout: %s\nstderr: %s", c.args, code, c.code, c.want, out, errOut)
			}
		})
	}
}

func TestCLISeedAndServe(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "s.db")
	code, out, errOut := runCLI(t, "seed", "--db", db, "--users", "50", "--products", "20", "--actions", "500")
	if code != 0 || !strings.Contains(out, "seeded 50 users, 20 products, 500 actions") {
		t.Fatalf("seed: exit %d\n%s\n%s", code, out, errOut)
	}
	// Seeding a full database again is refused; --reset allows it.
	if code, _, errOut := runCLI(t, "seed", "--db", db, "--users", "5", "--products", "5", "--actions", "5"); code != 1 || !strings.Contains(errOut, "already holds data") {
		t.Fatalf("second seed: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "seed", "--db", db, "--users", "5", "--products", "5", "--actions", "5", "--reset"); code != 0 {
		t.Fatalf("seed --reset: exit %d: %s", code, errOut)
	}

	// A config file supplies what flags do not; port 0 picks a free port,
	// which serve logs.
	cfg := filepath.Join(dir, "strata.yaml")
	if err := os.WriteFile(cfg, []byte("db: "+db+"\naddr: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var sout, serr lockedBuffer
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, &sout, &serr) }()
	addrRE := regexp.MustCompile(`addr=http://(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if m := addrRE.FindStringSubmatch(serr.String()); m != nil {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address:\n%s", serr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/users/3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /users/3: %d", resp.StatusCode)
	}
	cancel() // as SIGTERM does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d: %s", code, serr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

// TestCLIDemo runs the smoke demo on SQLite (the demo package's own test
// runs every stage): it exits 0, prints the side-by-side table, and writes
// the HTML report readable by others, naming its absolute path; a kept
// --dir can be used again.
func TestCLIDemo(t *testing.T) {
	t.Setenv("STRATA_REDIS_URL", "")
	t.Setenv("STRATA_PG_URL", "")
	t.Setenv("STRATA_PG_REPLICA_URLS", "")
	t.Setenv("STRATA_PG_SHARD_URLS", "")
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	var out string
	for range 2 { // a kept --dir can be used again
		var code int
		var errOut string
		code, out, errOut = runCLI(t, "demo", "--smoke", "--rate", "100", "--users", "200", "--products", "50", "--actions", "2000", "--dir", dir, "--html", html)
		if code != 0 {
			t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
		}
	}
	for _, want := range []string{"smoke run", "stage 1: monolith", "stage 2: read-through cache", "the journey side by side",
		"p50 / p99", "DB queries per request", "cache hit ratio", "breaking point", "verdict", "PASSED",
		"verdicts, on loadtest's criteria", "stage 3: service split", "its budgets", "recommendations back",
		"overload: stage 1 (no cache) at 3 ×", "with the overload controller",
		"the load-test report, with charts: " + html, "demo finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	data, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stage 1 (no cache): baseline", "stage 2 (L1): stress", "stage 3 (split, L1): baseline",
		"stage 3 (split, L1): recommendations down", "stage 1 (no cache): overload, with the controller: critical"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	if fi, err := os.Stat(html); err != nil || fi.Mode().Perm()&0o044 == 0 {
		t.Errorf("the report is not readable by others: %v %v", fi.Mode(), err)
	}
}

// lockedBuffer is a bytes.Buffer safe to write from the server's goroutine
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCLIAttack: an attack on a local server prints the figures and writes
// the JSON the issue names.
// TestCLILoadtestRun: init writes the default plan; run cuts it to a
// second of baseline with --set, writes JSON, JUnit and HTML, and exits by
// the verdict; merge reads the JSON back.
func TestCLILoadtestRun(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	if code, out, errOut := runCLI(t, "loadtest", "init", "-o", plan, "--target", srv.URL, "--current-rps", "50"); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	short := []string{"--set", "cooldown=0s", "--set", "baseline.duration=1s", "--set", "stress.skip=true", "--set", "spike.skip=true", "--set", "endurance.skip=true", "--quiet"}
	jsonPath, junit, html := filepath.Join(dir, "r.json"), filepath.Join(dir, "j.xml"), filepath.Join(dir, "r.html")
	code, out, errOut := runCLI(t, append([]string{"loadtest", "run", plan, "--json", jsonPath, "--junit", junit, "--html", html}, short...)...)
	if code != 0 || !strings.Contains(out, "overall: PASSED") {
		t.Fatalf("run: exit %d\n%s%s", code, out, errOut)
	}
	for _, p := range []string{jsonPath, junit, html} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	code, out, errOut = runCLI(t, "loadtest", "merge", jsonPath)
	if code != 0 || !strings.Contains(out, "overall: PASSED") {
		t.Fatalf("merge: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(jsonPath); err != nil || fi.Mode().Perm()&0o044 == 0 {
		t.Errorf("the report is not readable by others: %v %v", fi.Mode(), err)
	}
	code, _, errOut = runCLI(t, "loadtest", "merge", jsonPath, jsonPath)
	if code != 2 || !strings.Contains(errOut, "not a slice of a split run") {
		t.Fatalf("merging a report with itself: exit %d\n%s", code, errOut)
	}
	fail.Store(true)
	code, out, errOut = runCLI(t, append([]string{"loadtest", "run", plan}, short...)...)
	if code != 1 || !strings.Contains(out, "overall: FAILED") || !strings.Contains(errOut, "FAILED") {
		t.Fatalf("a failing target: exit %d\n%s%s", code, out, errOut)
	}
}

func TestCLIAttack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "out.json")
	code, out, errOut := runCLI(t, "loadtest", "attack", srv.URL, "--rate", "100", "--duration", "500ms", "--json", path)
	if code != 0 || !strings.Contains(out, "achieved") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Requests    int64              `json:"requests"`
		Errors      *int64             `json:"errors"`
		AchievedRPS float64            `json:"achieved_rps"`
		Latency     map[string]float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Requests < 45 || got.Errors == nil || *got.Errors != 0 || got.AchievedRPS < 80 {
		t.Fatalf("JSON %s", data)
	}
	for _, k := range []string{"p50", "p90", "p95", "p99", "max"} {
		if v, ok := got.Latency[k]; !ok || v <= 0 {
			t.Errorf("latency_ms.%s = %v, %v", k, v, ok)
		}
	}
	// Thresholds gate the exit code.
	code, out, _ = runCLI(t, "loadtest", "attack", srv.URL, "--rate", "50", "--duration", "200ms", "--threshold", "p(99)<5s", "--threshold", "rate<0.01")
	if code != 0 || strings.Count(out, "PASSED") != 2 {
		t.Fatalf("passing thresholds: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, "loadtest", "attack", srv.URL, "--rate", "50", "--duration", "200ms", "--threshold", "rps>=100000")
	if code != 1 || !strings.Contains(out, "FAILED  rps>=100000") || !strings.Contains(errOut, "1 of 1 thresholds failed") {
		t.Fatalf("failing threshold: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
