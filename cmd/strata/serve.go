package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"time"

	"github.com/redis/rueidis"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/advisor"
	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/internal/database"
	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/replica"
	"github.com/strata-dev/strata/storefront"
)

// defaultAddr is where serve listens unless told otherwise: loopback only.
const defaultAddr = "127.0.0.1:8080"

func newServe(g *globals) *cobra.Command {
	var (
		dbURL, addr, configPath, redisURL string
		useCache, sampleQueries           bool
		replicas                          []string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the storefront's HTTP API",
		Long: `Serve the storefront's HTTP JSON API (users, actions, products,
recommendations, search, /healthz, /readyz, /metrics).

The database is migrated to the current schema on start-up. SIGINT or
SIGTERM stops accepting new requests and drains the ones in flight.`,
		Example: `  strata serve
  strata serve --db 'postgres://strata@127.0.0.1:55432/strata?sslmode=disable' --addr 127.0.0.1:9090
  strata serve --db postgres://strata@127.0.0.1:55432/strata --replica postgres://strata@127.0.0.1:55433/strata --replica postgres://strata@127.0.0.1:55434/strata
  strata serve --config strata.yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			// where names the source of each value in error messages: the
			// flag, or the config file's line.
			where := map[string]string{"db": "--db", "addr": "--addr", "redis": "--redis", "replica": "--replica"}
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
				if !cmd.Flags().Changed("replica") && c.Replicas.Set {
					replicas, where["replica"] = c.Replicas.V, "config "+c.Replicas.At
				}
				if !cmd.Flags().Changed("cache") && c.Cache.Enabled.Set {
					useCache = c.Cache.Enabled.V
				}
			}
			if redisURL != "" {
				useCache = true // Redis is only used as a cache level
			}
			if err := checkServeInputs(addr, dbURL, redisURL, replicas, where); err != nil {
				return err
			}
			ctx := cmd.Context()
			reg := storefront.NewRegistry()
			scfg := storefront.Config{Logger: log, Replicas: replicas, Registerer: reg}
			if sampleQueries {
				sampler, err := openSampler(ctx, dbURL, log)
				if err != nil {
					return err
				}
				defer sampler.Close()
				scfg.Recorder = sampler
			}
			store, err := storefront.Open(ctx, dbURL, scfg)
			switch {
			case errors.Is(err, replica.ErrNotPrimary):
				return usageError{fmt.Errorf("%s: %w", where["db"], err)}
			case errors.Is(err, replica.ErrNotStandby):
				return usageError{fmt.Errorf("%s: %w", where["replica"], err)}
			case errors.Is(err, replica.ErrBadConfig): // names the field itself
				return usageError{err}
			case err != nil:
				return err
			}
			defer store.Close()
			if len(replicas) == 0 { // the router registers every pool itself
				reg.MustRegister(sqlstats.New(map[string]*sql.DB{"primary": store.DB()}))
			}
			var svc storefront.Service = store
			stage := "1 (no cache)"
			if len(replicas) > 0 {
				stage = fmt.Sprintf("2 (read/write split over %d replicas, no cache)", len(replicas))
			}
			if useCache {
				cfg := storefront.CacheConfig{Registerer: reg, Logger: log}
				stage = "2 (L1 cache)"
				if redisURL != "" {
					conn, err := dialRedis(redisURL, where["redis"], log)
					if err != nil {
						return err
					}
					defer conn.Close() // after the caches (defers run last first)
					cfg.RedisConn = conn
					stage = "2 (L1 + Redis L2 cache)"
				}
				if len(replicas) > 0 {
					stage += fmt.Sprintf(" + %d replicas", len(replicas))
				}
				cached, err := storefront.NewCached(store, cfg)
				if err != nil {
					return err
				}
				defer cached.Close()
				svc = cached
			}
			h := storefront.NewHandler(svc, storefront.HandlerConfig{Registerer: reg, Gatherer: reg, Logger: log})
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			log.Info("serving", "addr", "http://"+ln.Addr().String(), "db", store.Kind(), "schema", storefront.SchemaVersion(), "stage", stage)
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
	f.BoolVar(&sampleQueries, "sample-queries", false, "record a sample of each query with its arguments in the database (table "+advisor.SamplesTable+"), so strata advise binds real values (PostgreSQL only)")
	f.StringVar(&configPath, "config", "", "YAML config file (keys: db, replicas, addr, cache.enabled, cache.redis); flags win over it")
	return cmd
}

// checkServeInputs checks the address and the URLs before anything opens,
// so that an error names the flag (or config line) that holds the bad one
// and leaves nothing behind (not even an SQLite file).
func checkServeInputs(addr, dbURL, redisURL string, replicas []string, where map[string]string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		why := "not host:port"
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err // without the address, which may be huge
		}
		return usageError{fmt.Errorf("%s %s: %s (want host:port)", where["addr"], quote(addr), why)}
	}
	if err := checkDatabaseURLs(dbURL, replicas, where); err != nil {
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

// checkDatabaseURLs checks the primary's and the replicas' URLs before
// anything connects, so that an error names the flag (or config line) that
// holds the bad one.
func checkDatabaseURLs(db string, replicas []string, where map[string]string) error {
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
	return nil
}

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
