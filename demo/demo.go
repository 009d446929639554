package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/storefront"
)

// Defaults of a demo run: seeded in a fraction of a second, and a fixed
// rate far enough under the slowest stage's capacity (about 2,000/s for
// stage 1 on SQLite on the development machine, load generator included)
// that its latency is the stage's own, not a queue's.
const (
	DefaultUsers    = 2000
	DefaultProducts = 500
	DefaultActions  = 20000
	DefaultRate     = 250 // requests per second, at every stage
)

// MaxRate bounds Config.Rate: the demo's load generator shares the machine
// with the service, and far past this the figures would be the generator's.
const MaxRate = 50_000

// ErrBadConfig is returned (wrapped) for a Config the demo cannot run; the
// message names the field.
var ErrBadConfig = errors.New("demo: bad config")

// Config sets a demo run. Its zero value runs the standard journey on
// SQLite alone, with the defaults above, printing to os.Stdout.
type Config struct {
	// Users, Products and Actions size the seeded data; 0 means the
	// defaults.
	Users, Products, Actions int
	// Rate is the fixed rate, in requests per second, that every stage is
	// measured at on an open model; the breaking-point search starts at a
	// multiple of it. 0 means DefaultRate.
	Rate float64
	// Mode sets how long each stage is measured; the zero value is
	// Standard.
	Mode Mode
	// Dir holds the SQLite database, storefront.db, which is replaced at
	// the start of each run and kept at the end; "" means a new temporary
	// folder, removed at the end.
	Dir string
	// Out receives the demo's tables; nil means os.Stdout.
	Out io.Writer
	// LogLevel is the least level of the services' log lines the demo
	// keeps (slog.LevelInfo, the zero value, keeps cache warming and
	// every warning). They are printed after the tables, never between
	// their lines.
	LogLevel slog.Level
	// Redis, when set, adds the stage with Redis as the cache's L2.
	Redis rueidis.Client
	// Postgres and Replicas, when both set, add the replica stages: the
	// storefront seeded into the schema strata_demo of the PostgreSQL
	// primary at Postgres (replaced each run), served first by the
	// primary alone, then with reads on the streaming replicas.
	Postgres string
	Replicas []string
	// Shards, when set with Postgres, adds the sharded stage (stage 5):
	// users and their actions spread by user id over these independent
	// PostgreSQL primaries, one database strata_demo_shard<N> each, with
	// the main database (the shard map, products, id allocators and email
	// directory) in the database strata_demo of the Postgres server. The
	// demo creates those databases when they are missing and reseeds them
	// each run; the shard map stays from one run to the next, unless the
	// shards differ from those it names: then it is published anew.
	Shards []string
	// Prometheus, when set, is the base URL of a Prometheus server
	// (scripts/dev's, STRATA_PROMETHEUS_URL): the demo says where it is,
	// or that it does not answer.
	Prometheus string
	// PrometheusTargets, when set with a Prometheus that answers, is a
	// file in Prometheus's file_sd format that the demo keeps naming the
	// stage it measures (host:port, with the label stage), so that
	// Prometheus scrapes each stage while it runs; removed at the end.
	// scripts/dev's Prometheus reads $STRATA_DEV_DIR/prometheus/targets/*.yml.
	PrometheusTargets string

	// schema replaces strata_demo, so that tests on a shared server keep
	// to a schema of their own; dbName replaces strata_demo in the
	// sharded stage's database names, for the same reason.
	schema, dbName string
}

// defaults checks cfg and fills in its zero fields.
func (c *Config) defaults() error {
	for _, f := range []struct {
		name string
		v    *int
		def  int
		max  int
	}{
		{"Users", &c.Users, DefaultUsers, storefront.MaxSeedUsers},
		{"Products", &c.Products, DefaultProducts, storefront.MaxSeedProducts},
		{"Actions", &c.Actions, DefaultActions, storefront.MaxSeedActions},
	} {
		if *f.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %d", ErrBadConfig, f.name, *f.v)
		}
		if *f.v > f.max {
			return fmt.Errorf("%w: %s must be at most %d (the seed's bound), got %d", ErrBadConfig, f.name, f.max, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if !(c.Rate >= 1 && c.Rate <= MaxRate) {
		return fmt.Errorf("%w: Rate %v: want 1 to %d requests per second", ErrBadConfig, c.Rate, MaxRate)
	}
	if _, ok := timings[c.Mode]; !ok {
		return fmt.Errorf("%w: Mode %v: want Standard, Full or Smoke", ErrBadConfig, c.Mode)
	}
	if len(c.Replicas) > 0 && c.Postgres == "" {
		return fmt.Errorf("%w: Replicas need Postgres, the primary they replicate", ErrBadConfig)
	}
	if len(c.Shards) > 0 && c.Postgres == "" {
		return fmt.Errorf("%w: Shards need Postgres, the server of the main database", ErrBadConfig)
	}
	if len(c.Shards) == 1 {
		return fmt.Errorf("%w: Shards: one shard is no sharding; give at least two", ErrBadConfig)
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	return nil
}

// Result is what a demo run measured.
type Result struct {
	Stages []StageResult
	// Report holds every stage's phases, named "stage: phase", for
	// loadtest's JSON, JUnit and HTML writers.
	Report *loadtest.Report
	// Overload is the overload phase, run against stage 1 (no cache) on
	// SQLite; nil when it did not run.
	Overload *Overload
	// Logs are the first of the services' log lines, and More counts the
	// rest.
	Logs []string
	More int
}

// Failed counts the requests of all stages that failed at the fixed rate:
// answered with an error status, timed out or refused. At a rate far
// under every stage's capacity, any is a bug, not load.
func (r Result) Failed() int64 {
	var n int64
	for _, s := range r.Stages {
		if ph := s.phase(fixedPhase); ph != nil {
			n += ph.Summary.Errors
		}
	}
	return n
}

// Bugs counts the answers of the whole run that no load explains: any
// failed status but 503 and 504 (overload, a budget run out, a part
// down), at every stage's fixed rate (as the service counted them) and
// in the budgets and overload phases (as the load tester did). On a
// starved machine a 503 is load; a 500, or a 4xx to the demo's own
// well-formed requests, is a bug whatever the load.
func (r Result) Bugs() int64 {
	var n int64
	for _, s := range r.Stages {
		for _, e := range s.Endpoints {
			n += e.Failed - e.Unavailable
		}
		if b := s.Budgets; b != nil {
			n += bugs(b.Down.Report.Summary) + bugs(b.Back.Report.Summary)
		}
	}
	if o := r.Overload; o != nil {
		for _, ph := range []loadtest.PhaseReport{o.With.Critical, o.With.Rest, o.Without.Critical, o.Without.Rest} {
			n += bugs(ph.Summary)
		}
	}
	return n
}

// bugs counts a summary's error answers with a status other than 503
// and 504 (loadtest's kinds "status NNN"; timeouts and refused
// connections are not answers).
func bugs(s loadtest.Summary) int64 {
	var n int64
	for kind, c := range s.ErrorsByKind {
		if code, ok := strings.CutPrefix(kind, "status "); ok && code != "503" && code != "504" {
			n += c
		}
	}
	return n
}

// StageResult is the measurement of one stage of the journey.
type StageResult struct {
	// Name says what the stage is; Short is its column in the
	// side-by-side table.
	Name, Short string
	// Report holds the stage's phases: baseline (the fixed rate), stress
	// (the breaking-point search), and in Full mode spike and endurance.
	Report *loadtest.Report
	// Queries is the database statements one request cost at the fixed
	// rate, counted at the database driver, the storefront's background
	// work (cache warming, the popularity refresh) left out; with
	// replicas, the replica router's calls (one statement each, but for a
	// write's WAL position; the popularity refresh included). NaN for the
	// sharded stage, whose main database's statements go uncounted: see
	// Shards.
	Queries float64
	// OnReplicas is the share of Queries that went to replicas; NaN
	// without replicas.
	OnReplicas float64
	// HitRatio is the share of cache reads at the fixed rate that no
	// database load answered (L1 or L2 hits, and reads that joined a
	// load in flight); NaN without a cache.
	HitRatio float64
	// Shards are the sharded stage's shards, in the shard map's order;
	// nil at the other stages.
	Shards []Shard
	// Endpoints are the answers the service counted at the fixed rate,
	// one per endpoint, from its own strata_http_requests_total.
	Endpoints []Endpoint
	// Page is the composite page's latency at the fixed rate, in the
	// service (from its request duration histogram, so within a bucket's
	// precision, and without the network and the load generator).
	Page Latency
	// Budgets is stage 3's budgets phase, the composite page while its
	// recommendation service stalls and after; nil at the other stages.
	Budgets *Budgets
	// Elapsed is the stage's wall time, serving and measuring.
	Elapsed time.Duration
}

// phase returns the stage's phase of that name, or nil.
func (s StageResult) phase(name string) *loadtest.PhaseReport {
	if s.Report == nil {
		return nil
	}
	for i := range s.Report.Phases {
		if s.Report.Phases[i].Name == name {
			return &s.Report.Phases[i]
		}
	}
	return nil
}

// Latency is an endpoint's latency quantiles, in seconds, over Count
// answers; NaN without answers.
type Latency struct {
	Count    int64
	P50, P99 float64
}

// Shard is one shard of the sharded stage.
type Shard struct {
	Name string // in the shard map, e.g. "shard1"
	// Calls is the calls the shard router sent the shard at the fixed
	// rate, per request: reads, writes and fan-out legs (the popularity
	// refresh included), from its strata_shard_calls_total.
	Calls float64
	// Users counts the users stored on the shard's primary at the end of
	// the stage: the seeded ones and those the load created.
	Users int64
}

// Endpoint is one endpoint's answers, as the service counted them.
type Endpoint struct {
	Name     string // method and route, e.g. "GET /users/{id}"
	Requests int64
	// Failed counts answers with a 4xx or 5xx status; Codes lists them,
	// e.g. "409 ×3".
	Failed int64
	Codes  string
	// Unavailable counts the failed answers that were 503 or 504: the
	// service overloaded, a budget run out, a part down. They are load
	// (on a starved machine too), where any other failure is a bug.
	Unavailable int64
}

// Run seeds the storefront, serves it at every stage the configuration
// allows, one after another on a free loopback port, measures each with
// the same load-test plan, and prints the stages side by side to cfg.Out.
// A stage that cannot be set up ends the run with an error and the
// stages measured so far.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	j := &journey{cfg: cfg, t: timings[cfg.Mode], out: cfg.Out, book: &logBook{}}
	j.log = j.book.logger(cfg.LogLevel)
	res, err := j.run(ctx)
	res.Logs, res.More = j.book.Lines()
	j.book.print(j.out)
	return res, err
}

// journey is one run of the demo.
type journey struct {
	cfg  Config
	t    timing
	out  io.Writer
	book *logBook
	log  *slog.Logger // the services' logger, into book
	prom promWatch    // the Prometheus watching the stages, if any
}

func (j *journey) run(ctx context.Context) (Result, error) {
	cfg := j.cfg
	fmt.Fprintf(j.out, "Strata demo: the storefront at each stage of the scale journey\n")
	fmt.Fprintf(j.out, "%s run: %s\n\n", cfg.Mode, j.describe())
	j.announcePrometheus(ctx)
	defer j.unwatch()

	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "strata-demo-")
		if err != nil {
			return Result{}, fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dbPath := filepath.Join(dir, "storefront.db")
	if cfg.Dir != "" { // a kept folder: start from a fresh database each run
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Result{}, fmt.Errorf("demo: %w", err)
			}
		}
	}
	var res Result
	stages, closeStages, err := j.sqliteStages(ctx, "sqlite://"+dbPath)
	defer closeStages()
	if err != nil {
		return res, err
	}
	if cfg.Postgres != "" {
		pg, closePG, err := j.postgresStages(ctx)
		defer closePG()
		if err != nil {
			return res, err
		}
		stages = append(stages, pg...)
	}
	if len(cfg.Shards) > 0 {
		st, closeSharded, err := j.shardedStage(ctx)
		defer closeSharded()
		if err != nil {
			return res, err
		}
		stages = append(stages, st)
	}
	fmt.Fprintln(j.out)
	for i, st := range stages {
		sr, err := j.stage(ctx, st, i+1)
		if err != nil {
			return res, err
		}
		res.Stages = append(res.Stages, sr)
	}
	// The overload phase drives stage 1 (no cache) on SQLite, which every
	// run has: without a cache every request reaches the database, so
	// three times its capacity is a real overload of the service, not of
	// a cache, and its capacity is among the lowest, so the phase costs
	// the fewest requests.
	ov, err := j.overloadPhase(ctx, stages[0], res.Stages[0])
	if err != nil {
		return res, err
	}
	res.Overload = ov
	res.Report = journeyReport(res)
	printComparison(j.out, res, cfg, j.t)
	if cfg.Redis == nil || cfg.Postgres == "" || len(cfg.Replicas) == 0 || len(cfg.Shards) == 0 {
		fmt.Fprintf(j.out, "\nThe Redis level of stage 2, the read replicas and the sharded stage need servers:\n"+
			"`eval \"$(scripts/dev up)\"` starts Redis, a PostgreSQL primary, two streaming replicas and two\n"+
			"independent primaries for shards on loopback, and the demo then finds them through\n"+
			"STRATA_REDIS_URL, STRATA_PG_URL, STRATA_PG_REPLICA_URLS and STRATA_PG_SHARD_URLS.\n")
	}
	return res, nil
}

// describe says in a line what the mode measures.
func (j *journey) describe() string {
	t, r := j.t, j.cfg.Rate
	s := fmt.Sprintf("every stage pushed to its breaking point (%v probes from %g/s, for at most %v),\n"+
		"then, warm, at %g requests/s for %v", t.Step, t.Start*r, t.Search, r, t.Fixed)
	if t.Spike > 0 {
		s += fmt.Sprintf(", a %g× spike and %v of endurance", float64(loadtest.SpikeMultiplier), t.Endurance)
	}
	switch j.cfg.Mode {
	case Standard:
		s += "; --full runs the guide's four phases"
	case Smoke:
		s += "; a check that every stage works, too short to judge"
	}
	return s
}

// perRequest is part over whole, NaN for no whole.
func perRequest(part, whole float64) float64 {
	if whole <= 0 {
		return math.NaN()
	}
	return part / whole
}
