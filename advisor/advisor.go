package advisor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SlowMeanMs is the mean execution time over which a query is slow (seed:
// Query Optimization Framework, "mean_time > 100 ms").
const SlowMeanMs = 100

// RewriteExaminedRatio is how many rows a query may examine per row it
// returns before a rewrite is advised (seed: Query Optimization Framework,
// "rows examined > 100 × rows returned").
const RewriteExaminedRatio = 100

// PartitionRowsExamined is the rows one query may examine before the table
// is proposed for partitioning (seed: Query Optimization Framework,
// "rows_examined > 1,000,000").
const PartitionRowsExamined = 1_000_000

// PartitionQPS is the expected queries per second on a table over which it
// is proposed for partitioning (seed: Query Optimization Framework,
// "expected_qps > 10,000").
const PartitionQPS = 10_000

// DefaultTopQueries is how many statements, by total time, the advisor
// reads from pg_stat_statements when Config.TopQueries is zero.
const DefaultTopQueries = 200

// DefaultMinImprovementPct is the smallest planner-cost reduction, over the
// queries an index helps, for which the index is advised. dexter uses 50 %;
// a smaller bar is safe here because write cost is weighed separately.
const DefaultMinImprovementPct = 10

// DefaultVerifyRuns is how many times Verify runs each helped query before
// and after a build when Config.VerifyRuns is zero (the median counts).
const DefaultVerifyRuns = 5

// Config tunes a run. The zero value means the documented defaults.
type Config struct {
	// TopQueries bounds the statements read from pg_stat_statements, by
	// total execution time (default DefaultTopQueries).
	TopQueries int
	// SlowMeanMs flags queries slower than this on average (default
	// SlowMeanMs).
	SlowMeanMs float64
	// MinImprovementPct is the smallest planner-cost reduction for which an
	// index is advised (default DefaultMinImprovementPct).
	MinImprovementPct float64
	// ExpectedQPS is the peak queries per second the user expects; over
	// PartitionQPS it makes the busiest tables partitioning candidates.
	// Zero means unknown.
	ExpectedQPS float64
	// Analyze runs EXPLAIN ANALYZE (which executes each query; writes run in
	// a transaction that is rolled back). Off by default: on a primary it
	// adds the queries' load.
	Analyze bool
	// Verify builds the chosen indexes for real, with CREATE INDEX
	// CONCURRENTLY on VerifyDB, measures the queries they help before and
	// after, and drops them again unless KeepVerified is set.
	Verify bool
	// VerifyDB is where Verify builds; nil means the analysed database.
	VerifyDB *sql.DB
	// KeepVerified keeps the indexes Verify built.
	KeepVerified bool
	// VerifyRuns is how many times each query runs before and after a
	// build; the median counts (default DefaultVerifyRuns).
	VerifyRuns int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.TopQueries <= 0 {
		c.TopQueries = DefaultTopQueries
	}
	if c.SlowMeanMs <= 0 {
		c.SlowMeanMs = SlowMeanMs
	}
	if c.MinImprovementPct <= 0 {
		c.MinImprovementPct = DefaultMinImprovementPct
	}
	if c.VerifyRuns <= 0 {
		c.VerifyRuns = DefaultVerifyRuns
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Kinds of recommendation.
const (
	KindIndex     = "index"      // create an index
	KindDropIndex = "drop_index" // drop an unused or duplicate index
	KindRewrite   = "rewrite"    // change the query
	KindPartition = "partition"  // partition a table
)

// Levels of effort and risk.
const (
	Low    = "low"
	Medium = "medium"
	High   = "high"
)

// Recommendation is one piece of advice, with the seed's fields
// (estimated improvement, implementation effort, risk) computed from the
// workload and the planner.
type Recommendation struct {
	Kind    string   `json:"kind"`
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	// SQL is the statement to apply (DDL), or the suggested query shape
	// for a rewrite.
	SQL string `json:"sql"`
	// EstimatedImprovementPct is the share of the helped queries' time the
	// advice should save (for an index: the planner's cost reduction,
	// weighted by each query's total time).
	EstimatedImprovementPct float64 `json:"estimated_improvement_pct"`
	Effort                  string  `json:"effort"`
	Risk                    string  `json:"risk"`
	// Queries are the pg_stat_statements queryids the advice helps.
	Queries []int64 `json:"queries"`
	// Reason says why, from the plan or the statistics.
	Reason string `json:"reason"`
	// Score ranks recommendations: impact over effort (higher first).
	Score float64 `json:"score"`

	// Rule names the rewrite or drop rule ("offset_pagination",
	// "unused", "duplicate", …).
	Rule string `json:"rule,omitempty"`
	// Include and Where are a proposed index's INCLUDE columns and
	// partial-index predicate.
	Include []string `json:"include,omitempty"`
	Where   string   `json:"where,omitempty"`
	// SizeBytes is the index's size (estimated by HypoPG for a new one).
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// SavedMs is the estimated execution time saved over the statistics
	// window; WriteCostMs the estimated extra write time over it.
	SavedMs     float64 `json:"estimated_saved_ms,omitempty"`
	WriteCostMs float64 `json:"write_cost_ms,omitempty"`
	// Measured is set by Verify: the gain measured after a real build.
	Measured *Measurement `json:"measured,omitempty"`
	// Checked is set when a rewrite was checked on the database.
	Checked *Check `json:"checked,omitempty"`

	hypo *candidate // the index a KindIndex advises, for Verify
	seq  int        // the order the greedy choice kept it in
}

// Measurement is the gain Verify measured after building an index for real.
type Measurement struct {
	// BeforeMs and AfterMs are the sums of the helped queries' median
	// execution times, before and after the build.
	BeforeMs float64 `json:"before_ms"`
	AfterMs  float64 `json:"after_ms"`
	// ImprovementPct is the helped queries' time saved, weighted like the
	// estimate by each query's total time in the workload:
	// 100 × (1 − Σ total × after/before ÷ Σ total).
	ImprovementPct float64 `json:"improvement_pct"`
	BuildMs        float64 `json:"build_ms"`
	// Skipped says why a query could not be measured, by queryid.
	Skipped map[int64]string `json:"skipped,omitempty"`
	// Error says why the index could not be built ("" when it was).
	Error string `json:"error,omitempty"`
}

// Check is the result of checking a rewrite on the database.
type Check struct {
	CostBefore float64 `json:"cost_before"`
	CostAfter  float64 `json:"cost_after"`
	// SameRows reports whether both forms returned the same rows (only
	// when the check ran the queries).
	SameRows *bool  `json:"same_rows,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Query is one statement of the workload, from pg_stat_statements.
type Query struct {
	ID             int64    `json:"queryid"`
	Text           string   `json:"query"`
	Calls          int64    `json:"calls"`
	TotalMs        float64  `json:"total_ms"`
	MeanMs         float64  `json:"mean_ms"`
	Rows           int64    `json:"rows"`
	SharedBlksRead int64    `json:"shared_blks_read"`
	SharedBlksHit  int64    `json:"shared_blks_hit"`
	Slow           bool     `json:"slow"`
	ParamSource    string   `json:"param_source,omitempty"`
	Params         []string `json:"params,omitempty"`
	// Unexplained says why no plan could be had ("" when explained).
	Unexplained string  `json:"unexplained,omitempty"`
	Cost        float64 `json:"cost,omitempty"`

	kind   string            // select, update, delete, insert, other
	consts map[string]string // column → the constant the service's text compares it with (from samples)
	plan   *Plan
	bound  string // the text with parameters replaced by literals, or ""
	prep   string // the prepared statement's name, for generic plans
	nparam int
}

// Plan returns the query's plan, or nil when it could not be explained.
func (q *Query) Plan() *Plan { return q.plan }

// Finding is an observation from a plan, such as a sequential scan of a
// large table.
type Finding struct {
	QueryID int64  `json:"queryid"`
	Kind    string `json:"kind"`
	Table   string `json:"table,omitempty"`
	Detail  string `json:"detail"`
}

// Report is the result of a run.
type Report struct {
	Database string    `json:"database"`
	At       time.Time `json:"at"`
	// StatsReset is when the table statistics were reset ("" if never):
	// the window over which scans and writes are counted.
	StatsReset      string           `json:"stats_reset,omitempty"`
	Queries         []*Query         `json:"queries"`
	Findings        []Finding        `json:"findings"`
	Recommendations []Recommendation `json:"recommendations"`
	// Skipped lists candidate indexes left out, with the reason (an
	// existing index covers them, no gain, write cost).
	Skipped []string `json:"skipped,omitempty"`
	// Notes are things the user should know about the run itself.
	Notes   []string      `json:"notes,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Errors a caller can tell apart.
var (
	// ErrUnreachable: the database did not answer.
	ErrUnreachable = errors.New("advisor: cannot reach the database")
)

// PreflightError lists every problem found before any work: missing
// extensions, missing privileges. Each problem says what to install or
// grant.
type PreflightError struct {
	Problems []string
}

func (e *PreflightError) Error() string {
	return "advisor: the database is not ready for advice:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Advise reads the workload of the database db is connected to and
// returns its advice. It changes nothing unless cfg.Verify is set (then it
// builds and, by default, drops indexes). db should be a pool of its own:
// Advise holds one connection for its hypothetical indexes.
func Advise(ctx context.Context, db *sql.DB, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	start := cfg.Now()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer conn.Close()
	s := &session{conn: conn, cfg: cfg}
	defer s.cleanup()
	if err := s.preflight(ctx); err != nil {
		return nil, err
	}
	r := &Report{At: start, Findings: []Finding{}, Recommendations: []Recommendation{}}
	s.report = r
	if err := conn.QueryRowContext(ctx, `SELECT current_database()`).Scan(&r.Database); err != nil {
		return nil, fmt.Errorf("advisor: %w", err)
	}
	if s.cat, err = loadCatalog(ctx, conn); err != nil {
		return nil, err
	}
	r.StatsReset = s.cat.StatsReset
	if s.samples, err = loadSamples(ctx, conn, s.cat); err != nil {
		return nil, err
	}
	if err := s.loadWorkload(ctx); err != nil {
		return nil, err
	}
	s.explainAll(ctx)
	r.Findings = append(r.Findings, planFindings(s.queries(), s.cat)...)
	idx, err := s.adviseIndexes(ctx)
	if err != nil {
		return nil, err
	}
	r.Recommendations = append(r.Recommendations, idx...)
	// The rewrite checks plan against the real schema, without the
	// hypothetical indexes the index advice left in place.
	if _, err := conn.ExecContext(ctx, "SELECT "+s.hypopg+".hypopg_reset()"); err != nil {
		return nil, fmt.Errorf("advisor: clear hypothetical indexes: %w", err)
	}
	drops := dropAdvice(s.cat)
	writes := s.writeRows()
	for i := range drops {
		// What the index costs the workload's writes: one entry per row
		// written, at the measured cost of an entry.
		if t := s.cat.Table(drops[i].Table); t != nil {
			ms, _ := writes.cost(t)
			drops[i].WriteCostMs = round1(ms)
		}
	}
	r.Recommendations = append(r.Recommendations, drops...)
	r.Recommendations = append(r.Recommendations, s.rewriteAdvice(ctx)...)
	r.Recommendations = append(r.Recommendations, partitionAdvice(s.queries(), s.cat, cfg)...)
	s.rank(r.Recommendations)
	if cfg.Verify {
		if err := s.verify(ctx, r); err != nil {
			return nil, err
		}
	}
	r.Elapsed = cfg.Now().Sub(start)
	return r, nil
}
