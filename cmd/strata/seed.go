package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-dev/strata/shard"
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
		shards                   []string
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill the storefront database with realistic, deterministic data",
		Long: `Fill an empty storefront database with generated data: products with
Zipf-distributed popularity, users over a few regions, and actions skewed to
popular products and to each user's favourite category, over the last 90 days.
The same --seed and counts give the same rows. PostgreSQL is filled with
COPY, SQLite with batched inserts, in one transaction either way.

With --shard (stage 5), --db is the main database: it gets the products
and the email directory, and each user and their actions go to the shard
the shard map names for the user's id (a map over the --shard databases is
published first if the main database has none). Every database is written
in a transaction of its own, committed once all are written.`,
		Example: `  strata seed --db sqlite://strata.db --users 1000 --products 100 --actions 10000
  strata seed --db "$STRATA_PG_URL" --reset
  strata seed --db postgres://strata@127.0.0.1:55432/strata --shard postgres://strata@127.0.0.1:55435/strata --shard postgres://strata@127.0.0.1:55436/strata`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			for _, c := range []struct {
				flag      string
				v, lo, hi int
			}{
				{"--users", users, 1, storefront.MaxSeedUsers},
				{"--products", products, 1, storefront.MaxSeedProducts},
				{"--actions", actions, 0, storefront.MaxSeedActions},
			} {
				if err := checkCount(c.flag, c.v, c.lo, c.hi); err != nil {
					return err
				}
			}
			where := map[string]string{"db": "--db", "shard": "--shard"}
			if err := checkDatabaseURLs(dbURL, nil, shards, where); err != nil {
				return err
			}
			ctx := cmd.Context()
			store, err := storefront.Open(ctx, dbURL, storefront.Config{Logger: log, Shards: shards})
			if errors.Is(err, storefront.ErrBadShards) { // a shard the stored map does not name
				return usageError{fmt.Errorf("--shard: %w", err)}
			}
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
			if store.Shards() != nil {
				return writeShardCounts(ctx, g.stdout, store.Shards())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dbURL, "db", defaultDB, "database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB")
	f.IntVar(&users, "users", defaultSeedUsers, fmt.Sprintf("number of users, 1 to %d", storefront.MaxSeedUsers))
	f.IntVar(&products, "products", defaultSeedProducts, fmt.Sprintf("number of products, 1 to %d", storefront.MaxSeedProducts))
	f.IntVar(&actions, "actions", defaultSeedActions, fmt.Sprintf("number of user actions, 0 to %d", storefront.MaxSeedActions))
	f.Int64Var(&randSeed, "seed", 1, "random seed, any 64-bit integer; the same seed gives the same data")
	f.BoolVar(&reset, "reset", false, "replace existing users, products and actions (in the same transaction)")
	f.StringArrayVar(&shards, "shard", nil, "a PostgreSQL database to shard users over (stage 5), postgres://...; repeat for each shard (--db is then the main database)")
	return cmd
}

// writeShardCounts writes how many users and actions each shard holds, as
// counted on the shard itself.
func writeShardCounts(ctx context.Context, w io.Writer, r *shard.Router) error {
	urls := map[string]string{} // by shard name
	for _, s := range r.Map().Shards {
		urls[s.Name] = hidePasswords(s.URL)
	}
	for _, t := range r.Shards() {
		var users, actions int64
		err := t.DB.Primary().QueryRowContext(ctx,
			`SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM user_actions)`).Scan(&users, &actions)
		if err != nil {
			return fmt.Errorf("count the rows of shard %s: %w", t.Name, err)
		}
		fmt.Fprintf(w, "  shard %s (%s): %d users, %d actions\n", t.Name, urls[t.Name], users, actions)
	}
	return nil
}

// checkCount refuses a count flag outside lo..hi with a usage error that
// names the flag and the bound it broke.
func checkCount(flag string, v, lo, hi int) error {
	switch {
	case v < lo && lo == 0:
		return usageError{fmt.Errorf("%s must not be negative, got %d (want 0 to %d)", flag, v, hi)}
	case v < lo:
		return usageError{fmt.Errorf("%s must be at least %d, got %d (want %d to %d)", flag, lo, v, lo, hi)}
	case v > hi:
		return usageError{fmt.Errorf("%s must be at most %d, got %d (want %d to %d)", flag, hi, v, lo, hi)}
	}
	return nil
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
