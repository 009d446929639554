// Package testprom hands tests a real Prometheus server of their own: it
// starts the prometheus binary (Debian's package, which scripts/dev up
// installs) on a free 127.0.0.1 port with a configuration the test gives
// (scrape targets, intervals, rule files) in a temporary folder, stops it
// when the test ends, and reads it through the HTTP API: instant queries,
// the alerts' states, the rules' health, the targets.
//
// Without the binary a test is skipped on a developer's machine and fails
// when CI is set: CI must never pass by skipping.
package testprom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
)

// Binary is the name of the Prometheus server's executable, looked up in PATH.
const Binary = "prometheus"

// DefaultInterval is the scrape and evaluation interval of a Config that
// gives none: short, so that a test sees a change within a couple of
// seconds (Prometheus's own default is a minute).
const DefaultInterval = time.Second

// startTimeout bounds the wait for a new server to say it is ready.
const startTimeout = 30 * time.Second

// stopTimeout bounds the wait for a server to exit after SIGTERM, after
// which it is killed.
const stopTimeout = 10 * time.Second

// pollInterval is how often the WaitFor helpers ask again.
const pollInterval = 100 * time.Millisecond

// requestTimeout bounds one HTTP request to the server.
const requestTimeout = 10 * time.Second

// Job is one scrape job: Prometheus labels what it scrapes from Targets
// job=Name and instance=the target.
type Job struct {
	Name        string   // the job label, e.g. storefront
	Targets     []string // host:port of each target
	MetricsPath string   // "" means /metrics
}

// Config is what a private Prometheus runs with. Its zero value is a
// server that scrapes nothing and evaluates no rules.
type Config struct {
	Jobs []Job
	// ScrapeInterval is the global scrape interval, and each scrape's
	// timeout; 0 means DefaultInterval.
	ScrapeInterval time.Duration
	// EvaluationInterval is how often rules are evaluated; 0 means
	// ScrapeInterval.
	EvaluationInterval time.Duration
	// RuleFiles are paths of rule files (globs allowed), loaded at start
	// and at every Reload.
	RuleFiles []string
}

// Server is a running private Prometheus. Its methods that take a
// context talk to it over HTTP and may be called from any goroutine; the
// WaitFor helpers fail the test, so call them from the test's goroutine.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// Dir is the server's folder: prometheus.yml, data/, prometheus.log.
	Dir string

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	client *http.Client
}

// Start starts a private Prometheus with cfg on a free loopback port and
// waits until it is ready; it stops when t ends. Without the prometheus
// binary t is skipped, or fails when CI is set.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		if testdb.Required() {
			t.Fatalf("testprom: %s is not installed and CI is set (scripts/dev up installs it)", Binary)
		}
		t.Skipf("testprom: %s not installed; scripts/dev up installs it", Binary)
	}
	dir := t.TempDir()
	conf, err := configFile(cfg)
	if err != nil {
		t.Fatalf("testprom: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), conf, 0o644); err != nil {
		t.Fatalf("testprom: %v", err)
	}
	addr := freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatalf("testprom: %v", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-lifecycle", // POST /-/reload
		"--log.level=info")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testprom: start %s: %v", bin, err)
	}
	s := &Server{
		URL: "http://" + addr, Dir: dir, t: t, cmd: cmd,
		exited: make(chan struct{}),
		client: &http.Client{Timeout: requestTimeout},
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.stop)
	s.waitReady()
	return s
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testprom: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// configFile renders cfg as a Prometheus configuration file. It is JSON,
// which is YAML too.
func configFile(cfg Config) ([]byte, error) {
	scrape := cfg.ScrapeInterval
	if scrape == 0 {
		scrape = DefaultInterval
	}
	eval := cfg.EvaluationInterval
	if eval == 0 {
		eval = scrape
	}
	if scrape < 0 || eval < 0 {
		return nil, errors.New("negative ScrapeInterval or EvaluationInterval")
	}
	type staticConfig struct {
		Targets []string `json:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `json:"job_name"`
		MetricsPath   string         `json:"metrics_path,omitempty"`
		StaticConfigs []staticConfig `json:"static_configs"`
	}
	var jobs []scrapeConfig
	seen := map[string]bool{}
	for _, j := range cfg.Jobs {
		if j.Name == "" || seen[j.Name] {
			return nil, fmt.Errorf("job %q: every job needs a name of its own", j.Name)
		}
		seen[j.Name] = true
		jobs = append(jobs, scrapeConfig{JobName: j.Name, MetricsPath: j.MetricsPath,
			StaticConfigs: []staticConfig{{Targets: slices.Clone(j.Targets)}}})
	}
	rules := make([]string, 0, len(cfg.RuleFiles))
	for _, f := range cfg.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		rules = append(rules, abs)
	}
	return json.MarshalIndent(map[string]any{
		"global": map[string]string{
			"scrape_interval":     promDuration(scrape),
			"scrape_timeout":      promDuration(scrape), // at most the interval
			"evaluation_interval": promDuration(eval),
		},
		"rule_files":     rules,
		"scrape_configs": jobs,
	}, "", "  ")
}

// promDuration writes d as a Prometheus duration, in whole milliseconds.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// waitReady waits until the server answers /-/ready, failing t with its
// log if it exits or takes longer than startTimeout.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			s.t.Fatalf("testprom: prometheus exited at start:\n%s", s.LogTail(40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.get(ctx, "/-/ready", nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testprom: prometheus on %s not ready after %v: %v\n%s", s.URL, startTimeout, err, s.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop is the cleanup: SIGTERM, then SIGKILL after stopTimeout; the log's
// tail when the test failed.
func (s *Server) stop() {
	if s.t.Failed() {
		s.t.Logf("testprom: the last lines of %s:\n%s", filepath.Join(s.Dir, "prometheus.log"), s.LogTail(30))
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "prometheus.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Reload makes the server read its configuration and rule files again
// (POST /-/reload); it returns once they are loaded, or with the reason
// they are not.
func (s *Server) Reload(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("testprom: reload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("testprom: reload: %s: %s", resp.Status, strings.TrimSpace(b.String()))
	}
	return nil
}
