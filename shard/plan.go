package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-dev/strata/internal/sqltext"
)

// Strategies the planner chooses between, named as the guide's
// design_sharding_strategy names them (seed: Sharding, 'type').
const (
	// StrategyVertical splits the database by feature or column groups,
	// without horizontal shards.
	StrategyVertical = "vertical_partitioning"
	// StrategyHash spreads the key's hash over a power-of-two number of
	// shards (a KindHash map).
	StrategyHash = "hash_based_sharding"
	// StrategyRange cuts the key into ranges (a KindRange map) that are
	// split and moved as they grow.
	StrategyRange = "range_based_sharding_with_rebalancing"
)

// The guide's rules, each from design_sharding_strategy and
// _calculate_optimal_shard_count.
const (
	verticalBelowGB = 100.0  // seed: Sharding, current_size_gb < 100 → vertical partitioning
	hashBelowGB     = 1000.0 // seed: Sharding, current_size_gb < 1000 → hash-based sharding, else range
	targetShardGB   = 50.0   // seed: Sharding, "Target: 50GB per shard", size_gb // 50
	minHashShards   = 2      // seed: Sharding, max(2, size_gb // 50)
	maxHashShards   = 64     // seed: Sharding, min(optimal_count, 64), "cap at reasonable maximum"
	minRangeShards  = 16     // seed: Sharding, initial_shard_count = max(16, current_size_gb // 50)
)

// DefaultGrowth is the yearly growth PlanConfig.Growth means when zero:
// 50 % a year (issue 13's --growth default; the seed's projected_growth
// has no default).
const DefaultGrowth = 0.5

// maxGrowth bounds PlanConfig.Growth: 100 is 10,000 % a year, past any
// plan worth making.
const maxGrowth = 100.0

// minKeyDistinct is the fewest distinct values a shard key needs: fewer
// than the keyspace's virtual shards (seed: stage 5,
// ShardedDatabaseCluster(shard_count=1000)) leaves virtual shards empty.
const minKeyDistinct = VirtualShards

// hotTopFraction is the share of the key's values whose rows the planner
// reports as the hot-key share (the top 1 %), besides the top value's
// (seed: Sharding, _identify_hot_partitions; the fraction is Strata's).
const hotTopFraction = 0.01

// Complexity levels and timelines (seed: Sharding, implementation_complexity
// and estimated_timeline of each strategy).
var complexityLevels = [...]string{"Low", "Medium", "High"}

// Errors of Plan.
var (
	// ErrBadPlanConfig is returned for a PlanConfig field out of range.
	ErrBadPlanConfig = errors.New("shard: bad plan config")
	// ErrUnknownTable is returned when PlanConfig.Table names no user
	// table of the database.
	ErrUnknownTable = errors.New("shard: no such table")
	// ErrNoKey is returned when no table has a single integer column that
	// could be a shard key (the keyspace routes 64-bit integer keys).
	ErrNoKey = errors.New("shard: no shard key candidate")
	// ErrUnreachable is returned when the database cannot be reached.
	ErrUnreachable = errors.New("shard: cannot reach the database")
)

// PlanConfig holds Plan's optional settings; the zero value plans the
// whole database at its measured size with DefaultGrowth.
type PlanConfig struct {
	// Table restricts the plan to the key candidates of this table (a
	// name on the search path, or schema.name) and the tables colocated
	// with it; "" considers every user table.
	Table string
	// SizeGB, when positive, replaces the measured size of the tables to
	// shard ("what if they were 800 GB"). It is the size planned for, as
	// given: growth is not applied to it (the plan says what a year's
	// growth would make of it). 0 means the measured size.
	SizeGB float64
	// Growth is the expected yearly growth as a fraction (0.5: 50 %). A
	// measured size is planned for as it will be in a year:
	// size × (1 + Growth). 0 means DefaultGrowth; set NoGrowth for none.
	Growth float64
	// NoGrowth plans for the measured size as it is today.
	NoGrowth bool
}

// check validates the config and returns the growth to use.
func (c PlanConfig) check() (float64, error) {
	switch {
	case math.IsNaN(c.SizeGB) || math.IsInf(c.SizeGB, 0) || c.SizeGB < 0:
		return 0, fmt.Errorf("%w: SizeGB %v, want 0 (measured) or a positive size in GB", ErrBadPlanConfig, c.SizeGB)
	case math.IsNaN(c.Growth) || c.Growth < 0 || c.Growth > maxGrowth:
		return 0, fmt.Errorf("%w: Growth %v, want a yearly fraction from 0 to %v (0.5: 50 %%)", ErrBadPlanConfig, c.Growth, maxGrowth)
	case c.NoGrowth && c.Growth != 0:
		return 0, fmt.Errorf("%w: both Growth (%v) and NoGrowth are set", ErrBadPlanConfig, c.Growth)
	case c.NoGrowth:
		return 0, nil
	case c.Growth == 0:
		return DefaultGrowth, nil
	}
	return c.Growth, nil
}

// Strategy is the planner's answer: every field of the guide's
// design_sharding_strategy, each computed from the database, with why the
// key was chosen and what was read.
type Strategy struct {
	// Database is the database planned for.
	Database string `json:"database"`
	// Table is PlanConfig.Table, if the plan was restricted to it.
	Table string `json:"table,omitempty"`
	// Strategy is StrategyVertical, StrategyHash or StrategyRange.
	Strategy string `json:"strategy"`
	// Recommendation says what the strategy means for these tables.
	Recommendation string `json:"recommendation"`
	// ShardCount is the number of shards (for StrategyRange, the initial
	// number); 0 for StrategyVertical, which keeps one database per feature.
	ShardCount int `json:"shard_count"`
	// ShardCountWhy is the rule and the arithmetic that gave ShardCount.
	ShardCountWhy string `json:"shard_count_why"`
	// ShardKey is the chosen key.
	ShardKey ShardKey `json:"shard_key"`
	// Why says why this key: distinct values, the share of the workload
	// that filters on it, the tables it colocates, the candidates passed over.
	Why []string `json:"why"`
	// Colocated are the tables sharded together by the key (the key's table
	// and every table whose foreign key references the same column).
	Colocated []string `json:"colocated"`
	// Reference are the small, read-mostly tables the sharded ones
	// reference: they stay in the main database.
	Reference []string `json:"reference"`
	// Rebalancing says how ranges are split and moved (StrategyRange only).
	Rebalancing string `json:"rebalancing,omitempty"`
	// Complexity is the implementation complexity and its reasons.
	Complexity Complexity `json:"complexity"`
	// MigrationPlan is the zero-downtime migration, phase by phase.
	MigrationPlan []Phase `json:"migration_plan"`
	// MonitoringRequirements are what to watch, with the figures read.
	MonitoringRequirements []string `json:"monitoring_requirements"`
	// RollbackStrategy says how to go back at each point of the migration.
	RollbackStrategy []string `json:"rollback_strategy"`
	// Inputs are the figures the plan was computed from.
	Inputs Inputs `json:"inputs"`
	// Notes are caveats: missing statistics, a fallback taken.
	Notes []string `json:"notes,omitempty"`
}

// ShardKey is a shard key: a column and every column that carries the same
// values (foreign keys referencing it).
type ShardKey struct {
	// Table and Column name the key's own column (the referenced one).
	Table  string `json:"table"`
	Column string `json:"column"`
	// Columns are every table.column sharded by the key, Table's first.
	Columns []string `json:"columns"`
	// Distinct is the estimated number of distinct key values (pg_stats).
	Distinct float64 `json:"distinct"`
	// Statements is how many workload statements filter or join on the key.
	Statements int `json:"statements"`
	// WorkloadShare is the share of workload calls (pg_stat_statements)
	// made by those statements, 0 to 1.
	WorkloadShare float64 `json:"workload_share"`
	// Source is "workload" when pg_stat_statements chose it, "keys" when
	// primary and foreign keys did.
	Source string `json:"source"`
	// HotKey is the skew of the key's values.
	HotKey HotKey `json:"hot_key"`
}

// HotKey is the skew of a key's values in the table that holds most rows
// per key (pg_stats most_common_vals and most_common_freqs).
type HotKey struct {
	// Column is the table.column measured.
	Column string `json:"column"`
	// TopValue is the most common value, "" when none stands out.
	TopValue string `json:"top_value,omitempty"`
	// TopShare is the share of the rows holding the most common value.
	TopShare float64 `json:"top_share"`
	// Top1PctShare is the share of the rows holding the top 1 % of values.
	Top1PctShare float64 `json:"top_1pct_share"`
	// Hot is set when the top value alone holds more than one shard's share
	// of the rows: no map can spread it.
	Hot bool `json:"hot"`
}

// Complexity is the implementation complexity of a strategy.
type Complexity struct {
	// Level is Low, Medium or High: the guide's for the strategy, one
	// higher for a hot key.
	Level string `json:"level"`
	// Timeline is the guide's estimated timeline for the strategy.
	Timeline string `json:"timeline"`
	// Reasons are what makes this migration easier or harder.
	Reasons []string `json:"reasons"`
}

// Phase is one phase of the migration.
type Phase struct {
	Name     string   `json:"name"`
	Duration string   `json:"duration"`
	Tasks    []string `json:"tasks"`
}

// Inputs are the figures a Strategy was computed from.
type Inputs struct {
	// MeasuredBytes is the size of the colocated tables, indexes and TOAST
	// included (pg_total_relation_size).
	MeasuredBytes int64 `json:"measured_bytes"`
	// SizeGBOverride is PlanConfig.SizeGB (0: none).
	SizeGBOverride float64 `json:"size_gb_override,omitempty"`
	// Growth is the yearly growth planned for.
	Growth float64 `json:"growth"`
	// PlanningSizeGB is the size the rules were applied to.
	PlanningSizeGB float64 `json:"planning_size_gb"`
	// SizeBasis says how PlanningSizeGB was reached.
	SizeBasis string `json:"size_basis"`
	// NextYearSizeGB is PlanningSizeGB for an override, grown a year.
	NextYearSizeGB float64 `json:"next_year_size_gb"`
	// Reads and Writes are rows read (seq_tup_read + idx_tup_fetch) and
	// written (n_tup_ins + n_tup_upd + n_tup_del) in the colocated tables
	// since the statistics were reset (pg_stat_user_tables).
	Reads  int64 `json:"reads"`
	Writes int64 `json:"writes"`
	// ReadWriteRatio is Reads / Writes (Writes counted as 1 when 0).
	ReadWriteRatio float64 `json:"read_write_ratio"`
	// Workload is where the key candidates came from.
	Workload string `json:"workload"`
	// WorkloadStatements and WorkloadCalls count the application
	// statements read from pg_stat_statements and their calls.
	WorkloadStatements int   `json:"workload_statements"`
	WorkloadCalls      int64 `json:"workload_calls"`
	// Tables are the tables considered, with their role in the plan.
	Tables []TableInput `json:"tables"`
}

// Roles of a table in a plan.
const (
	RoleSharded   = "sharded"   // colocated by the shard key
	RoleReference = "reference" // small, read-mostly, referenced: stays in the main database
	RoleMain      = "main"      // not joined on the key: stays in the main database
)

// TableInput is what the planner read of one table.
type TableInput struct {
	Name           string  `json:"name"`
	Role           string  `json:"role"`
	Bytes          int64   `json:"bytes"`
	Rows           float64 `json:"rows"`
	Reads          int64   `json:"reads"`
	Writes         int64   `json:"writes"`
	ReadWriteRatio float64 `json:"read_write_ratio"`
	// Key is the column that carries the shard key, for a sharded table.
	Key string `json:"key,omitempty"`
	// Why says why the table has its role.
	Why string `json:"why"`
}

// Plan reads the database's tables, statistics and workload and designs
// a sharding strategy by the guide's rules (see StrategyFor). It needs
// PostgreSQL 14 or later; pg_stat_statements, when created in the
// database and readable, supplies the workload, and without it the key
// candidates come from primary and foreign keys (a Note says so).
func Plan(ctx context.Context, db *sql.DB, cfg PlanConfig) (*Strategy, error) {
	growth, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	p := &planner{cfg: cfg, growth: growth, out: &Strategy{Table: cfg.Table}}
	if err := p.read(ctx, db); err != nil {
		return nil, err
	}
	if err := p.choose(); err != nil {
		return nil, err
	}
	p.design()
	return p.out, nil
}

// StrategyFor applies the guide's rules to a size in GB: under 100 GB
// vertical partitioning (no shards); under 1,000 GB hash sharding over the
// next power of two of max(2, ⌊size / 50⌋) shards, at most 64; above,
// range sharding with max(16, ⌊size / 50⌋) initial shards. why is the
// arithmetic, for a report.
func StrategyFor(sizeGB float64) (strategy string, shards int, why string) {
	per := math.Floor(sizeGB / targetShardGB) // the seed's size_gb // 50
	switch {
	case sizeGB < verticalBelowGB:
		return StrategyVertical, 0, fmt.Sprintf("%s GB is under %s GB: vertical partitioning, no horizontal shards yet",
			gb(sizeGB), gb(verticalBelowGB))
	case sizeGB < hashBelowGB:
		base := max(minHashShards, int(per))
		pow := nextPow2(base)
		n := min(pow, maxHashShards)
		return StrategyHash, n, fmt.Sprintf("%s GB is under %s GB: hash sharding; ⌊%s GB / %s GB per shard⌋ = %d, max(%d, %d) = %d, next power of two %d, at most %d: %d shards",
			gb(sizeGB), gb(hashBelowGB), gb(sizeGB), gb(targetShardGB), int(per), minHashShards, int(per), base, pow, maxHashShards, n)
	}
	n := max(float64(minRangeShards), per)
	if n > float64(math.MaxInt32) {
		n = math.MaxInt32
	}
	return StrategyRange, int(n), fmt.Sprintf("%s GB is %s GB or more: range sharding with rebalancing; ⌊%s GB / %s GB per shard⌋ = %s, max(%d, %s) = %d initial shards",
		gb(sizeGB), gb(hashBelowGB), gb(sizeGB), gb(targetShardGB), gb(per), minRangeShards, gb(per), int(n))
}

// nextPow2 is the smallest power of two at least n (n ≥ 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// planTable is one user table as the planner reads it.
type planTable struct {
	oid           int64
	name          string
	bytes         int64
	rows          float64
	reads, writes int64
	cols          map[string]*planColumn
	pk            string // single-column integer primary key, or ""
	refs          []planFK
}

// planFK is a single-column foreign key of a table.
type planFK struct {
	col       string
	parent    int64 // oid
	parentCol string
}

// planColumn is one column and its pg_stats row.
type planColumn struct {
	name      string
	integer   bool
	hasStats  bool
	nDistinct float64
	nullFrac  float64
	avgWidth  int
	topValue  string
	freqs     []float64
	histLo    string
	histHi    string
}

// distinct is the estimated number of distinct values in rows rows.
func (c *planColumn) distinct(rows float64) float64 {
	switch {
	case !c.hasStats:
		return 0
	case c.nDistinct < 0:
		return -c.nDistinct * rows
	}
	return c.nDistinct
}

// statement is one application statement of the workload.
type statement struct {
	text  string
	calls int64
}

// domain is a key candidate: a column and the columns that reference it.
type domain struct {
	root    *planTable
	rootCol string
	members []member // root first
	// Measured from the catalogue and the workload.
	distinct   float64
	bytes      int64
	statements int
	calls      int64
}

// member is one table.column of a domain.
type member struct {
	t   *planTable
	col string
}

func (d *domain) name() string { return d.root.name + "." + d.rootCol }

func (d *domain) has(t *planTable) bool {
	for _, m := range d.members {
		if m.t == t {
			return true
		}
	}
	return false
}

// planner is one run of Plan.
type planner struct {
	cfg     PlanConfig
	growth  float64
	out     *Strategy
	tables  map[int64]*planTable
	byName  map[string]*planTable
	stmts   []statement
	calls   int64 // of every workload statement
	hasLoad bool  // the workload names at least one statement
	chosen  *domain
	passed  []string // candidates passed over, and why
	group   []*planTable
	refs    []*planTable
}

// read loads the tables, columns, keys and workload.
func (p *planner) read(ctx context.Context, db *sql.DB) error {
	if err := db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&p.out.Database); err != nil {
		return fmt.Errorf("shard: plan: %w", err)
	}
	if err := p.readTables(ctx, db); err != nil {
		return err
	}
	if p.cfg.Table != "" && p.lookup(p.cfg.Table) == nil {
		return fmt.Errorf("%w: %q is not a table of database %q", ErrUnknownTable, sqltext.Clip(p.cfg.Table, 80), p.out.Database)
	}
	if len(p.tables) == 0 {
		return fmt.Errorf("%w: database %q has no user tables", ErrNoKey, p.out.Database)
	}
	if err := p.readColumns(ctx, db); err != nil {
		return err
	}
	if err := p.readKeys(ctx, db); err != nil {
		return err
	}
	return p.readWorkload(ctx, db)
}

// lookup finds a table by name or schema.name.
func (p *planner) lookup(name string) *planTable {
	if t := p.byName[name]; t != nil {
		return t
	}
	if _, n, ok := strings.Cut(name, "."); ok && !strings.Contains(n, ".") {
		if t := p.byName[n]; t != nil && strings.HasPrefix(name, "public.") {
			return t
		}
	}
	return nil
}

func (p *planner) readTables(ctx context.Context, db *sql.DB) error {
	// Partitioned tables count their leaf partitions.
	const q = `
SELECT c.oid::bigint,
       CASE WHEN pg_table_is_visible(c.oid) THEN c.relname ELSE n.nspname || '.' || c.relname END,
       t.bytes, t.rows, t.reads, t.writes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
  SELECT COALESCE(sum(pg_total_relation_size(k.oid)), 0)::bigint AS bytes,
         COALESCE(sum(GREATEST(k.reltuples, 0)), 0)::float8 AS rows,
         COALESCE(sum(s.seq_tup_read + COALESCE(s.idx_tup_fetch, 0)), 0)::bigint AS reads,
         COALESCE(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::bigint AS writes
  FROM (SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf AND c.relkind = 'p'
        UNION ALL SELECT c.oid WHERE c.relkind = 'r') pt
  JOIN pg_class k ON k.oid = pt.relid
  LEFT JOIN pg_stat_user_tables s ON s.relid = k.oid) t
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("shard: plan: read tables: %w", err)
	}
	defer rows.Close()
	p.tables, p.byName = map[int64]*planTable{}, map[string]*planTable{}
	for rows.Next() {
		t := &planTable{cols: map[string]*planColumn{}}
		if err := rows.Scan(&t.oid, &t.name, &t.bytes, &t.rows, &t.reads, &t.writes); err != nil {
			return fmt.Errorf("shard: plan: read tables: %w", err)
		}
		p.tables[t.oid], p.byName[t.name] = t, t
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shard: plan: read tables: %w", err)
	}
	return nil
}

func (p *planner) readColumns(ctx context.Context, db *sql.DB) error {
	// pg_stats has an inherited row for a partitioned table: prefer it.
	const q = `
SELECT c.oid::bigint, a.attname, a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype),
       s.n_distinct IS NOT NULL, COALESCE(s.n_distinct, 0)::float8, COALESCE(s.null_frac, 0)::float8,
       COALESCE(s.avg_width, 0),
       COALESCE(CASE WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
                     THEN split_part(btrim(s.most_common_vals::text, '{}'), ',', 1) END, ''),
       COALESCE(array_to_string(s.most_common_freqs, ','), ''),
       COALESCE(CASE WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
                     THEN btrim(s.histogram_bounds::text, '{}') END, '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
  SELECT * FROM pg_stats s
  WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
  ORDER BY s.inherited DESC LIMIT 1) s ON true
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("shard: plan: read columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid int64
		var freqs, hist string
		c := &planColumn{}
		if err := rows.Scan(&oid, &c.name, &c.integer, &c.hasStats, &c.nDistinct, &c.nullFrac,
			&c.avgWidth, &c.topValue, &freqs, &hist); err != nil {
			return fmt.Errorf("shard: plan: read columns: %w", err)
		}
		for _, f := range strings.Split(freqs, ",") {
			if v, err := strconv.ParseFloat(f, 64); err == nil {
				c.freqs = append(c.freqs, v)
			}
		}
		if b := strings.Split(hist, ","); hist != "" {
			c.histLo, c.histHi = b[0], b[len(b)-1]
		}
		if t := p.tables[oid]; t != nil {
			t.cols[c.name] = c
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shard: plan: read columns: %w", err)
	}
	return nil
}

// readKeys reads the single-column primary and foreign keys between the
// user tables.
func (p *planner) readKeys(ctx context.Context, db *sql.DB) error {
	const q = `
SELECT con.contype::text, con.conrelid::bigint, a.attname, COALESCE(con.confrelid, 0)::bigint, COALESCE(fa.attname, '')
FROM pg_constraint con
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
LEFT JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
WHERE con.contype IN ('p', 'f') AND cardinality(con.conkey) = 1 AND con.conparentid = 0
ORDER BY con.conname`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("shard: plan: read keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, col, parentCol string
		var rel, parent int64
		if err := rows.Scan(&kind, &rel, &col, &parent, &parentCol); err != nil {
			return fmt.Errorf("shard: plan: read keys: %w", err)
		}
		t := p.tables[rel]
		if t == nil || t.cols[col] == nil || !t.cols[col].integer {
			continue
		}
		switch {
		case kind == "p":
			t.pk = col
		case p.tables[parent] != nil:
			t.refs = append(t.refs, planFK{col: col, parent: parent, parentCol: parentCol})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shard: plan: read keys: %w", err)
	}
	return nil
}

// application reports whether a statement reads or writes tables
// (SELECT, TABLE, VALUES, WITH, INSERT, UPDATE, DELETE or MERGE, after any
// leading comments) other than the catalogues and statistics.
func application(text string) bool {
	return (sqltext.Kind(text) != "other" || sqltext.Keyword(text) == "merge") && !sqltext.IsCatalog(text)
}

// readWorkload reads pg_stat_statements if the extension is created in
// the database and readable; otherwise it notes why the key candidates
// come from primary and foreign keys.
func (p *planner) readWorkload(ctx context.Context, db *sql.DB) error {
	var schema string
	err := db.QueryRowContext(ctx, `SELECT quote_ident(n.nspname) FROM pg_extension e
		JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`).Scan(&schema)
	if errors.Is(err, sql.ErrNoRows) {
		p.out.Inputs.Workload = "primary and foreign keys (pg_stat_statements is not created in this database)"
		p.note("pg_stat_statements is not created in database %q (CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries): the key candidates are the primary and foreign keys, ranked by the data they cover, not by the workload", p.out.Database)
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: plan: look up pg_stat_statements: %w", err)
	}
	q := `SELECT query, sum(calls)::bigint FROM ` + schema + `.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query IS NOT NULL
GROUP BY query`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		p.out.Inputs.Workload = "primary and foreign keys (pg_stat_statements cannot be read)"
		p.note("pg_stat_statements cannot be read (%s): the key candidates are the primary and foreign keys", sqltext.FirstLine(err.Error(), 200))
		return nil
	}
	defer rows.Close()
	hidden := 0
	for rows.Next() {
		var s statement
		if err := rows.Scan(&s.text, &s.calls); err != nil {
			return fmt.Errorf("shard: plan: read pg_stat_statements: %w", err)
		}
		switch {
		case s.text == "<insufficient privilege>":
			hidden++
		case application(s.text):
			p.stmts = append(p.stmts, s)
			p.calls += s.calls
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shard: plan: read pg_stat_statements: %w", err)
	}
	if hidden > 0 {
		p.note("%d statements of other roles are hidden from this role (GRANT pg_read_all_stats to see them)", hidden)
	}
	p.hasLoad = len(p.stmts) > 0
	p.out.Inputs.WorkloadStatements, p.out.Inputs.WorkloadCalls = len(p.stmts), p.calls
	if !p.hasLoad {
		p.out.Inputs.Workload = "primary and foreign keys (pg_stat_statements holds no statements on this database's tables)"
		p.note("pg_stat_statements holds no statements on this database's tables yet: the key candidates are the primary and foreign keys; run the workload, then plan again")
		return nil
	}
	p.out.Inputs.Workload = fmt.Sprintf("pg_stat_statements: %d statements, %d calls", len(p.stmts), p.calls)
	return nil
}

func (p *planner) note(format string, args ...any) {
	p.out.Notes = append(p.out.Notes, fmt.Sprintf(format, args...))
}

// filterPattern matches col used in a condition (compared, in an IN list,
// or on the right of a comparison, as in a join), unqualified or qualified
// by one of names (the table's name and its aliases in the statement).
func filterPattern(names []string, col string) *regexp.Regexp {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	qual := `(?:"?(?:` + strings.Join(q, "|") + `)"?\.)?`
	c := `"?` + regexp.QuoteMeta(col) + `"?`
	return regexp.MustCompile(`(?i)(?:^|[^\w."])` + qual + c + `\s*(?:=|<>|!=|<=|>=|<|>|\bin\b|\bbetween\b|\bis\s+not\s+distinct\b)` +
		`|(?:=|<>|!=|<=|>=|<|>)\s*` + qual + c + `(?:[^\w"]|$)`)
}

// tablePattern matches a statement that reads or writes table, capturing
// its alias, if any.
func tablePattern(table string) *regexp.Regexp {
	name := table
	if _, n, ok := strings.Cut(table, "."); ok {
		name = n
	}
	return regexp.MustCompile(`(?i)\b(?:from|join|update|into|table)\s+(?:only\s+)?(?:"?\w+"?\.)?"?` + regexp.QuoteMeta(name) +
		`"?(?:\s+(?:as\s+)?(\w+)|[^\w"]|$)`)
}

// filtersOn reports whether statement text reads or writes table and
// filters or joins on its column col.
func filtersOn(text, table, col string) bool {
	ms := tablePattern(table).FindAllStringSubmatch(text, -1)
	if len(ms) == 0 {
		return false
	}
	names := []string{table}
	if _, n, ok := strings.Cut(table, "."); ok {
		names = append(names, n)
	}
	for _, m := range ms {
		if a := strings.ToLower(m[1]); a != "" && !sqltext.NotAlias(a) {
			names = append(names, m[1])
		}
	}
	return filterPattern(names, col).MatchString(text)
}

// choose builds the key candidates and picks one.
func (p *planner) choose() error {
	ds := p.domains()
	if len(ds) == 0 {
		return fmt.Errorf("%w: no table%s has a single-column integer primary key, foreign key or filtered column (the keyspace routes 64-bit integer keys)",
			ErrNoKey, map[bool]string{true: " among " + strconv.Quote(p.cfg.Table) + " and its colocated tables", false: ""}[p.cfg.Table != ""])
	}
	p.measure(ds)
	// Enough distinct values first; then the most workload calls (the
	// workload that can be routed to one shard); then the most data.
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if ea, eb := a.distinct >= minKeyDistinct, b.distinct >= minKeyDistinct; ea != eb {
			return ea
		}
		if a.calls != b.calls {
			return a.calls > b.calls
		}
		if a.bytes != b.bytes {
			return a.bytes > b.bytes
		}
		return a.name() < b.name()
	})
	p.chosen = ds[0]
	if p.chosen.distinct < minKeyDistinct {
		p.note("no candidate has %d distinct values (the keyspace's virtual shards): %s has about %.0f, so some virtual shards would hold no keys",
			minKeyDistinct, p.chosen.name(), p.chosen.distinct)
	}
	for _, d := range ds[1:] {
		why := fmt.Sprintf("%s: %s distinct values", d.name(), count(d.distinct))
		if d.distinct < minKeyDistinct {
			why += fmt.Sprintf(", fewer than the %d virtual shards", minKeyDistinct)
		}
		if p.hasLoad {
			why += fmt.Sprintf(", %d statements (%s of calls) filter on it", d.statements, pct(share(d.calls, p.calls)))
		}
		p.passed = append(p.passed, why)
	}
	return nil
}

// domains builds the key candidates: each referenced column with the
// columns referencing it, each unreferenced integer primary key, and (with
// a workload) each filtered integer column of high distinct count that is
// in no other candidate. With PlanConfig.Table, only those containing it.
func (p *planner) domains() []*domain {
	byRoot := map[string]*domain{}
	var out []*domain
	add := func(t *planTable, col string) *domain {
		k := t.name + "." + col
		if d := byRoot[k]; d != nil {
			return d
		}
		d := &domain{root: t, rootCol: col, members: []member{{t, col}}}
		byRoot[k] = d
		out = append(out, d)
		return d
	}
	covered := map[string]bool{}
	for _, t := range p.sortedTables() {
		for _, fk := range t.refs {
			parent := p.tables[fk.parent]
			if c := parent.cols[fk.parentCol]; c == nil || !c.integer {
				continue
			}
			d := add(parent, fk.parentCol)
			covered[parent.name+"."+fk.parentCol] = true
			if !d.has(t) {
				d.members = append(d.members, member{t, fk.col})
			}
			covered[t.name+"."+fk.col] = true
		}
	}
	for _, t := range p.sortedTables() {
		if t.pk != "" && !covered[t.name+"."+t.pk] {
			add(t, t.pk)
			covered[t.name+"."+t.pk] = true
		}
	}
	if p.hasLoad {
		for _, t := range p.sortedTables() {
			for _, c := range sortedColumns(t) {
				if c.integer && !covered[t.name+"."+c.name] && c.distinct(t.rows) >= minKeyDistinct && p.filters(t, c.name) > 0 {
					add(t, c.name)
				}
			}
		}
	}
	if p.cfg.Table == "" {
		return out
	}
	want := p.lookup(p.cfg.Table)
	var kept []*domain
	for _, d := range out {
		if d.has(want) {
			kept = append(kept, d)
		}
	}
	return kept
}

// filters counts the workload statements on t that filter on column col.
func (p *planner) filters(t *planTable, col string) int {
	n := 0
	for _, s := range p.stmts {
		if filtersOn(s.text, t.name, col) {
			n++
		}
	}
	return n
}

// measure fills each candidate's distinct count, size and workload.
func (p *planner) measure(ds []*domain) {
	for _, d := range ds {
		for _, m := range d.members {
			c := m.t.cols[m.col]
			if c.hasStats {
				d.distinct = max(d.distinct, c.distinct(m.t.rows))
			} else if m.col == m.t.pk {
				d.distinct = max(d.distinct, m.t.rows)
			}
			d.bytes += m.t.bytes
		}
		for _, s := range p.stmts {
			for _, m := range d.members {
				if filtersOn(s.text, m.t.name, m.col) {
					d.statements++
					d.calls += s.calls
					break
				}
			}
		}
	}
}

func (p *planner) sortedTables() []*planTable {
	ts := make([]*planTable, 0, len(p.tables))
	for _, t := range p.tables {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

func sortedColumns(t *planTable) []*planColumn {
	cs := make([]*planColumn, 0, len(t.cols))
	for _, c := range t.cols {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

// share is part / whole, 0 when whole is 0.
func share(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// ratio is reads / writes, writes counted as 1 when 0.
func ratio(reads, writes int64) float64 {
	return float64(reads) / float64(max(writes, 1))
}

// design classifies the tables, sizes the plan and writes every field of
// the answer.
func (p *planner) design() {
	d := p.chosen
	s := p.out
	p.classify()
	var measured, reads, writes int64
	for _, t := range p.group {
		measured += t.bytes
		reads += t.reads
		writes += t.writes
		s.Colocated = append(s.Colocated, t.name)
	}
	for _, t := range p.refs {
		s.Reference = append(s.Reference, t.name)
	}
	in := &s.Inputs
	in.MeasuredBytes, in.Growth, in.Reads, in.Writes, in.ReadWriteRatio = measured, p.growth, reads, writes, ratio(reads, writes)
	measuredGB := float64(measured) / (1 << 30)
	if p.cfg.SizeGB > 0 {
		in.SizeGBOverride, in.PlanningSizeGB = p.cfg.SizeGB, p.cfg.SizeGB
		in.NextYearSizeGB = p.cfg.SizeGB * (1 + p.growth)
		in.SizeBasis = fmt.Sprintf("--size-gb %s GB, planned as given (measured %s; growth is not applied to an override)", gb(p.cfg.SizeGB), sqltext.Bytes(measured))
	} else {
		in.PlanningSizeGB = measuredGB * (1 + p.growth)
		in.NextYearSizeGB = in.PlanningSizeGB
		in.SizeBasis = fmt.Sprintf("measured %s × (1 + %s yearly growth) = %s GB: the size in a year", sqltext.Bytes(measured), pct(p.growth), gb(in.PlanningSizeGB))
	}
	s.Strategy, s.ShardCount, s.ShardCountWhy = StrategyFor(in.PlanningSizeGB)
	if p.cfg.SizeGB > 0 {
		if next, n, _ := StrategyFor(in.NextYearSizeGB); next != s.Strategy || n != s.ShardCount {
			p.note("at %s yearly growth, %s GB becomes %s GB in a year: %s", pct(p.growth), gb(p.cfg.SizeGB), gb(in.NextYearSizeGB), strategyText(next, n))
		}
	}
	s.ShardKey = ShardKey{Table: d.root.name, Column: d.rootCol, Distinct: d.distinct, Statements: d.statements,
		WorkloadShare: share(d.calls, p.calls), Source: "keys", HotKey: p.hotKey()}
	if p.hasLoad {
		s.ShardKey.Source = "workload"
	}
	for _, m := range d.members {
		s.ShardKey.Columns = append(s.ShardKey.Columns, m.t.name+"."+m.col)
	}
	p.why()
	p.recommend()
	p.complexity()
	p.monitoring()
	p.migration()
	p.rollback()
}

// classify sorts the considered tables into the sharded group, the
// reference tables and the rest.
func (p *planner) classify() {
	d := p.chosen
	inGroup := map[*planTable]string{}
	for _, m := range d.members {
		inGroup[m.t] = m.col
		p.group = append(p.group, m.t)
	}
	var groupBytes int64
	for _, t := range p.group {
		groupBytes += t.bytes
	}
	referenced := map[*planTable][]string{}
	for _, t := range p.group {
		for _, fk := range t.refs {
			parent := p.tables[fk.parent]
			if _, ok := inGroup[parent]; !ok {
				referenced[parent] = append(referenced[parent], t.name+"."+fk.col)
			}
		}
	}
	for _, t := range p.sortedTables() {
		in := TableInput{Name: t.name, Bytes: t.bytes, Rows: t.rows, Reads: t.reads, Writes: t.writes, ReadWriteRatio: ratio(t.reads, t.writes)}
		by, isRef := referenced[t]
		switch col, ok := inGroup[t]; {
		case ok:
			in.Role, in.Key = RoleSharded, col
			in.Why = fmt.Sprintf("%s.%s carries the key %s", t.name, col, d.name())
			if t == d.root {
				in.Why = fmt.Sprintf("%s.%s is the key", t.name, col)
			}
		case isRef && t.reads > 0 && t.reads >= t.writes && t.bytes < groupBytes:
			in.Role = RoleReference
			in.Why = fmt.Sprintf("referenced by %s, read-mostly (%s:1) and smaller than the sharded tables (%s against %s): stays in the main database",
				strings.Join(by, ", "), ratioText(in.ReadWriteRatio), sqltext.Bytes(t.bytes), sqltext.Bytes(groupBytes))
			p.refs = append(p.refs, t)
		case isRef:
			in.Role = RoleMain
			in.Why = fmt.Sprintf("referenced by %s but not small and read-mostly (%s, %s:1 reads to writes): stays in the main database, and joins to it cross databases",
				strings.Join(by, ", "), sqltext.Bytes(t.bytes), ratioText(in.ReadWriteRatio))
		case p.cfg.Table != "":
			continue // outside the restricted plan
		default:
			in.Role = RoleMain
			in.Why = fmt.Sprintf("not joined on %s: stays in the main database", d.name())
		}
		p.out.Inputs.Tables = append(p.out.Inputs.Tables, in)
	}
}

// hotKey measures the key's skew in the member with the most rows.
func (p *planner) hotKey() HotKey {
	var best member
	for _, m := range p.chosen.members {
		if best.t == nil || m.t.rows > best.t.rows {
			best = m
		}
	}
	h := HotKey{Column: best.t.name + "." + best.col}
	c := best.t.cols[best.col]
	distinct := c.distinct(best.t.rows)
	if distinct < 1 {
		distinct = best.t.rows
	}
	if distinct < 1 {
		return h
	}
	top := int(math.Ceil(hotTopFraction * distinct))
	var mcv float64
	for i, f := range c.freqs {
		if i == 0 {
			h.TopValue, h.TopShare = c.topValue, f
		}
		if i < top {
			h.Top1PctShare += f
		}
		mcv += f
	}
	// Values past the most-common list: each at the average frequency of
	// the rest, as PostgreSQL's planner estimates them.
	if rest := distinct - float64(len(c.freqs)); rest >= 1 {
		avg := max(0, 1-c.nullFrac-mcv) / rest
		if len(c.freqs) == 0 {
			h.TopShare = avg
		}
		if extra := top - len(c.freqs); extra > 0 {
			h.Top1PctShare += float64(extra) * avg
		}
	}
	if n := p.out.ShardCount; n > 0 {
		h.Hot = h.TopShare > 1/float64(n)
	}
	return h
}

// why explains the key choice.
func (p *planner) why() {
	s, d := p.out, p.chosen
	k := s.ShardKey
	s.Why = append(s.Why, fmt.Sprintf("%s has about %s distinct values (pg_stats)%s", d.name(), count(k.Distinct),
		map[bool]string{true: fmt.Sprintf(", at least the %d virtual shards of the keyspace", minKeyDistinct), false: fmt.Sprintf(", fewer than the %d virtual shards of the keyspace", minKeyDistinct)}[k.Distinct >= minKeyDistinct]))
	if p.hasLoad {
		s.Why = append(s.Why, fmt.Sprintf("%d of %d workload statements filter or join on %s (%s of %d calls): each can be routed to one shard",
			k.Statements, len(p.stmts), strings.Join(k.Columns, " / "), pct(k.WorkloadShare), p.calls))
	} else {
		s.Why = append(s.Why, fmt.Sprintf("no workload to rank by: of the primary and foreign keys, %s covers the most data (%s)", d.name(), sqltext.Bytes(d.bytes)))
	}
	if len(d.members) > 1 {
		var others []string
		for _, m := range d.members[1:] {
			others = append(others, m.t.name+"."+m.col+" → "+d.name())
		}
		s.Why = append(s.Why, fmt.Sprintf("colocates %s: %s, so their joins on the key stay on one shard", strings.Join(s.Colocated, ", "), strings.Join(others, ", ")))
	}
	for _, r := range p.passed {
		s.Why = append(s.Why, "passed over "+r)
	}
}

// strategyText names a strategy and its count, for sentences.
func strategyText(strategy string, n int) string {
	switch strategy {
	case StrategyVertical:
		return "vertical partitioning"
	case StrategyHash:
		return fmt.Sprintf("hash sharding over %d shards", n)
	}
	return fmt.Sprintf("range sharding with %d initial shards", n)
}

// recommend writes the strategy's recommendation and rebalancing.
func (p *planner) recommend() {
	s, d := p.out, p.chosen
	tables := strings.Join(s.Colocated, ", ")
	per := s.Inputs.PlanningSizeGB / float64(max(s.ShardCount, 1))
	switch s.Strategy {
	case StrategyVertical:
		s.Recommendation = fmt.Sprintf("split by feature: move %s (%s GB planned) to a database of their own, keeping %s in the main database; split wide columns off into side tables%s. Shard by %s once they pass %s GB",
			tables, gb(s.Inputs.PlanningSizeGB), orNone(s.Reference), p.wideColumns(), d.name(), gb(verticalBelowGB))
	case StrategyHash:
		s.Recommendation = fmt.Sprintf("hash-shard %s by %s over %d shards (%d virtual shards, about %d each; %s GB planned, %s GB a shard)",
			tables, d.name(), s.ShardCount, VirtualShards, VirtualShards/s.ShardCount, gb(s.Inputs.PlanningSizeGB), gb(per))
	default:
		c := d.root.cols[d.rootCol]
		span := ""
		if c.histLo != "" {
			span = fmt.Sprintf(" (keys now span %s to %s by pg_stats' histogram)", c.histLo, c.histHi)
		}
		s.Recommendation = fmt.Sprintf("range-shard %s by %s into %d initial ranges of equal row counts%s, %s GB planned, %s GB a shard",
			tables, d.name(), s.ShardCount, span, gb(s.Inputs.PlanningSizeGB), gb(per))
		s.Rebalancing = fmt.Sprintf("automatic, by usage: split a range whose shard passes %s GB or whose load is far above the mean, and move ranges between shards (at %s yearly growth each shard grows from %s GB to %s GB in a year)",
			gb(targetShardGB), pct(p.growth), gb(per), gb(per*(1+p.growth)))
	}
}

// wideColumns names the widest columns of the group that no statement
// filters on, as vertical-split candidates.
func (p *planner) wideColumns() string {
	type wide struct {
		name  string
		bytes float64
	}
	var ws []wide
	for _, t := range p.group {
		for _, c := range sortedColumns(t) {
			if c.avgWidth >= 32 && (!p.hasLoad || p.filters(t, c.name) == 0) {
				ws = append(ws, wide{t.name + "." + c.name, float64(c.avgWidth) * t.rows})
			}
		}
	}
	if len(ws) == 0 {
		return " (none is wide: every column averages under 32 bytes)"
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].bytes > ws[j].bytes })
	var names []string
	for _, w := range ws[:min(3, len(ws))] {
		names = append(names, fmt.Sprintf("%s, %s", w.name, sqltext.Bytes(int64(w.bytes))))
	}
	return " (widest unfiltered: " + strings.Join(names, "; ") + ")"
}

// complexity sets the level (the guide's for the strategy, raised for a
// hot key), the timeline and the reasons.
func (p *planner) complexity() {
	s := p.out
	level, timeline := 0, "2-4 weeks" // seed: Sharding, vertical: 'Low', '2-4 weeks'
	switch s.Strategy {
	case StrategyHash:
		level, timeline = 1, "6-8 weeks" // seed: Sharding, hash: 'Medium', '6-8 weeks'
	case StrategyRange:
		level, timeline = 2, "12-16 weeks" // seed: Sharding, range: 'High', '12-16 weeks'
	}
	c := &s.Complexity
	c.Reasons = append(c.Reasons, fmt.Sprintf("%s: %s", strategyText(s.Strategy, s.ShardCount), complexityLevels[level]))
	c.Reasons = append(c.Reasons, fmt.Sprintf("%d tables move together (%s, %s measured)", len(p.group), strings.Join(s.Colocated, ", "), sqltext.Bytes(s.Inputs.MeasuredBytes)))
	if h := s.ShardKey.HotKey; h.Hot {
		level = min(level+1, len(complexityLevels)-1)
		c.Reasons = append(c.Reasons, fmt.Sprintf("hot key: %s = %s holds %s of the rows, more than one shard's share (1/%d): raised to %s",
			h.Column, h.TopValue, pct(h.TopShare), s.ShardCount, complexityLevels[level]))
	}
	for _, t := range p.group {
		for _, fk := range t.refs {
			if parent := p.tables[fk.parent]; !p.chosen.has(parent) {
				c.Reasons = append(c.Reasons, fmt.Sprintf("the foreign key %s.%s → %s.%s crosses databases once %s moves: it must be checked by the service, not PostgreSQL",
					t.name, fk.col, parent.name, fk.parentCol, t.name))
			}
		}
	}
	if n := p.crossJoins(); n > 0 && s.Strategy == StrategyVertical {
		c.Reasons = append(c.Reasons, fmt.Sprintf("%d workload statements join %s with tables that stay in the main database: they must be split or rewritten", n, strings.Join(s.Colocated, ", ")))
	}
	if n, calls := p.scatter(); n > 0 && s.Strategy != StrategyVertical {
		c.Reasons = append(c.Reasons, fmt.Sprintf("%d workload statements on %s (%s of calls) do not filter on the key: they must fan out or be rewritten",
			n, strings.Join(s.Colocated, ", "), pct(share(calls, p.calls))))
	}
	if !p.hasLoad {
		c.Reasons = append(c.Reasons, "the key was chosen without a workload: check it against the queries before migrating")
	}
	c.Level, c.Timeline = complexityLevels[level], timeline
}

// scatter counts the workload statements on the group's tables that do
// not filter on the key, and their calls.
func (p *planner) scatter() (n int, calls int64) {
	for _, s := range p.stmts {
		touches, routed := false, false
		for _, m := range p.chosen.members {
			if tablePattern(m.t.name).MatchString(s.text) {
				touches = true
				routed = routed || filtersOn(s.text, m.t.name, m.col)
			}
		}
		if touches && !routed {
			n++
			calls += s.calls
		}
	}
	return n, calls
}

func (p *planner) scatterCount() int {
	n, _ := p.scatter()
	return n
}

// crossJoins counts the workload statements that name a table of the
// group and one outside it.
func (p *planner) crossJoins() int {
	n := 0
	for _, s := range p.stmts {
		in, out := false, false
		for _, t := range p.tables {
			if tablePattern(t.name).MatchString(s.text) {
				if p.chosen.has(t) {
					in = true
				} else {
					out = true
				}
			}
		}
		if in && out {
			n++
		}
	}
	return n
}

// target describes where the group goes, for the migration's tasks.
func (p *planner) target() string {
	if p.out.Strategy == StrategyVertical {
		return "the new database"
	}
	return fmt.Sprintf("the %d shards", p.out.ShardCount)
}

// migration writes the guide's five phases (seed: Sharding,
// implement_sharding_migration, with its durations) for these tables.
func (p *planner) migration() {
	s, d := p.out, p.chosen
	tables, to := strings.Join(s.Colocated, ", "), p.target()
	var rows []string
	for _, t := range p.group {
		rows = append(rows, fmt.Sprintf("%s (%s rows)", t.name, count(t.rows)))
	}
	create := fmt.Sprintf("Create one PostgreSQL database for %s (%s GB planned)", tables, gb(s.Inputs.PlanningSizeGB))
	mapping := fmt.Sprintf("Route every statement on %s to it (a configuration change, no key routing yet)", tables)
	if s.Strategy != StrategyVertical {
		per := s.Inputs.PlanningSizeGB / float64(s.ShardCount)
		create = fmt.Sprintf("Create %d PostgreSQL primaries with the schema of %s (%s GB planned, %s GB each against the %s GB target)",
			s.ShardCount, tables, gb(s.Inputs.PlanningSizeGB), gb(per), gb(targetShardGB))
		kind := KindHash
		if s.Strategy == StrategyRange {
			kind = KindRange
		}
		mapping = fmt.Sprintf("Write the shard map (%s of %s over the %d shards) and make the service route %s by %s", kind, d.name(), s.ShardCount, tables, strings.Join(s.ShardKey.Columns, " / "))
	}
	reference := "No reference table to keep: nothing the sharded tables reference stays behind"
	if len(s.Reference) > 0 {
		reference = fmt.Sprintf("Keep %s in the main database as reference data, read by the queries of %s", strings.Join(s.Reference, ", "), to)
	}
	rewrite := fmt.Sprintf("Rewrite or accept as scatter-gather the %d statements on %s that do not filter on %s", p.scatterCount(), tables, strings.Join(s.ShardKey.Columns, " / "))
	if s.Strategy == StrategyVertical {
		rewrite = fmt.Sprintf("Rewrite the %d statements that join %s with tables staying in the main database (joins cannot cross databases)", p.crossJoins(), tables)
	}
	s.MigrationPlan = []Phase{
		{"preparation", "1-2 weeks", []string{create,
			fmt.Sprintf("Publish %s from the main database to %s (logical replication%s)", tables, to, map[bool]string{true: ", a row filter per shard", false: ""}[s.Strategy != StrategyVertical]),
			mapping, reference,
			fmt.Sprintf("Create the monitoring and alerts: the %d requirements below", len(s.MonitoringRequirements))}},
		{"dual_write", "1-2 weeks", []string{
			fmt.Sprintf("Write %s to the main database and %s (%s rows written since the statistics reset)", tables, to, count(float64(s.Inputs.Writes))),
			fmt.Sprintf("Verify row counts and checksums per key range: %s", strings.Join(rows, ", ")),
			fmt.Sprintf("Watch the write latency dual writes add to %s", tables)}},
		{"read_migration", "2-3 weeks", []string{
			fmt.Sprintf("Route reads of %s to %s by percentage (1 %%, 10 %%, 50 %%, 100 %%): %s rows read since the reset, %s reads to a write", tables, to, count(float64(s.Inputs.Reads)), ratioText(s.Inputs.ReadWriteRatio)),
			rewrite,
			"Compare read results and latency between the main database and " + to}},
		{"write_migration", "1 week", []string{
			fmt.Sprintf("Route writes of %s to %s only and revoke INSERT, UPDATE, DELETE on them in the main database", tables, to),
			fmt.Sprintf("Start reverse replication from %s into the main database's %s, for rollback", to, tables),
			"Remove the dual-write path"}},
		{"cleanup", "1 week", []string{
			fmt.Sprintf("After the rollback window, archive and drop %s (%s) from the main database", tables, sqltext.Bytes(s.Inputs.MeasuredBytes)),
			"Drop the publications, subscriptions and reverse replication",
			fmt.Sprintf("Update the runbooks with %s and the key %s", to, d.name())}},
	}
}

// monitoring writes what to watch, with the figures read.
func (p *planner) monitoring() {
	s, d := p.out, p.chosen
	in := s.Inputs
	tables := strings.Join(s.Colocated, ", ")
	m := &s.MonitoringRequirements
	if s.Strategy == StrategyVertical {
		*m = append(*m, fmt.Sprintf("Size of %s (%s now, %s GB planned): sharding by %s begins at %s GB", tables, sqltext.Bytes(in.MeasuredBytes), gb(in.PlanningSizeGB), d.name(), gb(verticalBelowGB)))
	} else {
		*m = append(*m, fmt.Sprintf("Size of each shard against the %s GB target: %s GB each planned, %s GB in a year at %s growth", gb(targetShardGB),
			gb(in.PlanningSizeGB/float64(s.ShardCount)), gb(in.NextYearSizeGB/float64(s.ShardCount)), pct(p.growth)))
		*m = append(*m, fmt.Sprintf("Rows and calls per shard, the busiest against the mean: the top 1 %% of %s values hold %s of its rows", s.ShardKey.HotKey.Column, pct(s.ShardKey.HotKey.Top1PctShare)))
	}
	if h := s.ShardKey.HotKey; h.TopValue != "" {
		*m = append(*m, fmt.Sprintf("The hottest key %s = %s: %s of the rows now%s", h.Column, h.TopValue, pct(h.TopShare),
			map[bool]string{true: ", more than one shard's share", false: ""}[h.Hot]))
	}
	if n, calls := p.scatter(); n > 0 && s.Strategy != StrategyVertical {
		*m = append(*m, fmt.Sprintf("Scatter-gather calls and partial results: %d statements (%s of calls) on %s do not filter on %s", n, pct(share(calls, p.calls)), tables, strings.Join(s.ShardKey.Columns, " / ")))
	}
	*m = append(*m, fmt.Sprintf("Replication lag and checksum mismatches of %s between the main database and %s during the migration", tables, p.target()))
	for _, t := range p.refs {
		*m = append(*m, fmt.Sprintf("Load on the reference table %s in the main database (%s rows read since the reset), now read for every shard", t.name, count(float64(t.reads))))
	}
	*m = append(*m, fmt.Sprintf("Read/write ratio of %s (%s:1 now): a falling ratio moves load to the primaries", tables, ratioText(in.ReadWriteRatio)))
}

// rollback writes how to go back at each point.
func (p *planner) rollback() {
	s := p.out
	tables, to := strings.Join(s.Colocated, ", "), p.target()
	s.RollbackStrategy = []string{
		fmt.Sprintf("Preparation and dual write: the main database stays authoritative for %s; stop the dual writes and drop %s", tables, to),
		fmt.Sprintf("Read migration: set the read percentage back to 0 %%; %s never stopped taking writes in the main database", tables),
		fmt.Sprintf("Write migration: reverse replication keeps the main database's %s current; once it has caught up, route reads and writes of %s back and compare row counts per key range", tables, tables),
		fmt.Sprintf("Cleanup: rollback ends when %s (%s) is dropped from the main database; keep an archive until then", tables, sqltext.Bytes(s.Inputs.MeasuredBytes)),
	}
}

// gb formats a size in GB: whole numbers as such, others to 3 significant
// digits.
func gb(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// pct formats a fraction as a percentage.
func pct(f float64) string {
	switch {
	case f == 0:
		return "0 %"
	case f < 0.001:
		return "<0.1 %"
	}
	return strconv.FormatFloat(f*100, 'f', 1, 64) + " %"
}

// ratioText formats a read/write ratio.
func ratioText(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) }

// count formats an estimate of a count.
func count(v float64) string { return strconv.FormatFloat(math.Round(v), 'f', 0, 64) }

// orNone joins names, or says "no other table".
func orNone(names []string) string {
	if len(names) == 0 {
		return "the other tables"
	}
	return strings.Join(names, ", ")
}

// WriteText writes the strategy as a text report.
func (s *Strategy) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	title := "Sharding plan for database " + strconv.Quote(s.Database)
	if s.Table != "" {
		title += ", table " + strconv.Quote(s.Table)
	}
	fmt.Fprintf(b, "%s\n\n", title)
	fmt.Fprintf(b, "Strategy:     %s\n", s.Strategy)
	if s.ShardCount > 0 {
		label := "Shard count:  "
		if s.Strategy == StrategyRange {
			label = "Initial shards: "
		}
		fmt.Fprintf(b, "%s%d\n", label, s.ShardCount)
	}
	fmt.Fprintf(b, "  why: %s\n", s.ShardCountWhy)
	fmt.Fprintf(b, "Size:         %s\n", s.Inputs.SizeBasis)
	fmt.Fprintf(b, "Shard key:    %s (%s)\n", s.ShardKey.Table+"."+s.ShardKey.Column, strings.Join(s.ShardKey.Columns, ", "))
	for _, y := range s.Why {
		fmt.Fprintf(b, "  why: %s\n", y)
	}
	fmt.Fprintf(b, "Hot keys:     %s: top value %s holds %s of the rows; the top 1 %% of values %s\n",
		s.ShardKey.HotKey.Column, orDash(s.ShardKey.HotKey.TopValue), pct(s.ShardKey.HotKey.TopShare), pct(s.ShardKey.HotKey.Top1PctShare))
	fmt.Fprintf(b, "Colocated:    %s\n", strings.Join(s.Colocated, ", "))
	fmt.Fprintf(b, "Reference:    %s\n", orDash(strings.Join(s.Reference, ", ")))
	fmt.Fprintf(b, "Recommendation: %s\n", s.Recommendation)
	if s.Rebalancing != "" {
		fmt.Fprintf(b, "Rebalancing:  %s\n", s.Rebalancing)
	}
	fmt.Fprintf(b, "Complexity:   %s, %s\n", s.Complexity.Level, s.Complexity.Timeline)
	for _, r := range s.Complexity.Reasons {
		fmt.Fprintf(b, "  - %s\n", r)
	}
	fmt.Fprintf(b, "\nInputs (%s):\n", s.Inputs.Workload)
	fmt.Fprintf(b, "  %-24s %-9s %10s %12s %12s %12s %8s\n", "table", "role", "size", "rows", "rows read", "rows written", "r/w")
	for _, t := range s.Inputs.Tables {
		fmt.Fprintf(b, "  %-24s %-9s %10s %12s %12d %12d %8s\n", sqltext.Clip(t.Name, 24), t.Role, sqltext.Bytes(t.Bytes), count(t.Rows), t.Reads, t.Writes, ratioText(t.ReadWriteRatio))
	}
	for _, t := range s.Inputs.Tables {
		fmt.Fprintf(b, "  %s: %s\n", t.Name, t.Why)
	}
	fmt.Fprintf(b, "\nMigration plan:\n")
	for i, ph := range s.MigrationPlan {
		fmt.Fprintf(b, "  %d. %s (%s)\n", i+1, ph.Name, ph.Duration)
		for _, t := range ph.Tasks {
			fmt.Fprintf(b, "     - %s\n", t)
		}
	}
	fmt.Fprintf(b, "\nMonitoring requirements:\n")
	for _, m := range s.MonitoringRequirements {
		fmt.Fprintf(b, "  - %s\n", m)
	}
	fmt.Fprintf(b, "\nRollback strategy:\n")
	for _, r := range s.RollbackStrategy {
		fmt.Fprintf(b, "  - %s\n", r)
	}
	if len(s.Notes) > 0 {
		fmt.Fprintf(b, "\nNotes:\n")
		for _, n := range s.Notes {
			fmt.Fprintf(b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
