package demo

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"modernc.org/sqlite"

	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/storefront"
)

// sqliteConns is the SQLite pool's size, as internal/database opens it
// for `strata serve`: one writer at a time, a few readers beside it.
const sqliteConns = 8

// demoSchema is where the replica stages keep their data on the primary.
const demoSchema = "strata_demo"

// stage is one step of the journey.
type stage struct {
	name, short string
	store       *storefront.Store
	// queries counts the store's statements at the driver; nil for a
	// store with replicas, whose router counts its calls in reg, and for
	// a sharded one, whose shard router counts its calls by shard.
	queries *atomic.Int64
	// reg is the stage's registry when the store needed it at opening
	// (the replica or shard router's metrics); nil means a new one.
	reg    *prometheus.Registry
	cached bool           // read through the stage-2 cache
	redis  rueidis.Client // with Redis as L2
	// split: the recommendation service on a listener of its own (stage
	// 3), called over HTTP; its cache's counters are read from recReg
	// beside the storefront's.
	split  bool
	recReg prometheus.Gatherer
}

// sqliteStages seeds a fresh SQLite database and returns the stages that
// serve it: no cache, the in-process cache, and with Redis as L2.
func (j *journey) sqliteStages(ctx context.Context, url string) ([]stage, func(), error) {
	seed, err := storefront.Open(ctx, url, storefront.Config{Logger: j.log})
	if err != nil {
		return nil, func() {}, err
	}
	err = j.seed(ctx, seed, "an SQLite database", false)
	seed.Close()
	if err != nil {
		return nil, func() {}, err
	}
	store, n, closeStore, err := j.openCounted(ctx, url, storefront.SQLite)
	if err != nil {
		return nil, func() {}, err
	}
	stages := []stage{
		{name: "stage 1: monolith, one database, no cache", short: "stage 1 (no cache)", store: store, queries: n},
		{name: "stage 2: read-through cache, in-process L1", short: "stage 2 (L1)", store: store, queries: n, cached: true},
	}
	if j.cfg.Redis != nil {
		stages = append(stages, stage{name: "stage 2: read-through cache, L1 + Redis L2", short: "stage 2 (L1 + Redis)",
			store: store, queries: n, cached: true, redis: j.cfg.Redis})
	}
	// Stage 3 builds on stage 2 in process (L1 on SQLite), which every
	// run has: its figures compare with stage 2 (L1)'s.
	stages = append(stages, stage{name: "stage 3: service split, recommendations over HTTP; L1 on SQLite", short: "stage 3 (split, L1)",
		store: store, queries: n, cached: true, split: true})
	return stages, closeStore, nil
}

// postgresStages seeds the storefront into its schema on the primary and
// returns the stages that serve it: the primary alone, and with reads on
// the replicas.
func (j *journey) postgresStages(ctx context.Context) ([]stage, func(), error) {
	cfg := j.cfg
	schema := cfg.schema
	if schema == "" {
		schema = demoSchema
	}
	inSchema := func(u string) string { return withSearchPath(u, schema) }
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	admin, err := sql.Open("pgx", cfg.Postgres)
	if err != nil {
		return nil, closeAll, fmt.Errorf("demo: %w", err)
	}
	_, err = admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema)
	admin.Close()
	if err != nil {
		return nil, closeAll, fmt.Errorf("demo: prepare schema %s on %s: %w", schema, redacted(cfg.Postgres), err)
	}
	seed, err := storefront.Open(ctx, inSchema(cfg.Postgres), storefront.Config{Logger: j.log})
	if err != nil {
		return nil, closeAll, err
	}
	err = j.seed(ctx, seed, "PostgreSQL (schema "+schema+")", false)
	seed.Close()
	if err != nil {
		return nil, closeAll, err
	}
	primary, n, closePrimary, err := j.openCounted(ctx, inSchema(cfg.Postgres), storefront.Postgres)
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, closePrimary)
	stages := []stage{{name: "stage 1 on PostgreSQL: the primary alone, no cache", short: "PG primary", store: primary, queries: n}}
	if len(cfg.Replicas) == 0 {
		return stages, closeAll, nil
	}
	var urls []string
	for _, u := range cfg.Replicas {
		urls = append(urls, inSchema(u))
	}
	reg := storefront.NewRegistry()
	replicated, err := storefront.Open(ctx, inSchema(cfg.Postgres), storefront.Config{Logger: j.log, Replicas: urls, Registerer: reg})
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, func() { replicated.Close() })
	// The replicas must have replayed the seed before they serve.
	r := replicated.Router()
	tok, err := r.Position(ctx)
	if err != nil {
		return nil, closeAll, err
	}
	if err := r.Read(replica.WithToken(ctx, tok), func(context.Context, replica.Querier) error { return nil }); err != nil {
		return nil, closeAll, err
	}
	stages = append(stages, stage{name: fmt.Sprintf("stage 2: reads on %d streaming replicas, no cache", len(urls)),
		short: fmt.Sprintf("PG + %d replicas", len(urls)), store: replicated, reg: reg})
	return stages, closeAll, nil
}

// seed fills the store, replacing what it holds if reset is set, and
// says so.
func (j *journey) seed(ctx context.Context, s *storefront.Store, what string, reset bool) error {
	st, err := storefront.Seed(ctx, s, storefront.SeedConfig{Users: j.cfg.Users, Products: j.cfg.Products, Actions: j.cfg.Actions,
		RandSeed: 1, Reset: reset})
	if err != nil {
		return err
	}
	fmt.Fprintf(j.out, "seeded %s with %d users, %d products, %d actions in %s\n",
		what, st.Users, st.Products, st.Actions, st.Elapsed.Round(time.Millisecond))
	return nil
}

// openCounted opens a store over a pool whose statements are counted, with
// the pool settings `strata serve` uses. (Seeding goes through a plain
// store: PostgreSQL's COPY needs pgx's own connection.)
func (j *journey) openCounted(ctx context.Context, url string, kind storefront.Kind) (*storefront.Store, *atomic.Int64, func(), error) {
	t, err := database.Parse(url)
	if err != nil {
		return nil, nil, func() {}, err
	}
	var c driver.Connector
	switch t.Kind {
	case database.SQLite:
		if c, err = sqlite.NewConnector(t.DSN); err != nil {
			return nil, nil, func() {}, fmt.Errorf("demo: %s: %w", t.Display, err)
		}
	case database.Postgres:
		pc, err := pgx.ParseConfig(t.DSN)
		if err != nil {
			return nil, nil, func() {}, fmt.Errorf("demo: %s: %w", t.Display, err)
		}
		if pc.ConnectTimeout == 0 {
			pc.ConnectTimeout = database.DefaultConnectTimeout
		}
		c = stdlib.GetConnector(*pc)
	}
	n := new(atomic.Int64)
	db := sql.OpenDB(newCountingConnector(c, n))
	if t.Kind == database.SQLite {
		db.SetMaxOpenConns(sqliteConns)
		db.SetMaxIdleConns(sqliteConns)
	} else {
		db.SetMaxOpenConns(database.PrimaryPoolSize + database.PrimaryMaxOverflow)
		db.SetMaxIdleConns(database.PrimaryPoolSize)
		db.SetConnMaxLifetime(database.PrimaryRecycle)
	}
	s, err := storefront.New(ctx, db, kind, storefront.Config{Logger: j.log})
	if err != nil {
		db.Close()
		return nil, nil, func() {}, err
	}
	return s, n, func() { s.Close(); db.Close() }, nil
}

// stage serves st on a free loopback port, measures it and prints one line
// about it.
func (j *journey) stage(ctx context.Context, st stage, index int) (StageResult, error) {
	start := time.Now()
	res := StageResult{Name: st.name, Short: st.short, Queries: math.NaN(), OnReplicas: math.NaN(), HitRatio: math.NaN(),
		Shards: shardsOf(st.store)}
	reg := st.reg
	if reg == nil {
		reg = storefront.NewRegistry()
		reg.MustRegister(sqlstats.New(map[string]*sql.DB{"primary": st.store.DB()}))
	}
	var svc storefront.Service = st.store
	if st.cached {
		c, err := storefront.NewCached(st.store, storefront.CacheConfig{
			Redis: st.redis, Registerer: reg, Logger: j.log,
			Namespace: fmt.Sprintf("demo%d-%d", time.Now().UnixNano(), index),
		})
		if err != nil {
			return res, err
		}
		defer c.Close()
		svc = c
	}
	var sp *split
	if st.split {
		var err error
		if sp, err = j.startSplit(ctx, st.store, index, reg); err != nil {
			return res, err
		}
		defer sp.close()
		svc = storefront.NewRemoteRecommender(svc, sp.client)
		st.recReg = sp.reg
	}
	pages := &pageCounter{next: storefront.NewHandler(svc, storefront.HandlerConfig{Registerer: reg, Gatherer: reg, Logger: j.log})}
	srv := storefront.NewServer("127.0.0.1:0", pages)
	srv.ErrorLog = slog.NewLogLogger(j.log.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("demo: listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- storefront.Serve(sctx, srv, ln) }()
	j.watchStage(st.short, ln.Addr().String())
	fmt.Fprintf(j.out, "%s, on %s: ", st.name, base)
	j.log.Debug("demo: serving", "stage", st.short, "addr", base)
	if st.redis != nil {
		// L1 is bypassed until the instance hears its own bus heartbeat.
		waitCacheReady(ctx, base)
	}
	err = j.measure(ctx, st, index, base, reg, &res)
	if err == nil && sp != nil {
		res.Budgets, err = j.budgets(ctx, st, base, sp, pages, reg)
	}
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	if err == nil && res.Shards != nil {
		err = countUsers(ctx, st.store, res.Shards)
	}
	res.Elapsed = time.Since(start)
	if err != nil {
		fmt.Fprintf(j.out, "%v\n", err)
		return res, err
	}
	fmt.Fprintf(j.out, "%s in %.1f s\n", res.Report.Assessment.Status, res.Elapsed.Seconds())
	return res, nil
}

// measure runs the stage's plan one phase at a time: the breaking-point
// search first (which also warms the stage's caches), then the fixed rate
// between two readings of the service's counters, then the others. A
// spike and an endurance phase take their rates from the capacity found.
func (j *journey) measure(ctx context.Context, st stage, index int, base string, reg *prometheus.Registry, res *StageResult) error {
	p, err := plan(j.t, st.short, base, index, j.cfg)
	if err != nil {
		return err
	}
	var rep *loadtest.Report
	capacity := 0.0
	for i, ph := range p.Phases {
		if i > 0 {
			if err := sleep(ctx, j.t.Cooldown); err != nil {
				return err
			}
		}
		switch {
		case ph.Pattern == loadtest.PatternSpike && capacity > 0:
			ph.Rate = j.t.SpikePeak * capacity / ph.Multiplier
		case ph.Pattern == loadtest.PatternSustained && capacity > 0:
			ph.Capacity, ph.CapacityFrom = capacity, ""
		}
		one := *p
		one.Phases = []loadtest.Phase{ph}
		var before reading
		if ph.Name == fixedPhase {
			if before, err = readStage(st, reg); err != nil {
				return err
			}
		}
		r, err := one.Run(ctx, loadtest.RunOptions{})
		if err != nil {
			return fmt.Errorf("demo: %s: %s: %w", st.short, ph.Name, err)
		}
		pr := r.Phases[0]
		if ph.Name == fixedPhase {
			after, err := readStage(st, reg)
			if err != nil {
				return err
			}
			after.since(before, pr.Summary.Requests, res)
		}
		if ph.Pattern == loadtest.PatternBreaking {
			capacity = pr.Measures[loadtest.MeasureBreakingPoint]
		}
		if rep == nil {
			rep = r
		} else {
			rep.Phases = append(rep.Phases, pr)
			rep.Finished = r.Finished
		}
	}
	rep.Reassess()
	res.Report = rep
	return nil
}

// readStage reads the stage's counters: the storefront's in reg, and
// with a split recommendation service its cache's too.
func readStage(st stage, reg prometheus.Gatherer) (reading, error) {
	r, err := read(reg, st.queries)
	if err != nil || st.recReg == nil {
		return r, err
	}
	rr, err := read(st.recReg, nil)
	r.cacheReads += rr.cacheReads
	r.cacheLoads += rr.cacheLoads
	return r, err
}

// waitCacheReady waits (at most 2 s) until a read is answered by L1.
func waitCacheReady(ctx context.Context, base string) {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		resp, err := c.Get(base + "/users/1")
		if err == nil {
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get(storefront.CacheHeader), "user: l1") {
				return
			}
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withSearchPath sets a PostgreSQL URL's search path to schema.
func withSearchPath(u, schema string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "search_path=" + schema
}

// redacted is a database URL without its password, for messages.
func redacted(u string) string {
	if t, err := database.Parse(u); err == nil {
		return t.Display
	}
	return "the PostgreSQL URL"
}
