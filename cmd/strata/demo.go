package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/demo"
	"github.com/strata-dev/strata/loadtest"
)

func newDemo(g *globals) *cobra.Command {
	var cfg demo.Config
	var keep, redisURL, pgURL, html, promURL, promTargets string
	var replicas, shards []string
	var full, smoke bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the storefront at each stage of the scale journey and measure it under real traffic",
		Long: `Run the scale journey's demo: seed the storefront into a temporary SQLite
database and, for each stage built so far, serve it on a free loopback port
and measure it with the load tester: stage 1 (no cache); stage 2, the
read-through cache in process, and with Redis as L2 when --redis or
STRATA_REDIS_URL names one; stage 3, the service split: the
recommendation service on a listener of its own, called over HTTP by the
storefront (retries within the budget, a circuit breaker), L1 on SQLite;
and with --postgres and --replica, or
STRATA_PG_URL and STRATA_PG_REPLICA_URLS, the storefront on PostgreSQL
served by the primary alone, then with reads on the replicas; and with
--postgres and --shard, or STRATA_PG_URL and STRATA_PG_SHARD_URLS, stage 5:
users and their actions sharded by user id over those primaries (database
strata_demo_shard<N> on each), with the shard map, the products and the id
allocators in the main database strata_demo on --postgres. The demo creates
those databases if they are missing and reseeds them on every run; give the
same shards each time, or the demo publishes a new shard map over the new
ones.

Every stage gets the same plan over the whole API on an open model (the
composite page GET /users/{id}/home included): a search for its breaking
point, then, warm, the same fixed rate (--rate), latency from each
request's scheduled send. The stages are printed side by side with what
each changes (database queries per request, the cache's hit ratio, reads
on replicas, calls and users per shard) and the verdicts of the load
tester's criteria. Then stage 3's budgets: the composite page alone while
the recommendation service stalls past its 500 ms budget, and after it
comes back (page p99, pages with fallback recommendations, the upstream
client's calls, retries and breaker); and an overload phase: stage 1 at
3 × its breaking point, with the overload controller and without, side by
side (successes/s against the capacity, the critical requests' p99 and
errors, the rest's errors). All of it is written with charts to --html.
The standard run takes 65-80 s for all seven stages and both phases;
--full runs the guide's four phases at every stage (baseline, stress with
recovery, a 10× spike, endurance; about 80 s a stage) and longer budgets
and overload phases; --smoke only checks, in a few seconds a stage, that
every stage, endpoint and phase works.

When --prometheus or STRATA_PROMETHEUS_URL (set by eval "$(scripts/dev up)")
names a Prometheus server, the demo says where it is; with
--prometheus-targets naming a file_sd file that Prometheus reads (with
scripts/dev's: "$STRATA_DEV_DIR/prometheus/targets/demo.yml"), it lists
there the stage being measured, so that Prometheus scrapes every stage
while it runs (label stage), and removes the file at the end.

The services' log lines (--log-level) are printed after the tables. Exits
non-zero if any request failed at the fixed rate, or anywhere with a status
other than 503 or 504 (a bug, not load); with --smoke, if a stage failed
its loose check (a few 503s on a loaded machine are load). The verdicts
are otherwise reported, not an exit code.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if full && smoke {
				return usageError{fmt.Errorf("--full and --smoke: choose one")}
			}
			switch {
			case full:
				cfg.Mode = demo.Full
			case smoke:
				cfg.Mode = demo.Smoke
			}
			if err := cfg.LogLevel.UnmarshalText([]byte(g.logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", g.logLevel)}
			}
			cfg.Out, cfg.Dir = g.stdout, keep
			if redisURL == "" {
				redisURL = os.Getenv("STRATA_REDIS_URL") // set by eval "$(scripts/dev env)"
			}
			if redisURL != "" {
				rc, err := openRedis(redisURL)
				if err != nil {
					return err
				}
				defer rc.Close()
				cfg.Redis = rc
			}
			if pgURL == "" {
				pgURL = os.Getenv("STRATA_PG_URL")
			}
			if len(replicas) == 0 && os.Getenv("STRATA_PG_REPLICA_URLS") != "" {
				replicas = strings.Split(os.Getenv("STRATA_PG_REPLICA_URLS"), ",")
			}
			// Shards from the environment need its main server too; without
			// one the stage is left out, and the demo says what it needs.
			if len(shards) == 0 && os.Getenv("STRATA_PG_SHARD_URLS") != "" && pgURL != "" {
				shards = strings.Split(os.Getenv("STRATA_PG_SHARD_URLS"), ",")
			}
			if len(replicas) > 0 && pgURL == "" {
				return usageError{fmt.Errorf("--replica needs --postgres, the primary they replicate")}
			}
			if len(shards) > 0 && pgURL == "" {
				return usageError{fmt.Errorf("--shard needs --postgres, the server of the main database")}
			}
			cfg.Postgres, cfg.Replicas, cfg.Shards = pgURL, replicas, shards
			if promURL == "" {
				promURL = os.Getenv("STRATA_PROMETHEUS_URL")
			}
			cfg.Prometheus, cfg.PrometheusTargets = promURL, promTargets
			start := time.Now()
			res, err := demo.Run(cmd.Context(), cfg)
			if errors.Is(err, demo.ErrBadConfig) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if html != "" {
				if err := writeFile(html, res.Report.WriteHTML); err != nil {
					return fmt.Errorf("--html: %w", err)
				}
				if abs, err := filepath.Abs(html); err == nil {
					html = abs
				}
				fmt.Fprintf(g.stdout, "\nthe load-test report, with charts: %s\n", html)
			}
			fmt.Fprintf(g.stdout, "\ndemo finished in %s\n", time.Since(start).Round(100*time.Millisecond))
			return demoExit(res, cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Users, "users", demo.DefaultUsers, "users to seed")
	f.IntVar(&cfg.Products, "products", demo.DefaultProducts, "products to seed")
	f.IntVar(&cfg.Actions, "actions", demo.DefaultActions, "actions to seed")
	f.Float64Var(&cfg.Rate, "rate", demo.DefaultRate, "the fixed rate every stage is measured at, requests per second")
	f.BoolVar(&full, "full", false, "run the guide's four load-test phases at every stage (about 80 s a stage), and longer budgets and overload phases")
	f.BoolVar(&smoke, "smoke", false, "only check that every stage, endpoint and phase works (a few seconds a stage; loose criteria that fail only a broken stage)")
	f.StringVar(&redisURL, "redis", "", "Redis URL for the stage with an L2 cache (default $STRATA_REDIS_URL; none: that stage is skipped)")
	f.StringVar(&pgURL, "postgres", "", "PostgreSQL primary for the replica stages (default $STRATA_PG_URL); the demo uses its schema strata_demo, and its database strata_demo for the sharded stage's main database")
	f.StringArrayVar(&replicas, "replica", nil, "a streaming replica of --postgres, repeatable (default $STRATA_PG_REPLICA_URLS, comma-separated; none: that stage is skipped)")
	f.StringArrayVar(&shards, "shard", nil, "an independent PostgreSQL primary for the sharded stage, repeatable, at least two (default $STRATA_PG_SHARD_URLS, comma-separated; none: that stage is skipped); the demo uses its database strata_demo_shard<N>")
	f.StringVar(&html, "html", "strata-demo-report.html", "write the load tests' report here (\"\" for none)")
	f.StringVar(&promURL, "prometheus", "", "a Prometheus server to point at, http://HOST:PORT (default $STRATA_PROMETHEUS_URL; none: not mentioned)")
	f.StringVar(&promTargets, "prometheus-targets", "", "a file_sd target file --prometheus reads, which the demo keeps naming the stage it measures, so that Prometheus scrapes each stage")
	f.StringVar(&keep, "dir", "", "folder for the demo database, kept afterwards (default: a temporary folder, removed)")
	return cmd
}

// demoExit is the demo's exit error: any answer no load explains (a 500,
// a 4xx); in a standard or full run any request failed at the fixed
// rate; in a smoke run a stage that failed its loose check (a few 503s
// from a budget on a starved machine are load, and the smoke criteria
// allow them).
func demoExit(res demo.Result, cfg demo.Config) error {
	if n := res.Bugs(); n > 0 {
		return fmt.Errorf("demo: %d answers were errors other than 503 or 504, which no load explains", n)
	}
	if cfg.Mode != demo.Smoke {
		if n := res.Failed(); n > 0 {
			return fmt.Errorf("demo: %d requests failed at the fixed rate of %g/s", n, cfg.Rate)
		}
		return nil
	}
	var failed []string
	for _, st := range res.Stages {
		if st.Report.Assessment.Status != loadtest.StatusPassed {
			failed = append(failed, st.Short+": "+strings.Join(st.Report.Assessment.Findings, "; "))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("demo: the smoke check failed: %s", strings.Join(failed, "; "))
	}
	return nil
}
