package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	neturl "net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/shard"
)

// Bounds of strata shard plan's flags.
const (
	defaultShardPlanTimeout = 5 * time.Minute
	maxShardPlanGrowth      = 100.0 // 10,000 % a year; shard.PlanConfig refuses more
	maxShardTableName       = 200   // longer than any PostgreSQL schema.name (2 × 63 bytes)
)

// newShard is the parent of the sharding commands: plan (the sharding
// planner), map and locate (shardmap.go), add, move, resume and status
// (shardmove.go).
func newShard(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shard",
		Short: "Plan, inspect and reshard the sharding of PostgreSQL databases",
		Long: `Sharding commands: 'plan' designs a sharding strategy from a database's
sizes, statistics and workload, by the guide's rules; 'map' prints the
shard map the control schema holds, and 'locate' the shard of a key.
'add' registers an empty primary, 'move' moves virtual shards onto
another primary (copy and catch-up by logical replication so far),
'resume' runs a recorded move on, and 'status' shows the moves.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newShardPlan(g), newShardMap(g), newShardLocate(g))
	cmd.AddCommand(newShardMoveCommands(g)...) // add, move, resume, status (shardmove.go)
	for _, c := range cmd.Commands() {
		if c.Args == nil {
			c.Args = noArgs
		}
	}
	return cmd
}

// shardPlanFlags are strata shard plan's flags.
type shardPlanFlags struct {
	db, table string
	growth    float64
	sizeGB    float64
	json      bool
	timeout   time.Duration
	target    *neturl.URL
}

func newShardPlan(g *globals) *cobra.Command {
	f := &shardPlanFlags{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Design a sharding strategy for a PostgreSQL database from its sizes, statistics and workload",
		Long: `Read a PostgreSQL database's table and index sizes (pg_total_relation_size),
read/write ratios (pg_stat_user_tables), key skew (pg_stats) and workload
(pg_stat_statements, when created in the database), choose a shard key and
the tables colocated with it, and apply the guide's rules: under 100 GB
vertical partitioning; under 1,000 GB hash sharding over the next power of
two of max(2, size / 50 GB) shards, at most 64; above, range sharding with
max(16, size / 50 GB) initial shards and rebalancing.

A measured size is planned for as it will be in a year (--growth); a
--size-gb override is planned for as given. Nothing is changed in the
database.`,
		Example: `  strata shard plan --db "$STRATA_PG_URL"
  strata shard plan --db "$STRATA_PG_URL" --table user_actions --size-gb 800
  strata shard plan --db "$STRATA_PG_URL" --growth 1 --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return usageError{err}
			}
			return f.run(cmd.Context(), g.stdout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.db, "db", "", "PostgreSQL database to plan for: postgres://USER@HOST:PORT/DB (required)")
	fl.StringVar(&f.table, "table", "", "plan for this table (name or schema.name) and the tables colocated with it")
	fl.Float64Var(&f.growth, "growth", shard.DefaultGrowth, "expected yearly growth as a fraction (0.5: 50 %); a measured size is planned for a year ahead")
	fl.Float64Var(&f.sizeGB, "size-gb", 0, "plan as if the tables to shard were this many GB (0: measured); growth is not applied to it")
	fl.BoolVar(&f.json, "json", false, "print the plan as JSON instead of text")
	fl.DurationVar(&f.timeout, "timeout", defaultShardPlanTimeout, "give up after this long")
	return cmd
}

// check refuses flags that cannot make a plan, naming the flag.
func (f *shardPlanFlags) check() error {
	if f.db == "" {
		return errors.New("--db is required: the PostgreSQL database to plan for (postgres://USER@HOST:PORT/DB)")
	}
	var err error
	if f.target, err = postgresURL("--db", f.db, "the sharding planner needs PostgreSQL"); err != nil {
		return err
	}
	switch {
	case !(f.growth >= 0 && f.growth <= maxShardPlanGrowth):
		return fmt.Errorf("--growth %v: want a yearly fraction from 0 to %v (0.5: 50 %%)", f.growth, maxShardPlanGrowth)
	case !(f.sizeGB >= 0) || math.IsInf(f.sizeGB, 0):
		return fmt.Errorf("--size-gb %v: want 0 (measured) or a positive size in GB", f.sizeGB)
	case len(f.table) > maxShardTableName:
		return fmt.Errorf("--table %s: longer than any PostgreSQL table name", quote(f.table))
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %s: want a positive duration such as 5m", f.timeout)
	}
	return nil
}

// run plans and prints.
func (f *shardPlanFlags) run(parent context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(parent, f.timeout)
	defer cancel()
	db, err := sql.Open("pgx", withConnectTimeout(f.target))
	if err != nil {
		return usageError{fmt.Errorf("--db %s: %s", quote(hidePasswords(f.db)), bounded(maskSettings(err.Error())))}
	}
	defer db.Close()
	cfg := shard.PlanConfig{Table: f.table, SizeGB: f.sizeGB, Growth: f.growth, NoGrowth: f.growth == 0}
	if cfg.NoGrowth {
		cfg.Growth = 0
	}
	s, err := shard.Plan(ctx, db, cfg)
	if err != nil {
		return f.planError(ctx, err)
	}
	if f.json {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return fmt.Errorf("shard plan: %w", err)
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	return s.WriteText(stdout)
}

// planError words an error of shard.Plan for the command line.
func (f *shardPlanFlags) planError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, shard.ErrUnknownTable):
		return usageError{fmt.Errorf("--table %s: %s", quote(f.table), bounded(strings.TrimPrefix(err.Error(), shard.ErrUnknownTable.Error()+": ")))}
	case errors.Is(err, shard.ErrBadPlanConfig):
		return usageError{err}
	case errors.Is(err, shard.ErrUnreachable):
		cause := strings.TrimPrefix(err.Error(), shard.ErrUnreachable.Error()+": ")
		return fmt.Errorf("cannot reach the database at %s: %s", display(f.target), bounded(maskSettings(joinLines(cause))))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("shard plan did not finish within --timeout %s: %s", f.timeout, bounded(maskSettings(joinLines(err.Error()))))
	}
	return errors.New(clipError(maskSettings(joinLines(err.Error()))))
}
