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
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/advisor"
)

// Bounds of strata advise's flags.
const (
	maxAdviseTop         = 100_000 // pg_stat_statements.max is 5000 by default
	defaultAdviseTime    = 10 * time.Minute
	adviseConnectTimeout = 5 // seconds, added to a URL without connect_timeout
)

// adviseFlags are strata advise's flags.
type adviseFlags struct {
	db, verifyDB        string
	top                 int
	slowMs, minImprove  float64
	qps                 float64
	analyze, verify     bool
	keep                bool
	jsonPath, sqlPath   string
	timeout             time.Duration
	flagSet             func(name string) bool // whether a flag was given
	dbTarget, verTarget *neturl.URL
}

func newAdvise(g *globals) *cobra.Command {
	f := &adviseFlags{}
	cmd := &cobra.Command{
		Use:   "advise",
		Short: "Advise indexes, rewrites and partitioning for a PostgreSQL database's workload",
		Long: `Read the busiest statements of a PostgreSQL database from pg_stat_statements,
plan them (EXPLAIN, with parameters taken from pg_stats), try candidate indexes
as HypoPG hypothetical indexes, and print ranked advice: indexes to create and
to drop, query rewrites and partitioning, each with its estimated improvement,
effort and risk. --sql writes the migration that applies it; --json the whole
report.

The database needs the pg_stat_statements extension (in
shared_preload_libraries, and CREATE EXTENSION pg_stat_statements) and HypoPG
(CREATE EXTENSION hypopg), and a role that is a superuser or a member of
pg_read_all_stats. Without --analyze and --verify nothing runs but EXPLAIN:
no query is executed and nothing is changed.`,
		Example: `  strata advise --db "$STRATA_PG_URL"
  strata advise --db "$STRATA_PG_URL" --top 50 --sql migration.sql --json advice.json
  strata advise --db "$STRATA_PG_URL" --verify --verify-db "$STAGING_URL"`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.flagSet = func(name string) bool { return cmd.Flags().Changed(name) }
			if err := f.check(); err != nil {
				return usageError{err}
			}
			return f.run(cmd.Context(), g.stdout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.db, "db", "", "PostgreSQL database to advise on: postgres://USER@HOST:PORT/DB (required)")
	fl.IntVar(&f.top, "top", advisor.DefaultTopQueries, fmt.Sprintf("statements to read from pg_stat_statements, by total time, 1 to %d", maxAdviseTop))
	fl.Float64Var(&f.slowMs, "slow-ms", advisor.SlowMeanMs, "flag statements slower than this on average, in milliseconds")
	fl.Float64Var(&f.minImprove, "min-improvement", advisor.DefaultMinImprovementPct, "smallest planner-cost reduction, in percent (over 0, up to 100), for which an index is advised")
	fl.Float64Var(&f.qps, "expected-qps", 0, fmt.Sprintf("peak queries per second you expect (0: unknown); over %d the busiest tables are partitioning candidates", advisor.PartitionQPS))
	fl.BoolVar(&f.analyze, "analyze", false, "run EXPLAIN ANALYZE, which executes each query (writes are rolled back): use on a replica, or when you accept the load")
	fl.BoolVar(&f.verify, "verify", false, "build the advised indexes for real (CREATE INDEX CONCURRENTLY), measure the queries before and after, then drop them")
	fl.StringVar(&f.verifyDB, "verify-db", "", "PostgreSQL database where --verify builds (default: the --db database)")
	fl.BoolVar(&f.keep, "keep", false, "keep the indexes --verify built")
	fl.StringVar(&f.jsonPath, "json", "", `write the report as JSON to FILE ("-": standard output, instead of the text report)`)
	fl.StringVar(&f.sqlPath, "sql", "", `write the migration SQL to FILE ("-": standard output, instead of the text report)`)
	fl.DurationVar(&f.timeout, "timeout", defaultAdviseTime, "give up after this long")
	return cmd
}

// check refuses flags that cannot make a run, naming the flag.
func (f *adviseFlags) check() error {
	if f.db == "" {
		return errors.New("--db is required: the PostgreSQL database to advise on (postgres://USER@HOST:PORT/DB)")
	}
	var err error
	if f.dbTarget, err = postgresURL("--db", f.db, adviseNeeds); err != nil {
		return err
	}
	if f.verifyDB != "" {
		if f.verTarget, err = postgresURL("--verify-db", f.verifyDB, adviseNeeds); err != nil {
			return err
		}
	}
	if f.top < 1 || f.top > maxAdviseTop {
		return fmt.Errorf("--top %d: want 1 to %d statements", f.top, maxAdviseTop)
	}
	switch {
	case !(f.slowMs > 0) || math.IsInf(f.slowMs, 0):
		return fmt.Errorf("--slow-ms %v: want a positive number of milliseconds", f.slowMs)
	case !(f.minImprove > 0 && f.minImprove <= 100):
		return fmt.Errorf("--min-improvement %v: want a percentage over 0, up to 100", f.minImprove)
	case !(f.qps >= 0) || math.IsInf(f.qps, 0):
		return fmt.Errorf("--expected-qps %v: want 0 (unknown) or a positive number of queries per second", f.qps)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration such as 10m", f.timeout)
	}
	for _, dep := range []string{"verify-db", "keep"} {
		if f.flagSet(dep) && !f.verify {
			return fmt.Errorf("--%s needs --verify", dep)
		}
	}
	if f.jsonPath == "-" && f.sqlPath == "-" {
		return errors.New(`--json - and --sql -: only one of them can write to standard output`)
	}
	return nil
}

// adviseNeeds says why the advisor refuses anything but PostgreSQL.
const adviseNeeds = "the advisor needs PostgreSQL with pg_stat_statements and HypoPG"

// postgresURL parses a PostgreSQL URL given to flag, refusing anything
// else (SQLite above all) with need: why this command needs PostgreSQL.
func postgresURL(flag, raw, need string) (*neturl.URL, error) {
	need += " (want postgres://USER@HOST:PORT/DB)"
	u, err := neturl.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %s: not a URL: %s", flag, quote(hidePasswords(raw)), need)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("%s %s: not a PostgreSQL URL: %s", flag, quote(hidePasswords(raw)), need)
	}
	if _, err := pgx.ParseConfig(raw); err != nil { // its message masks the password
		return nil, fmt.Errorf("%s: %s", flag, bounded(maskSettings(joinLines(err.Error()))))
	}
	return u, nil
}

// passwordSetting matches a password given as a setting, in a
// keyword/value string (password=x, password='x y') or a URL's query.
var passwordSetting = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('[^']*'|[^\s&]*)`)

// hidePasswords masks the passwords in a database URL or connection
// string given by the user (in its user information and as settings), for
// messages.
func hidePasswords(raw string) string {
	s := raw
	u, err := neturl.Parse(raw)
	switch {
	case err != nil || !strings.Contains(raw, "://"): // user:password@host parses as an opaque URL
		if i := strings.LastIndexByte(raw, '@'); i >= 0 { // user:password@ not parsed: drop it
			s = "…" + raw[i:]
		}
	case u.User != nil:
		if _, ok := u.User.Password(); ok {
			s = u.Redacted()
		}
	}
	return maskSettings(s)
}

// maskSettings masks passwords given as settings in s (an error's text).
func maskSettings(s string) string {
	return passwordSetting.ReplaceAllString(s, "${1}xxxxx")
}

// display is a database URL for messages: host:port/database, without
// user or password, cut short if huge.
func display(u *neturl.URL) string {
	host := u.Host
	if host == "" {
		host = "localhost"
	}
	return bounded(host + "/" + strings.TrimPrefix(u.Path, "/"))
}

// withConnectTimeout returns the URL's string with connect_timeout set
// (unless it has one), so that an unreachable server fails in seconds.
func withConnectTimeout(u *neturl.URL) string {
	c := *u
	q := c.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", fmt.Sprint(adviseConnectTimeout))
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// run advises and writes the outputs.
func (f *adviseFlags) run(parent context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(parent, f.timeout)
	defer cancel()
	db, err := sql.Open("pgx", withConnectTimeout(f.dbTarget))
	if err != nil {
		return usageError{fmt.Errorf("--db %s: %s", quote(hidePasswords(f.db)), bounded(maskSettings(err.Error())))}
	}
	defer db.Close()
	cfg := advisor.Config{
		TopQueries: f.top, SlowMeanMs: f.slowMs, MinImprovementPct: f.minImprove, ExpectedQPS: f.qps,
		Analyze: f.analyze, Verify: f.verify, KeepVerified: f.keep,
	}
	if f.verTarget != nil {
		vdb, err := sql.Open("pgx", withConnectTimeout(f.verTarget))
		if err != nil {
			return usageError{fmt.Errorf("--verify-db %s: %s", quote(hidePasswords(f.verifyDB)), bounded(maskSettings(err.Error())))}
		}
		defer vdb.Close()
		if err := vdb.PingContext(ctx); err != nil {
			return fmt.Errorf("cannot reach the --verify-db database at %s: %s", display(f.verTarget), bounded(maskSettings(joinLines(err.Error()))))
		}
		cfg.VerifyDB = vdb
	}
	rep, err := advisor.Advise(ctx, db, cfg)
	if err != nil {
		return f.adviseError(ctx, err)
	}
	return f.write(rep, stdout)
}

// adviseError words an error of advisor.Advise for the command line.
func (f *adviseFlags) adviseError(ctx context.Context, err error) error {
	var pe *advisor.PreflightError
	switch {
	case errors.As(err, &pe):
		return err // every problem, each with what to install or grant
	case errors.Is(err, advisor.ErrUnreachable):
		cause := strings.TrimPrefix(err.Error(), advisor.ErrUnreachable.Error()+": ")
		return fmt.Errorf("cannot reach the database at %s: %s", display(f.dbTarget), bounded(maskSettings(joinLines(cause))))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("advise did not finish within --timeout %s (raise it, or lower --top): %s", f.timeout, bounded(err.Error()))
	}
	return errors.New(clipError(err.Error()))
}

// joinLines joins a multi-line error (pgx lists each connection attempt on
// a line of its own, often the same twice) into one line, without repeats.
func joinLines(msg string) string {
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line != "" && !slices.Contains(parts, line) {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}

// clipError cuts an error that may quote a statement (or the user's
// input) to a few lines' worth, on a rune boundary.
func clipError(msg string) string {
	const limit = 1000
	if len(msg) <= limit {
		return msg
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// write writes the JSON report and the migration where asked, then the
// text report to standard output unless one of them took it.
func (f *adviseFlags) write(rep *advisor.Report, stdout io.Writer) error {
	writeJSON := func(w io.Writer) error {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	writeSQL := func(w io.Writer) error {
		_, err := io.WriteString(w, rep.MigrationSQL())
		return err
	}
	text := true
	for _, out := range []struct {
		flag, path string
		write      func(io.Writer) error
	}{{"--json", f.jsonPath, writeJSON}, {"--sql", f.sqlPath, writeSQL}} {
		var err error
		switch out.path {
		case "":
			continue
		case "-":
			text = false
			err = out.write(stdout)
		default:
			err = writeFile(out.path, out.write)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %s", out.flag, quote(out.path), bounded(err.Error()))
		}
	}
	if !text {
		return nil
	}
	return rep.WriteText(stdout)
}
