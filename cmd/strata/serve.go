package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/advisor"
	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/storefront"
	"github.com/strata-dev/strata/upstream"
)

// defaultAddr is where serve listens unless told otherwise: loopback only.
const defaultAddr = "127.0.0.1:8080"

func newServe(g *globals) *cobra.Command {
	var (
		dbURL, addr, configPath, redisURL string
		useCache, sampleQueries, prefetch bool
		hedge                             bool
		replicas, shards, warmPeaks       []string
		searchTiers                       []string
		warmLead                          string
		ov                                overloadFlags
		only, recsURL                     string
		traces                            traceFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the storefront's HTTP API",
		Long: `Serve the storefront's HTTP JSON API (users, actions, products,
recommendations, search, /healthz, /readyz, /metrics).

The database is migrated to the current schema on start-up. SIGINT or
SIGTERM stops accepting new requests and drains the ones in flight.

With --shard (stage 5), users and their actions are spread over the
given PostgreSQL databases by user id; --db is then the main database,
which keeps the shard map, the products and the id allocators. The first
start publishes a map over the shards as given (named shard1, shard2, ...);
later starts follow the stored map, which must name every --shard, and
apply a newly published map without a restart.

With --warm-peak (and the cache), the hottest users and products are
loaded into the cache --warm-lead (default 30 minutes) before each known
peak, beside the warm-up the cache runs by itself when traffic surges. A
peak is "HH:MM" (daily, UTC), "HH:MM ZONE" (daily in an IANA time zone)
or an RFC 3339 time (once).

With --only recommendations, serve runs the recommendation service alone
(GET /users/{id}/recommendations, /healthz, /readyz, /metrics): the
guide's stage-3 RecommendationService. With --recommendations-url, the
storefront asks such a service for its recommendations over HTTP, with
pooled keep-alive connections, retries within the request's budget and a
circuit breaker; the home page falls back to popular products while it
fails.

With --overload, an adaptive concurrency limiter stands in front of the
routes and holds the admitted requests' p99 within --sla (default 100ms):
under overload the composite page's recommendations fall back and
prefetching stops first, then writes, searches and recommendations get
503 with Retry-After, and reads of a user or a product are refused last
of all. With
--capacity-rps, the rate a load test found this instance breaks at,
strata_overload_utilisation_ratio (offered rate / capacity) is exported
for an autoscaler (docs/autoscaling.md).

Product search, autocomplete (/search/suggest) and faceted search
(/search?facets=category) are tiers with resources of their own: each
answers at most so many requests at once (past it, 503 at once) within
its budget (past it, 503). --search-tier NAME=MAX_IN_FLIGHT[/BUDGET]
changes a tier's (defaults: ` + defaultSearchTiers() + `).`,
		Example: `  strata serve
  strata serve --db 'postgres://strata@127.0.0.1:55432/strata?sslmode=disable' --addr 127.0.0.1:9090
  strata serve --db postgres://strata@127.0.0.1:55432/strata --replica postgres://strata@127.0.0.1:55433/strata --replica postgres://strata@127.0.0.1:55434/strata
  strata serve --db postgres://strata@127.0.0.1:55432/strata --shard postgres://strata@127.0.0.1:55435/strata --shard postgres://strata@127.0.0.1:55436/strata
  strata serve --cache --warm-peak '19:00 Europe/London' --warm-peak 2026-12-24T18:00:00Z --warm-lead 45m
  strata serve --overload --capacity-rps 900
  strata serve --only recommendations --addr 127.0.0.1:8081
  strata serve --recommendations-url http://127.0.0.1:8081
  strata serve --search-tier autocomplete=4/30ms --search-tier search=32
  strata serve --config strata.yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			// where names the source of each value in error messages: the
			// flag, or the config file's line.
			where := map[string]string{"db": "--db", "addr": "--addr", "redis": "--redis", "replica": "--replica", "shard": "--shard", "warm-peak": "--warm-peak", "warm-lead": "--warm-lead",
				"overload": "--overload", "sla": "--sla", "capacity-rps": "--capacity-rps",
				"only": "--only", "recommendations-url": "--recommendations-url", "search-tier": "--search-tier", "hedge": "--hedge"}
			if configPath != "" {
				c, err := loadServeConfig(configPath)
				if err != nil {
					return usageError{err}
				}
				fromFile := func(flag string, v configValue[string], dst *string) {
					if !cmd.Flags().Changed(flag) && v.Set {
						*dst, where[flag] = v.V, "config "+v.At
					}
				}
				fromFile("db", c.DB, &dbURL)
				fromFile("addr", c.Addr, &addr)
				fromFile("redis", c.Cache.Redis, &redisURL)
				fromFile("warm-lead", c.Cache.WarmLead, &warmLead)
				fromFile("only", c.Only, &only)
				fromFile("recommendations-url", c.RecommendationsURL, &recsURL)
				fromFileList(cmd.Flags(), "warm-peak", c.Cache.WarmPeaks, &warmPeaks, where)
				fromFileList(cmd.Flags(), "search-tier", c.SearchTiers, &searchTiers, where)
				fromFileList(cmd.Flags(), "replica", c.Replicas, &replicas, where)
				fromFileList(cmd.Flags(), "shard", c.Shards, &shards, where)
				if !cmd.Flags().Changed("cache") && c.Cache.Enabled.Set {
					useCache = c.Cache.Enabled.V
				}
				if !cmd.Flags().Changed("hedge") && c.Hedge.Set {
					hedge, where["hedge"] = c.Hedge.V, "config "+c.Hedge.At
				}
				ov.fromFile(cmd, c, where)
				traces.fromFile(cmd, c, where)
			}
			if redisURL != "" {
				useCache = true // Redis is only used as a cache level
			}
			if err := checkServeInputs(addr, dbURL, redisURL, replicas, shards, where); err != nil {
				return err
			}
			peaks, lead, err := warmSchedule(warmPeaks, warmLead, useCache, where)
			if err != nil {
				return err
			}
			if err := cmp.Or(checkServices(only, recsURL, where), checkHedge(hedge, replicas, shards, where)); err != nil {
				return err
			}
			tiers, err := parseSearchTiers(searchTiers, where)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			reg := storefront.NewRegistry()
			limiter, control, err := ov.limiter(cmd, where, reg) // before anything opens: a usage error leaves nothing behind
			if err != nil {
				return err
			}
			tp, err := traces.open(ctx, cmd, reg, log, where)
			if err != nil {
				return err
			}
			defer shutdownTracing(tp, log) // after the server has drained (defers run last first)
			scfg := storefront.Config{Logger: log, Replicas: replicas, Shards: shards, Registerer: reg, Hedge: replica.Hedge{Enabled: hedge}, TracerProvider: tp.TracerProvider()}
			if sampleQueries {
				sampler, err := openSampler(ctx, dbURL, log)
				if err != nil {
					return err
				}
				defer sampler.Close()
				scfg.Recorder = sampler
			}
			store, err := storefront.Open(ctx, dbURL, scfg)
			if err != nil {
				return openError(err, where)
			}
			defer store.Close()
			if err := registerPoolStats(reg, store, len(replicas) > 0); err != nil {
				return err
			}
			var svc storefront.Service = store
			level := "no cache"
			if useCache {
				cfg := storefront.CacheConfig{Registerer: reg, Logger: log, WarmPeaks: peaks, WarmLead: lead, NoPrefetch: !prefetch, Overload: limiter, TracerProvider: tp.TracerProvider()}
				level = "L1 cache"
				if redisURL != "" {
					conn, err := dialRedis(redisURL, where["redis"], log)
					if err != nil {
						return err
					}
					defer conn.Close() // after the caches (defers run last first)
					cfg.RedisConn = conn
					level = "L1 + Redis L2 cache"
				}
				cached, err := storefront.NewCached(store, cfg)
				if err != nil {
					return err
				}
				defer cached.Close()
				svc = cached
			}
			h, recs, err := serviceHandler(svc, serviceOptions{only: only, recsURL: recsURL, tiers: tiers, reg: reg, log: log, limiter: limiter, tp: tp.TracerProvider()})
			if err != nil {
				return err
			}
			defer recs.close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			log.Info("serving", "addr", "http://"+ln.Addr().String(), "db", store.Kind(), "schema", storefront.SchemaVersion(), "stage", stageName(store, len(replicas), level), "recommendations", recs.what, "overload_control", control)
			srv := storefront.NewServer(addr, h)
			srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
			err = storefront.Serve(ctx, srv, ln)
			if err == nil {
				log.Info("stopped")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbURL, "db", defaultDB, "database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB")
	f.StringVar(&addr, "addr", defaultAddr, "address to listen on, host:port")
	f.BoolVar(&useCache, "cache", false, "read through the stage-2 cache (in-process L1; add --redis for L2)")
	f.StringVar(&redisURL, "redis", "", "Redis URL for the cache's L2 and invalidation bus, redis://HOST:PORT/DB (implies --cache)")
	f.StringArrayVar(&replicas, "replica", nil, "a PostgreSQL streaming replica of --db, postgres://...; repeat for more (reads go to replicas, writes to --db)")
	f.StringArrayVar(&shards, "shard", nil, "a PostgreSQL database to shard users over (stage 5), postgres://...; repeat for each shard (--db is then the main database, holding the shard map)")
	f.BoolVar(&sampleQueries, "sample-queries", false, "record a sample of each query with its arguments in the database (table "+advisor.SamplesTable+"), so strata advise binds real values (PostgreSQL only)")
	f.StringArrayVar(&warmPeaks, "warm-peak", nil, `a known traffic peak to warm the cache ahead of: "HH:MM" (daily, UTC), "HH:MM ZONE" (daily, IANA zone) or an RFC 3339 time (once); repeat for more (needs --cache)`)
	f.BoolVar(&prefetch, "prefetch", true, "with --cache, load the top recommended products of each recommendations read into the cache in the background (predictive prefetch); --prefetch=false turns it off")
	f.StringVar(&warmLead, "warm-lead", cache.DefaultPeakLead.String(), "how long before each --warm-peak the cache is warmed")
	f.StringVar(&only, "only", "", "run one service alone: recommendations (GET /users/{id}/recommendations, /healthz, /readyz, /metrics)")
	f.StringVar(&recsURL, "recommendations-url", "", "ask the recommendation service at this URL (http:// or https://, as run by --only recommendations) for recommendations, instead of computing them in process")
	ov.flags(f)
	f.StringArrayVar(&searchTiers, "search-tier", nil, "a search tier's resources, NAME=MAX_IN_FLIGHT[/BUDGET] (NAME search, autocomplete or facets), e.g. autocomplete=8/50ms; repeat for each tier to change")
	f.BoolVar(&hedge, "hedge", false, "hedged reads: a read with no answer after its replica's recent p95 is sent to another replica too, at most 5% more reads (needs two replicas, --replica or a shard's)")
	f.StringVar(&configPath, "config", "", "YAML config file (keys: db, replicas, shards, addr, only, recommendations_url, hedge, search_tiers, cache.enabled, cache.redis, cache.warm_peaks, cache.warm_lead, overload.enabled, overload.sla, overload.capacity_rps, tracing.otlp_endpoint, tracing.sample, tracing.slow); flags win over it")
	traces.add(f)
	return cmd
}

// fromFileList sets *dst to the config file's list v, and where[flag] to
// its line, unless the flag was given (the flags' list wins whole).
func fromFileList(flags *pflag.FlagSet, flag string, v configValue[[]string], dst *[]string, where map[string]string) {
	if !flags.Changed(flag) && v.Set {
		*dst, where[flag] = v.V, "config "+v.At
	}
}

// parseSearchTiers reads the --search-tier values; an error is a usage
// error naming the flag or config line.
func parseSearchTiers(raw []string, where map[string]string) (storefront.SearchTiers, error) {
	tiers, err := storefront.ParseSearchTiers(raw...)
	if err != nil {
		return tiers, usageError{fmt.Errorf("%s: %w", where["search-tier"], err)}
	}
	return tiers, nil
}

// defaultSearchTiers says the search tiers' defaults as --search-tier
// would set them.
func defaultSearchTiers() string {
	return fmt.Sprintf("%s=%d/%v, %s=%d/%v, %s=%d/%v",
		storefront.TierSearch, storefront.DefaultSearchMaxInFlight, storefront.DefaultSearchBudget,
		storefront.TierAutocomplete, storefront.DefaultAutocompleteMaxInFlight, storefront.DefaultAutocompleteBudget,
		storefront.TierFacets, storefront.DefaultFacetsMaxInFlight, storefront.DefaultFacetsBudget)
}

// warmSchedule parses the known peaks and the lead of the scheduled cache
// warm-up; an error names the flag or config line of the bad value.
func warmSchedule(raw []string, rawLead string, useCache bool, where map[string]string) ([]cache.Peak, time.Duration, error) {
	lead, err := time.ParseDuration(rawLead)
	switch {
	case err != nil:
		return nil, 0, usageError{fmt.Errorf("%s %s: not a duration (want for example 30m or 1h30m)", where["warm-lead"], quote(rawLead))}
	case lead <= 0:
		return nil, 0, usageError{fmt.Errorf("%s %s: must be positive (the warm-up runs that long before each peak)", where["warm-lead"], quote(rawLead))}
	}
	if len(raw) == 0 {
		return nil, lead, nil
	}
	if !useCache {
		return nil, 0, usageError{fmt.Errorf("%s: the peaks warm the cache, which is off; add --cache (or --redis)", where["warm-peak"])}
	}
	peaks := make([]cache.Peak, 0, len(raw))
	for i, s := range raw {
		p, err := cache.ParsePeak(s)
		if err != nil {
			return nil, 0, usageError{fmt.Errorf("%s (peak %d): %w", where["warm-peak"], i+1, err)}
		}
		peaks = append(peaks, p)
	}
	return peaks, lead, nil
}

// checkHedge refuses --hedge where no read could be hedged: a hedge goes
// to a second replica, never to the primary. With shards the shard map
// names the replicas; a shard with fewer than two is not hedged.
func checkHedge(hedge bool, replicas, shards []string, where map[string]string) error {
	switch {
	case !hedge || len(shards) > 0 || len(replicas) >= 2:
		return nil
	case len(replicas) == 1:
		return usageError{fmt.Errorf("%s: hedged reads need two replicas or more (a hedge goes to another replica, never the primary); %s gives one", where["hedge"], where["replica"])}
	}
	return usageError{fmt.Errorf("%s: hedged reads need replicas; give two or more with --replica (or shards with replicas)", where["hedge"])}
}

// openError is the error of serve's storefront.Open, blamed on the flag
// (or config line) that holds what was wrong.
func openError(err error, where map[string]string) error {
	switch {
	case errors.Is(err, replica.ErrNotPrimary):
		return usageError{fmt.Errorf("%s: %w", where["db"], err)}
	case errors.Is(err, replica.ErrNotStandby):
		return usageError{fmt.Errorf("%s: %w", where["replica"], err)}
	case errors.Is(err, replica.ErrBadConfig): // names the field itself
		return usageError{err}
	case errors.Is(err, storefront.ErrBadShards): // a shard the stored map does not name
		return usageError{fmt.Errorf("%s: %w", where["shard"], err)}
	}
	return err
}

// stageName is the stage serve logs: the store's shape and the cache
// level ("no cache", "L1 cache" or "L1 + Redis L2 cache").
func stageName(store *storefront.Store, replicas int, level string) string {
	switch r := store.Shards(); {
	case r != nil:
		return fmt.Sprintf("5 (sharded over %d shards, %s)", len(r.Shards()), level)
	case level == "no cache" && replicas > 0:
		return fmt.Sprintf("2 (read/write split over %d replicas, no cache)", replicas)
	case level == "no cache":
		return "1 (no cache)"
	case replicas > 0:
		return fmt.Sprintf("2 (%s) + %d replicas", level, replicas)
	}
	return "2 (" + level + ")"
}

// checkServeInputs checks the address and the URLs before anything opens,
// so that an error names the flag (or config line) that holds the bad one
// and leaves nothing behind (not even an SQLite file).
func checkServeInputs(addr, dbURL, redisURL string, replicas, shards []string, where map[string]string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		why := "not host:port"
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err // without the address, which may be huge
		}
		return usageError{fmt.Errorf("%s %s: %s (want host:port)", where["addr"], quote(addr), why)}
	}
	if err := checkDatabaseURLs(dbURL, replicas, shards, where); err != nil {
		return err
	}
	if redisURL != "" {
		if _, err := redisOptions(redisURL, where["redis"]); err != nil {
			return err
		}
	}
	return nil
}

// openSampler opens the query sampler of --sample-queries on a small pool
// of its own.
func openSampler(ctx context.Context, dbURL string, log *slog.Logger) (*closingSampler, error) {
	if t, err := database.Parse(dbURL); err != nil || t.Kind != database.Postgres {
		return nil, usageError{fmt.Errorf("--sample-queries: the samples are for strata advise, which needs PostgreSQL; --db is not a postgres:// URL")}
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return nil, fmt.Errorf("--sample-queries: %w", err)
	}
	db.SetMaxOpenConns(samplerConns)
	s, err := advisor.NewSampler(ctx, db, advisor.SamplerConfig{Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &closingSampler{Sampler: s, db: db}, nil
}

// samplerConns is the sampler's pool: one connection writes the samples.
const samplerConns = 1

// closingSampler closes the sampler's pool with it.
type closingSampler struct {
	*advisor.Sampler
	db *sql.DB
}

func (c *closingSampler) Close() error {
	err := c.Sampler.Close()
	return errors.Join(err, c.db.Close())
}

// checkDatabaseURLs checks the primary's, the replicas' and the shards'
// URLs before anything connects, so that an error names the flag (or config
// line) that holds the bad one.
func checkDatabaseURLs(db string, replicas, shards []string, where map[string]string) error {
	primary, err := database.Parse(db)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", where["db"], err)}
	}
	for i, r := range replicas {
		t, err := database.Parse(r)
		if err != nil {
			return usageError{fmt.Errorf("%s (replica %d): %w", where["replica"], i+1, err)}
		}
		if t.Kind != database.Postgres {
			return usageError{fmt.Errorf("%s (replica %d): %s is not PostgreSQL; replicas are PostgreSQL streaming standbys", where["replica"], i+1, t.Display)}
		}
	}
	if len(replicas) > 0 && primary.Kind != database.Postgres {
		return usageError{fmt.Errorf("%s: %s is not PostgreSQL, and replicas (%s) need a PostgreSQL primary", where["db"], primary.Display, where["replica"])}
	}
	return checkShardURLs(db, primary, shards, len(replicas) > 0, where)
}

// checkShardURLs checks the shards' URLs: PostgreSQL, each a database of
// its own (not the main database, not another shard), behind a PostgreSQL
// main database without replicas. Two URLs name the same database when
// they agree on host, port and database name, however else they differ
// (user, settings, a trailing ?sslmode=disable).
func checkShardURLs(mainURL string, main database.Target, shards []string, replicas bool, where map[string]string) error {
	if len(shards) == 0 {
		return nil
	}
	if replicas {
		return usageError{fmt.Errorf("%s and %s: choose one; replicas of the main database are not used with shards (a shard's own replicas are in the shard map)", where["replica"], where["shard"])}
	}
	if main.Kind != database.Postgres {
		return usageError{fmt.Errorf("%s: %s is not PostgreSQL, and shards (%s) need a PostgreSQL main database, which holds the shard map", where["db"], main.Display, where["shard"])}
	}
	seen := map[string]int{pgIdentity(mainURL): 0} // database: its shard number, 0 for the main one
	for i, raw := range shards {
		flag := fmt.Sprintf("%s (shard %d)", where["shard"], i+1)
		if !strings.Contains(raw, "://") {
			// No scheme: net/url finds no user information in
			// "user:password@host/db", so hide everything before the '@'.
			shown := raw
			if at := strings.LastIndexByte(raw, '@'); at >= 0 {
				shown = "…" + raw[at:]
			}
			return usageError{fmt.Errorf("%s %s: not a URL: a shard is a PostgreSQL database (want postgres://USER@HOST:PORT/DB)", flag, quote(maskSettings(shown)))}
		}
		if _, err := postgresURL(flag, raw, "a shard is a PostgreSQL database"); err != nil {
			return usageError{err}
		}
		id := pgIdentity(raw)
		if j, ok := seen[id]; ok {
			same := "the main database (" + where["db"] + "); a shard needs a database of its own"
			if j > 0 {
				same = fmt.Sprintf("shard %d; give each shard once", j)
			}
			return usageError{fmt.Errorf("%s %s: the same database as %s", flag, quote(hidePasswords(raw)), same)}
		}
		seen[id] = i + 1
	}
	return nil
}

// pgIdentity is the database a PostgreSQL URL names: host, port and
// database name. raw has been checked (it parses).
func pgIdentity(raw string) string {
	c, err := pgx.ParseConfig(raw)
	if err != nil {
		return raw
	}
	return fmt.Sprintf("%s:%d/%s", strings.ToLower(c.Host), c.Port, c.Database)
}

// registerPoolStats registers the strata_db_* pool metrics the store's
// routers do not: the primary's alone; none with replicas (the replica
// router registers every pool); the main database's when sharded, whose
// shard router registers each shard's pools labelled shard="NAME", so the
// main pool is labelled shard="main" for one set of label names.
func registerPoolStats(reg prometheus.Registerer, store *storefront.Store, replicas bool) error {
	stats := sqlstats.New(map[string]*sql.DB{"primary": store.DB()})
	switch {
	case store.Shards() != nil:
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"shard": mainPoolShard}, reg)
	case replicas:
		return nil
	}
	if err := reg.Register(stats); err != nil {
		return fmt.Errorf("register the database pool metrics: %w", err)
	}
	return nil
}

// mainPoolShard is the shard label of the main database's pool metrics.
const mainPoolShard = "main"

// redisTimeout bounds one attempt to connect to Redis.
const redisTimeout = 5 * time.Second

// redisOptions parses a Redis URL that came from where (a flag or a config
// file's line), which a bad URL's error names.
func redisOptions(url, where string) (rueidis.ClientOption, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		var ue *neturl.Error // repeats the whole URL, password included
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return opt, usageError{fmt.Errorf("%s %s: %s (want redis://HOST:PORT/DB)", where, quote(hidePasswords(url)), bounded(err.Error()))}
	}
	opt.DisableCache = true
	opt.Dialer.Timeout = redisTimeout
	return opt, nil
}

// openRedis connects to the Redis at url now, failing fast and clearly:
// for the demo, which needs Redis for the stage it measures.
func openRedis(url string) (rueidis.Client, error) {
	opt, err := redisOptions(url, "--redis")
	if err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", url, err)
	}
	return c, nil
}

// dialRedis connects to the Redis at url in the background, for serve:
// Redis is a cache level, so the service starts while it is down, runs
// degraded (says so on /readyz and once in the log) and recovers by itself.
func dialRedis(url, where string, log *slog.Logger) (*cache.RedisConn, error) {
	opt, err := redisOptions(url, where)
	if err != nil {
		return nil, err
	}
	return cache.DialRedis(opt, cache.RedisConnConfig{Logger: log})
}

// serviceRecommendations is the one service --only runs alone.
const serviceRecommendations = "recommendations"

// recommendationsUpstream names the recommendation service in the
// upstream client's metrics (upstream="recommendations") and logs.
const recommendationsUpstream = "recommendations"

// checkServices checks --only and --recommendations-url before anything
// opens; an error names the flag (or config line).
func checkServices(only, recsURL string, where map[string]string) error {
	if only != "" && only != serviceRecommendations {
		return usageError{fmt.Errorf("%s %s: not a service serve runs alone; want %s", where["only"], quote(only), serviceRecommendations)}
	}
	if recsURL == "" {
		return nil
	}
	if only != "" {
		return usageError{fmt.Errorf("%s and %s: choose one; the recommendation service computes the recommendations itself", where["only"], where["recommendations-url"])}
	}
	if _, err := upstream.ParseURL(recsURL); err != nil {
		why := strings.TrimPrefix(err.Error(), upstream.ErrBadConfig.Error()+": URL: ")
		return usageError{fmt.Errorf("%s %s: %s", where["recommendations-url"], quote(hidePasswords(recsURL)), why)}
	}
	return nil
}

// recommendations is where serve's recommendations come from, for the
// log, and what closes its client.
type recommendations struct {
	what   string // "in process", the service's URL, or "served alone"
	client *upstream.Client
}

func (r recommendations) close() {
	if r.client != nil {
		r.client.Close()
	}
}

// serviceHandler returns the HTTP API serve runs over svc: the
// storefront, with its recommendations from the service at recsURL if
// one is given, or with only "recommendations" the recommendation
// service alone; tiers are the search tiers' resources, and limiter, when
// set, stands in front of its routes.
// serviceOptions are what serviceHandler needs besides the service.
type serviceOptions struct {
	only, recsURL string // --only, --recommendations-url
	tiers         storefront.SearchTiers
	reg           *prometheus.Registry
	log           *slog.Logger
	limiter       *overload.Limiter    // nil: no overload control
	tp            trace.TracerProvider // nil: tracing off
}

func serviceHandler(svc storefront.Service, o serviceOptions) (http.Handler, recommendations, error) {
	cfg := storefront.HandlerConfig{Registerer: o.reg, Gatherer: o.reg, Logger: o.log, SearchTiers: o.tiers, Overload: o.limiter, TracerProvider: o.tp}
	switch {
	case o.only == serviceRecommendations:
		return storefront.NewRecommendationHandler(svc, cfg), recommendations{what: "served alone (--only recommendations)"}, nil
	case o.recsURL != "":
		client, err := upstream.New(recommendationsUpstream, o.recsURL, upstream.Config{Registerer: o.reg, Logger: o.log, TracerProvider: o.tp})
		if err != nil {
			return nil, recommendations{}, err
		}
		return storefront.NewHandler(storefront.NewRemoteRecommender(svc, client), cfg), recommendations{what: client.URL(), client: client}, nil
	}
	return storefront.NewHandler(svc, cfg), recommendations{what: "in process"}, nil
}
