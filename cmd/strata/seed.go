package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-dev/strata/storefront"
)

// Default size of 'strata seed': the guide's stage 1 to 2 boundary.
const (
	defaultSeedUsers    = 100_000
	defaultSeedProducts = 10_000
	defaultSeedActions  = 1_000_000
)

func newSeed(g *globals) *cobra.Command {
	var (
		dbURL                    string
		users, products, actions int
		randSeed                 int64
		reset                    bool
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill the storefront database with realistic, deterministic data",
		Long: `Fill an empty storefront database with generated data: products with
Zipf-distributed popularity, users over a few regions, and actions skewed to
popular products and to each user's favourite category, over the last 90 days.
The same --seed and counts give the same rows. PostgreSQL is filled with
COPY, SQLite with batched inserts, in one transaction either way.`,
		Example: `  strata seed --db sqlite://strata.db --users 1000 --products 100 --actions 10000
  strata seed --db "$STRATA_PG_URL" --reset`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			for name, v := range map[string]int{"--users": users, "--products": products} {
				if v < 1 {
					return usageError{fmt.Errorf("%s must be at least 1, got %d", name, v)}
				}
			}
			if actions < 0 {
				return usageError{fmt.Errorf("--actions must not be negative, got %d", actions)}
			}
			ctx := cmd.Context()
			store, err := storefront.Open(ctx, dbURL, storefront.Config{Logger: log})
			if err != nil {
				return err
			}
			defer store.Close()
			progress := newProgress(g.stderr, int64(users+products+actions))
			stats, err := storefront.Seed(ctx, store, storefront.SeedConfig{
				Users: users, Products: products, Actions: actions, RandSeed: randSeed,
				Reset: reset, Progress: progress.update,
			})
			progress.finish()
			if err != nil {
				return err
			}
			rows := stats.Users + stats.Products + stats.Actions
			fmt.Fprintf(g.stdout, "seeded %d users, %d products, %d actions into %s in %s (%.0f rows/s)\n",
				stats.Users, stats.Products, stats.Actions, store.Kind(), stats.Elapsed.Round(time.Millisecond),
				float64(rows)/stats.Elapsed.Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbURL, "db", defaultDB, "database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB")
	f.IntVar(&users, "users", defaultSeedUsers, "number of users")
	f.IntVar(&products, "products", defaultSeedProducts, "number of products")
	f.IntVar(&actions, "actions", defaultSeedActions, "number of user actions")
	f.Int64Var(&randSeed, "seed", 1, "random seed; the same seed gives the same data")
	f.BoolVar(&reset, "reset", false, "replace existing users, products and actions (in the same transaction)")
	return cmd
}

// progress shows seeding progress: a bar on a terminal, a plain line every
// 10 % otherwise (CI logs, pipes).
type progress struct {
	bar   *progressbar.ProgressBar
	out   io.Writer
	total int64
	next  int64
}

func newProgress(out io.Writer, total int64) *progress {
	p := &progress{out: out, total: total, next: total / 10}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription("seeding"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(done, total int64) {
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if done >= p.next && done < total {
		fmt.Fprintf(p.out, "seeding: %d/%d rows (%d%%)\n", done, total, done*100/total)
		p.next += max(1, total/10)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
