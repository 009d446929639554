// Package demo runs the storefront at each stage of the guide's scale
// journey and measures it with a short, bounded burst of real HTTP traffic
// over every endpoint. Stage 1 (one database, no cache) runs anywhere on the
// embedded SQLite default; later stages plug in as they are built.
package demo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/storefront"
)

// Defaults of a demo run: small enough to seed and drive in seconds.
const (
	DefaultUsers       = 2000
	DefaultProducts    = 500
	DefaultActions     = 20000
	DefaultRequests    = 4000
	DefaultConcurrency = 8
	requestTimeout     = 5 * time.Second
)

// Config sets the size of a demo run; zero fields mean the defaults above.
type Config struct {
	Users, Products, Actions int
	// Requests is the total number of requests of the burst.
	Requests int
	// Concurrency is the number of clients sending at once.
	Concurrency int
	// Dir holds the SQLite database, storefront.db, which is replaced at
	// the start of each run and kept at the end; "" means a new temporary
	// folder, removed at the end.
	Dir string
	// Out receives the summary; nil means os.Stdout.
	Out io.Writer
	// Logger receives the service's logs; nil means a logger that drops
	// them below warnings.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"users", &c.Users, DefaultUsers}, {"products", &c.Products, DefaultProducts},
		{"actions", &c.Actions, DefaultActions}, {"requests", &c.Requests, DefaultRequests},
		{"concurrency", &c.Concurrency, DefaultConcurrency},
	} {
		if *f.v < 0 {
			return fmt.Errorf("demo: %s must not be negative, got %d", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return nil
}

// Result is what a demo run measured.
type Result struct {
	Stages []StageResult
}

// Errors counts the requests of all stages that did not get the expected status.
func (r Result) Errors() int {
	n := 0
	for _, s := range r.Stages {
		for _, e := range s.Endpoints {
			n += e.Errors
		}
	}
	return n
}

// StageResult is the measurement of one stage of the journey.
type StageResult struct {
	Name      string
	Requests  int
	Elapsed   time.Duration
	Endpoints []EndpointResult
}

// EndpointResult holds one endpoint's figures.
type EndpointResult struct {
	Name          string
	Requests      int
	Errors        int
	P50, P95, P99 time.Duration
	// FirstError describes the first unexpected answer, if any.
	FirstError string
}

// Run seeds a fresh SQLite storefront, serves it on a free loopback port,
// drives the burst and prints the summary to cfg.Out.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "strata-demo-")
		if err != nil {
			return Result{}, fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	out := cfg.Out
	fmt.Fprintf(out, "Strata demo: the storefront at each stage of the scale journey\n\n")

	stage := "stage 1: monolith (one SQLite database, no cache)"
	dbPath := filepath.Join(dir, "storefront.db")
	if cfg.Dir != "" { // a kept folder: start from a fresh database each run
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Result{}, fmt.Errorf("demo: %w", err)
			}
		}
	}
	store, err := storefront.Open(ctx, "sqlite://"+dbPath, storefront.Config{Logger: cfg.Logger})
	if err != nil {
		return Result{}, err
	}
	defer store.Close()
	seeded, err := storefront.Seed(ctx, store, storefront.SeedConfig{
		Users: cfg.Users, Products: cfg.Products, Actions: cfg.Actions, RandSeed: 1,
	})
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(out, "%s\n  seeded %d users, %d products, %d actions in %s\n",
		stage, seeded.Users, seeded.Products, seeded.Actions, seeded.Elapsed.Round(time.Millisecond))

	reg := storefront.NewRegistry()
	reg.MustRegister(sqlstats.New(map[string]*sql.DB{"primary": store.DB()}))
	srv := storefront.NewServer("127.0.0.1:0", storefront.NewHandler(store, storefront.HandlerConfig{Registerer: reg, Gatherer: reg, Logger: cfg.Logger}))
	srv.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("demo: listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- storefront.Serve(sctx, srv, ln) }()
	fmt.Fprintf(out, "  serving on %s (metrics at %s/metrics)\n", base, base)

	res := drive(ctx, base, cfg, stage)
	stop()
	if err := <-served; err != nil {
		return Result{}, err
	}
	printStage(out, res)
	result := Result{Stages: []StageResult{res}}
	fmt.Fprintf(out, "\nLater stages of the journey (cache, read replicas, shards) need PostgreSQL and Redis;\n"+
		"`scripts/dev up` starts them on loopback. They join this comparison as they are built.\n")
	return result, nil
}

// endpoint is one kind of request of the burst.
type endpoint struct {
	name   string
	weight int
	want   int // expected status
	build  func(r *rand.Rand, seq int64) (method, path string, body []byte)
}

func endpoints(cfg Config) []endpoint {
	words := []string{"wireless", "coffee", "tent", "novel", "puzzle", "kettle", "sneaker", "guitar", "lamp", "premium headphones", "organic tea", "board game"}
	kinds := []string{"view", "view", "view", "cart", "purchase"}
	user := func(r *rand.Rand) int { return r.Intn(cfg.Users) + 1 }
	product := func(r *rand.Rand) int { return r.Intn(cfg.Products) + 1 }
	return []endpoint{
		{"GET /users/{id}", 25, 200, func(r *rand.Rand, _ int64) (string, string, []byte) {
			return "GET", fmt.Sprintf("/users/%d", user(r)), nil
		}},
		{"GET /products/{id}", 20, 200, func(r *rand.Rand, _ int64) (string, string, []byte) {
			return "GET", fmt.Sprintf("/products/%d", product(r)), nil
		}},
		{"GET /users/{id}/recommendations", 15, 200, func(r *rand.Rand, _ int64) (string, string, []byte) {
			return "GET", fmt.Sprintf("/users/%d/recommendations?limit=10", user(r)), nil
		}},
		{"GET /search", 15, 200, func(r *rand.Rand, _ int64) (string, string, []byte) {
			return "GET", "/search?limit=10&q=" + url.QueryEscape(words[r.Intn(len(words))]), nil
		}},
		{"POST /users/{id}/actions", 10, 201, func(r *rand.Rand, _ int64) (string, string, []byte) {
			return "POST", fmt.Sprintf("/users/%d/actions", user(r)),
				[]byte(fmt.Sprintf(`{"product_id": %d, "kind": %q}`, product(r), kinds[r.Intn(len(kinds))]))
		}},
		{"POST /users", 5, 201, func(_ *rand.Rand, seq int64) (string, string, []byte) {
			return "POST", "/users", []byte(fmt.Sprintf(`{"email": "demo.%d@example.com", "name": "Demo User %d", "region": "eu-west"}`, seq, seq))
		}},
		{"PATCH /users/{id}", 5, 200, func(r *rand.Rand, seq int64) (string, string, []byte) {
			return "PATCH", fmt.Sprintf("/users/%d", user(r)), []byte(fmt.Sprintf(`{"name": "Renamed %d"}`, seq))
		}},
		{"GET /healthz", 2, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/healthz", nil }},
		{"GET /readyz", 2, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/readyz", nil }},
		{"GET /metrics", 1, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/metrics", nil }},
	}
}

// drive sends cfg.Requests requests from cfg.Concurrency clients, each
// waiting for its answer before sending the next (a closed loop: the demo
// shows what the stage does, the load tester measures capacity).
func drive(ctx context.Context, base string, cfg Config, stage string) StageResult {
	eps := endpoints(cfg)
	var total int
	for _, e := range eps {
		total += e.weight
	}
	client := &http.Client{
		Timeout:   requestTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency},
	}
	defer client.CloseIdleConnections()

	type sample struct {
		lat []time.Duration
		err int
		msg string
	}
	samples := make([]sample, len(eps))
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w) + 1))
			for {
				seq := next.Add(1)
				if seq > int64(cfg.Requests) || ctx.Err() != nil {
					return
				}
				x, i := r.Intn(total), 0
				for x >= eps[i].weight {
					x -= eps[i].weight
					i++
				}
				method, path, body := eps[i].build(r, seq)
				t0 := time.Now()
				status, err := do(ctx, client, method, base+path, body)
				lat := time.Since(t0)
				mu.Lock()
				s := &samples[i]
				s.lat = append(s.lat, lat)
				if err != nil || status != eps[i].want {
					s.err++
					if s.msg == "" {
						s.msg = fmt.Sprintf("%s %s: status %d, err %v", method, path, status, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := StageResult{Name: stage, Elapsed: time.Since(start)}
	for i, e := range eps {
		s := samples[i]
		slices.Sort(s.lat)
		res.Requests += len(s.lat)
		res.Endpoints = append(res.Endpoints, EndpointResult{
			Name: e.name, Requests: len(s.lat), Errors: s.err, FirstError: s.msg,
			P50: quantile(s.lat, 0.50), P95: quantile(s.lat, 0.95), P99: quantile(s.lat, 0.99),
		})
	}
	return res
}

func do(ctx context.Context, c *http.Client, method, target string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// quantile returns the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func printStage(out io.Writer, s StageResult) {
	rate := float64(s.Requests) / s.Elapsed.Seconds()
	fmt.Fprintf(out, "  %d requests in %s (%.0f req/s, closed loop)\n\n", s.Requests, s.Elapsed.Round(time.Millisecond), rate)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\trequests\treq/s\tp50\tp95\tp99\terrors\t")
	for _, e := range s.Endpoints {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t\n", e.Name, e.Requests, float64(e.Requests)/s.Elapsed.Seconds(),
			ms(e.P50), ms(e.P95), ms(e.P99), e.Errors)
	}
	tw.Flush()
	for _, e := range s.Endpoints {
		if e.FirstError != "" {
			fmt.Fprintf(out, "  first error on %s: %s\n", e.Name, e.FirstError)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
