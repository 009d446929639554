package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/internal/demo"
)

func newDemo(g *globals) *cobra.Command {
	var cfg demo.Config
	var keep, redisURL, pgURL string
	var replicas []string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the storefront on an embedded database and measure it under real traffic",
		Long: `Run the scale journey's demo: create a temporary SQLite database, seed it,
and for each stage of the journey built so far (1: no cache; 2: the
read-through cache in process, and with Redis as L2 when --redis or
STRATA_REDIS_URL names one; with --postgres and --replica, or
STRATA_PG_URL and STRATA_PG_REPLICA_URLS, the storefront on PostgreSQL
served by the primary alone and then with reads on the replicas), serve
the storefront on a free loopback port,
drive the same short, bounded burst of real HTTP traffic over every endpoint,
and print requests, rate, latency percentiles and errors per endpoint, then
the stages side by side. Then, unless --load-test=false, it runs the
guide's load-test plan (baseline, stress until the breaking point, a 10×
spike, endurance at 80 % of the capacity found), scaled down to about 40 s
a stage, against every stage, prints the verdicts side by side and writes
them with charts to --html. Exits non-zero if any request of the burst
failed; the load test's verdicts are reported, not an exit code.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Out, cfg.Logger, cfg.Dir = g.stdout, log, keep
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
			if len(replicas) > 0 && pgURL == "" {
				return usageError{fmt.Errorf("--replica needs --postgres, the primary they replicate")}
			}
			cfg.Postgres, cfg.Replicas = pgURL, replicas
			start := time.Now()
			res, err := demo.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if n := res.Errors(); n > 0 {
				return fmt.Errorf("demo: %d requests failed", n)
			}
			fmt.Fprintf(g.stdout, "\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Users, "users", demo.DefaultUsers, "users to seed")
	f.IntVar(&cfg.Products, "products", demo.DefaultProducts, "products to seed")
	f.IntVar(&cfg.Actions, "actions", demo.DefaultActions, "actions to seed")
	f.IntVar(&cfg.Requests, "requests", demo.DefaultRequests, "requests to send per stage")
	f.IntVar(&cfg.Concurrency, "concurrency", demo.DefaultConcurrency, "clients sending at once")
	f.StringVar(&redisURL, "redis", "", "Redis URL for the stage with an L2 cache (default $STRATA_REDIS_URL; none: that stage is skipped)")
	f.StringVar(&pgURL, "postgres", "", "PostgreSQL primary for the replica stage (default $STRATA_PG_URL); the demo uses its schema strata_demo")
	f.StringArrayVar(&replicas, "replica", nil, "a streaming replica of --postgres, repeatable (default $STRATA_PG_REPLICA_URLS, comma-separated; none: that stage is skipped)")
	f.BoolVar(&cfg.LoadTest, "load-test", true, "run the scaled-down load-test plan at every stage")
	f.StringVar(&cfg.HTML, "html", "strata-demo-report.html", "write the load tests' report here (\"\" for none)")
	f.StringVar(&keep, "dir", "", "folder for the demo database, kept afterwards (default: a temporary folder, removed)")
	return cmd
}
