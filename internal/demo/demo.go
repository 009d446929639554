// Package demo runs the storefront at each stage of the guide's scale
// journey and measures it with a short, bounded burst of real HTTP traffic
// over every endpoint. Stage 1 (one database, no cache) and stage 2 with
// an in-process cache run anywhere on the embedded SQLite default; stage 2
// with Redis as L2 runs when a Redis client is given. Later stages plug in
// as they are built.
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
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/replica"
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
	// Redis, when set, adds the stage with Redis as the cache's L2.
	Redis rueidis.Client
	// Postgres and Replicas, when both set, add the replica stage: the
	// storefront seeded into the schema strata_demo of the PostgreSQL
	// primary at Postgres (replaced each run), served first by the primary
	// alone, then with reads on the streaming replicas.
	Postgres string
	Replicas []string
	// LoadTest runs the scaled-down default plan (baseline, stress,
	// spike, endurance) against every stage after its burst, prints the
	// stages' verdicts side by side, and writes the combined report to
	// HTML when that is set.
	LoadTest bool
	HTML     string
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
	// Report holds every stage's load-test phases (named "stage: phase")
	// when Config.LoadTest is set.
	Report *loadtest.Report
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
	Short     string // a short name, for the side-by-side table
	Clients   int
	Requests  int
	Elapsed   time.Duration
	Endpoints []EndpointResult
	// Plan is the stage's load-test report, when Config.LoadTest is set.
	Plan *loadtest.Report
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
	fmt.Fprintf(out, "seeded an SQLite database with %d users, %d products, %d actions in %s\n",
		seeded.Users, seeded.Products, seeded.Actions, seeded.Elapsed.Round(time.Millisecond))

	stages := []stage{
		{name: "stage 1: monolith, one database, no cache"},
		{name: "stage 2: read-through cache, in-process L1", cached: true},
	}
	if cfg.Redis != nil {
		stages = append(stages, stage{name: "stage 2: read-through cache, L1 + Redis L2", cached: true, redis: cfg.Redis})
	}
	var result Result
	for i, st := range stages {
		res, err := runStage(ctx, cfg, store, st, i)
		if err != nil {
			return result, err
		}
		result.Stages = append(result.Stages, res)
	}
	if cfg.Postgres != "" && len(cfg.Replicas) > 0 {
		res, err := runReplicaStages(ctx, cfg, len(stages))
		result.Stages = append(result.Stages, res...)
		if err != nil {
			return result, err
		}
	}
	printComparison(out, result)
	if cfg.LoadTest {
		result.Report = journeyReport(result)
		printJourney(out, result)
		if cfg.HTML != "" {
			if err := writeHTML(cfg.HTML, result.Report); err != nil {
				return result, err
			}
			fmt.Fprintf(out, "\nthe load-test report, with charts: %s\n", cfg.HTML)
		}
	}
	if cfg.Redis == nil || cfg.Postgres == "" || len(cfg.Replicas) == 0 {
		fmt.Fprintf(out, "\nThe Redis level of stage 2 and the read replicas need servers: `eval \"$(scripts/dev up)\"`\n"+
			"starts Redis, a PostgreSQL primary and two streaming replicas on loopback, and the demo then\n"+
			"finds them through STRATA_REDIS_URL, STRATA_PG_URL and STRATA_PG_REPLICA_URLS.\n")
	}
	return result, nil
}

// demoSchema is where the replica stage keeps its data on the primary.
const demoSchema = "strata_demo"

// runReplicaStages seeds the storefront on PostgreSQL and measures it
// served by the primary alone, then with reads on the replicas.
func runReplicaStages(ctx context.Context, cfg Config, first int) ([]StageResult, error) {
	admin, err := sql.Open("pgx", cfg.Postgres)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	_, err = admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+demoSchema+" CASCADE; CREATE SCHEMA "+demoSchema)
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("demo: prepare schema %s on %s: %w", demoSchema, cfg.Postgres, err)
	}
	inSchema := func(u string) string {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		return u + sep + "search_path=" + demoSchema
	}
	primary, err := storefront.Open(ctx, inSchema(cfg.Postgres), storefront.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer primary.Close()
	seeded, err := storefront.Seed(ctx, primary, storefront.SeedConfig{
		Users: cfg.Users, Products: cfg.Products, Actions: cfg.Actions, RandSeed: 1,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "\nseeded PostgreSQL (schema %s) with %d users, %d products, %d actions in %s\n",
		demoSchema, seeded.Users, seeded.Products, seeded.Actions, seeded.Elapsed.Round(time.Millisecond))
	var urls []string
	for _, u := range cfg.Replicas {
		urls = append(urls, inSchema(u))
	}
	replicated, err := storefront.Open(ctx, inSchema(cfg.Postgres), storefront.Config{Logger: cfg.Logger, Replicas: urls})
	if err != nil {
		return nil, err
	}
	defer replicated.Close()
	// The replicas must have replayed the seed before they serve.
	r := replicated.Router()
	tok, err := r.Position(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.Read(replica.WithToken(ctx, tok), func(context.Context, replica.Querier) error { return nil }); err != nil {
		return nil, err
	}
	var out []StageResult
	for i, st := range []stage{
		{name: "stage 1 on PostgreSQL: the primary alone, no cache", short: "PG primary", store: primary},
		{name: fmt.Sprintf("stage 2: reads on %d streaming replicas, no cache", len(urls)), short: fmt.Sprintf("PG + %d replicas", len(urls)), store: replicated},
	} {
		res, err := runStage(ctx, cfg, st.store, st, first+i)
		if err != nil {
			return out, err
		}
		res.Short = st.short
		out = append(out, res)
	}
	return out, nil
}

// stage is one step of the journey the demo measures.
type stage struct {
	name   string
	short  string            // the column head of the comparison; "" derives it
	store  *storefront.Store // nil: the SQLite store
	cached bool              // read through the stage-2 cache
	redis  rueidis.Client    // with Redis as L2
}

// runStage serves the store at one stage on a free loopback port and
// drives the burst at it.
func runStage(ctx context.Context, cfg Config, store *storefront.Store, st stage, index int) (StageResult, error) {
	out := cfg.Out
	reg := storefront.NewRegistry()
	reg.MustRegister(sqlstats.New(map[string]*sql.DB{"primary": store.DB()}))
	var svc storefront.Service = store
	if st.cached {
		c, err := storefront.NewCached(store, storefront.CacheConfig{
			Redis: st.redis, Registerer: reg, Logger: cfg.Logger,
			Namespace: fmt.Sprintf("demo%d-%d", time.Now().UnixNano(), index),
		})
		if err != nil {
			return StageResult{}, err
		}
		defer c.Close()
		svc = c
	}
	srv := storefront.NewServer("127.0.0.1:0", storefront.NewHandler(svc, storefront.HandlerConfig{Registerer: reg, Gatherer: reg, Logger: cfg.Logger}))
	srv.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return StageResult{}, fmt.Errorf("demo: listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- storefront.Serve(sctx, srv, ln) }()
	fmt.Fprintf(out, "\n%s\n  serving on %s (metrics at %s/metrics)\n", st.name, base, base)
	if st.redis != nil {
		// L1 is bypassed until the instance hears its own bus heartbeat.
		waitCacheReady(ctx, base)
	}
	res := drive(ctx, base, cfg, st.name, index)
	printStage(out, res)
	if cfg.LoadTest && ctx.Err() == nil {
		rep, err := loadTest(ctx, cfg, base)
		if err != nil {
			stop()
			<-served
			return res, err
		}
		res.Plan = rep
	}
	stop()
	if err := <-served; err != nil {
		return StageResult{}, err
	}
	return res, nil
}

// waitCacheReady waits (at most 2 s) until a read is answered by L1.
func waitCacheReady(ctx context.Context, base string) {
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		resp, err := c.Get(base + "/users/1")
		if err == nil {
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get(storefront.CacheHeader), "user: l1") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// printComparison prints the stages side by side: rate, and p50/p99 per
// endpoint.
func printComparison(out io.Writer, r Result) {
	if len(r.Stages) < 2 {
		return
	}
	fmt.Fprintf(out, "\nthe journey side by side (p50 / p99 per endpoint; the same burst at each stage)\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "endpoint\t")
	for i := range r.Stages {
		name := r.Stages[i].Short
		if name == "" {
			name = shortStage(i, r.Stages[i].Name)
		}
		fmt.Fprintf(tw, "%s\t", name)
	}
	fmt.Fprintln(tw)
	for j, e := range r.Stages[0].Endpoints {
		fmt.Fprintf(tw, "%s\t", e.Name)
		for _, st := range r.Stages {
			e := st.Endpoints[j]
			fmt.Fprintf(tw, "%s / %s\t", ms(e.P50), ms(e.P99))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "throughput\t")
	for _, st := range r.Stages {
		fmt.Fprintf(tw, "%.0f req/s\t", float64(st.Requests)/st.Elapsed.Seconds())
	}
	fmt.Fprintln(tw)
	tw.Flush()
}

func shortStage(i int, name string) string {
	switch {
	case i == 0:
		return "stage 1 (no cache)"
	case strings.Contains(name, "Redis"):
		return "stage 2 (L1 + Redis)"
	default:
		return "stage 2 (L1)"
	}
}

// endpoint is one kind of request of the burst.
type endpoint struct {
	name   string
	weight int
	want   int // expected status
	build  func(r *rand.Rand, seq int64) (method, path string, body []byte)
}

func endpoints(cfg Config, stage int) []endpoint {
	words := []string{"wireless", "coffee", "tent", "novel", "puzzle", "kettle", "sneaker", "guitar", "lamp", "premium headphones", "organic tea", "board game"}
	kinds := []string{"view", "view", "view", "cart", "purchase"}
	// Reads are skewed as real traffic is: a few users and products draw
	// most requests (Zipf, s = 1.1), which is what makes a cache pay.
	user := func(r *rand.Rand) int { return int(zipf(r, cfg.Users)) + 1 }
	product := func(r *rand.Rand) int { return int(zipf(r, cfg.Products)) + 1 }
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
			return "POST", "/users", []byte(fmt.Sprintf(`{"email": "demo.%d.%d@example.com", "name": "Demo User %d", "region": "eu-west"}`, stage, seq, seq))
		}},
		{"PATCH /users/{id}", 5, 200, func(r *rand.Rand, seq int64) (string, string, []byte) {
			return "PATCH", fmt.Sprintf("/users/%d", user(r)), []byte(fmt.Sprintf(`{"name": "Renamed %d"}`, seq))
		}},
		{"GET /healthz", 2, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/healthz", nil }},
		{"GET /readyz", 2, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/readyz", nil }},
		{"GET /metrics", 1, 200, func(*rand.Rand, int64) (string, string, []byte) { return "GET", "/metrics", nil }},
	}
}

// zipf draws from 0..n-1 with Zipf-distributed popularity.
func zipf(r *rand.Rand, n int) uint64 {
	if n <= 1 {
		return 0
	}
	return rand.NewZipf(r, 1.1, 1, uint64(n-1)).Uint64()
}

// drive sends cfg.Requests requests from cfg.Concurrency clients, each
// waiting for its answer before sending the next (a closed loop: the demo
// shows what the stage does, the load tester measures capacity).
func drive(ctx context.Context, base string, cfg Config, stage string, index int) StageResult {
	eps := endpoints(cfg, index)
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
	res := StageResult{Name: stage, Clients: cfg.Concurrency, Elapsed: time.Since(start)}
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
	fmt.Fprintf(out, "  %d requests in %s (%.0f req/s, %d clients in a closed loop)\n\n", s.Requests, s.Elapsed.Round(time.Millisecond), rate, s.Clients)
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
