package advisor

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-dev/strata/internal/sqltext"
)

// session is one run: a single connection (HypoPG's hypothetical indexes
// and prepared statements live in the backend that made them), the
// catalogue and the workload.
type session struct {
	conn   *sql.Conn
	cfg    Config
	cat    *Catalog
	report *Report
	// pgss and hypopg are the schemas of the two extensions, quoted.
	pgss, hypopg string
	all          []*Query        // the workload, by total time
	samples      samples         // recorded by the service (Sampler), or nil
	names        map[string]bool // index names taken (uniqueName)
}

// minServerVersion is the oldest PostgreSQL the advisor reads
// (pg_stat_statements' toplevel column arrived in 14).
const minServerVersion = 140000

// preflight checks everything the run needs and reports every problem at
// once, each with what to install or grant.
func (s *session) preflight(ctx context.Context) error {
	var problems []string
	var version int
	var db, role string
	var privileged bool
	const who = `SELECT current_setting('server_version_num')::int, current_database(), current_user,
	       r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')
	FROM pg_roles r WHERE r.rolname = current_user`
	if err := s.conn.QueryRowContext(ctx, who).Scan(&version, &db, &role, &privileged); err != nil {
		return fmt.Errorf("advisor: preflight: %w", err)
	}
	if version < minServerVersion {
		problems = append(problems, fmt.Sprintf("PostgreSQL %d is too old: the advisor needs 14 or later", version/10000))
	}
	if !privileged {
		problems = append(problems, fmt.Sprintf("role %q cannot read other roles' statistics: GRANT pg_read_all_stats TO %s (or run as a superuser)", role, quoteIdent(role)))
	}
	var err error
	if s.pgss, err = s.extension(ctx, "pg_stat_statements", db,
		"install PostgreSQL's contrib package (Debian: postgresql-contrib), add pg_stat_statements to shared_preload_libraries and restart"); err != nil {
		problems = append(problems, err.Error())
	} else {
		var one int
		err := s.conn.QueryRowContext(ctx, "SELECT 1 FROM "+s.pgss+".pg_stat_statements(false) LIMIT 1").Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			problems = append(problems, fmt.Sprintf("pg_stat_statements cannot be read (%v): add it to shared_preload_libraries in postgresql.conf and restart the server", firstLine(err.Error())))
		}
	}
	if s.hypopg, err = s.extension(ctx, "hypopg", db,
		"install HypoPG (Debian: apt install postgresql-15-hypopg; scripts/dev up does this)"); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}

// extension returns the quoted schema of the extension name, or an error
// saying how to get it.
func (s *session) extension(ctx context.Context, name, db, install string) (string, error) {
	var schema string
	err := s.conn.QueryRowContext(ctx, `SELECT quote_ident(n.nspname) FROM pg_extension e
		JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = $1`, name).Scan(&schema)
	if err == nil {
		return schema, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("cannot look up the %s extension: %w", name, err)
	}
	var available bool
	if err := s.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)`, name).Scan(&available); err != nil {
		return "", fmt.Errorf("cannot look up the %s extension: %w", name, err)
	}
	if !available {
		return "", fmt.Errorf("the %s extension is not installed on the server: %s, then CREATE EXTENSION %s in database %q", name, install, name, db)
	}
	return "", fmt.Errorf("the %s extension is not created in database %q: run CREATE EXTENSION %s (as a superuser or the database owner)", name, db, name)
}

// loadWorkload reads the top statements of this database by total time.
// pg_stat_statements keeps a row per role and query; the rows of one query
// are summed, so each appears once.
func (s *session) loadWorkload(ctx context.Context) error {
	q := `SELECT queryid, min(query), sum(calls)::bigint, sum(total_exec_time), sum(rows)::bigint,
       sum(shared_blks_read)::bigint, sum(shared_blks_hit)::bigint
FROM ` + s.pgss + `.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND toplevel AND queryid IS NOT NULL
GROUP BY queryid
ORDER BY sum(total_exec_time) DESC`
	rows, err := s.conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("advisor: read pg_stat_statements: %w", err)
	}
	var other, catalog, noText int
	for rows.Next() {
		qu := &Query{}
		var text sql.NullString
		if err := rows.Scan(&qu.ID, &text, &qu.Calls, &qu.TotalMs, &qu.Rows,
			&qu.SharedBlksRead, &qu.SharedBlksHit); err != nil {
			rows.Close()
			return fmt.Errorf("advisor: read pg_stat_statements: %w", err)
		}
		if qu.Calls > 0 {
			qu.MeanMs = qu.TotalMs / float64(qu.Calls)
		}
		qu.Text = text.String
		qu.kind = sqltext.Kind(qu.Text)
		switch {
		case !text.Valid:
			// The text file of pg_stat_statements was reset or unreadable.
			noText++
			qu.kind = "other"
			qu.Unexplained = "pg_stat_statements has no text for it (its query file was reset or could not be read)"
		case qu.kind == "other":
			other++
			continue
		case sqltext.IsCatalog(qu.Text):
			catalog++
			continue
		}
		if len(s.all) >= s.cfg.TopQueries {
			continue
		}
		qu.Slow = qu.MeanMs > s.cfg.SlowMeanMs
		s.all = append(s.all, qu)
	}
	if err := closeRows(rows, "read pg_stat_statements"); err != nil {
		return err
	}
	if other+catalog > 0 {
		s.report.Notes = append(s.report.Notes, fmt.Sprintf(
			"left out %d utility statements (SET, BEGIN, DDL, COPY, …) and %d statements on the system catalogues", other, catalog))
	}
	if len(s.all) == 0 {
		s.report.Notes = append(s.report.Notes, "pg_stat_statements holds no statements on this database's tables yet: run the workload, then advise")
	}
	s.report.Queries = s.all
	return nil
}

// queries returns the explained statements.
func (s *session) queries() []*Query {
	var out []*Query
	for _, q := range s.all {
		if q.plan != nil {
			out = append(out, q)
		}
	}
	return out
}

// explainAll plans every statement that can be planned: it binds
// parameters (see bindParams), runs EXPLAIN (FORMAT JSON, VERBOSE) or, with
// Config.Analyze, EXPLAIN ANALYZE. A statement that cannot be explained
// keeps the reason in Query.Unexplained.
func (s *session) explainAll(ctx context.Context) {
	// Generic plans for the statements without values; and literals
	// quoted as quoteLiteral assumes (on by default since 9.1, but a
	// role's or database's setting could turn it off).
	for _, set := range []string{"SET plan_cache_mode = force_generic_plan", "SET standard_conforming_strings = on"} {
		if _, err := s.conn.ExecContext(ctx, set); err != nil {
			s.report.Notes = append(s.report.Notes, set+" failed: "+firstLine(err.Error()))
		}
	}
	for i, q := range s.all {
		switch q.kind {
		case "insert":
			q.Unexplained = "an INSERT: counted as write cost, not planned"
			continue
		case "write":
			q.Unexplained = "a data-modifying WITH: counted as write cost, not planned"
			continue
		}
		if err := s.prepare(ctx, q, fmt.Sprintf("strata_advise_%d", i)); err != nil {
			q.Unexplained = err.Error()
			continue
		}
		p, err := s.explain(ctx, q, s.cfg.Analyze)
		if err != nil {
			q.Unexplained = "EXPLAIN failed: " + firstLine(err.Error())
			continue
		}
		q.plan, q.Cost = p, p.Cost()
	}
}

// prepare prepares q (so its parameters' types are known) and binds
// values to them.
func (s *session) prepare(ctx context.Context, q *Query, name string) error {
	if _, err := s.conn.ExecContext(ctx, "PREPARE "+name+" AS "+q.Text); err != nil {
		hint := "a table dropped since, or a text cut short by pg_stat_statements' track length"
		if reParam.MatchString(q.Text) {
			hint = "pg_stat_statements replaced its constants with $n, and PostgreSQL cannot infer their types from the normalised text; " + hint
		}
		return fmt.Errorf("cannot be prepared (%s): %s", firstLine(err.Error()), hint)
	}
	q.prep = name
	// Each type as format_type spells it (quoted where it must be), not
	// the array's text form, which drops the quotes.
	var types string
	const typesQuery = `SELECT COALESCE(string_agg(format_type(t, NULL), chr(1) ORDER BY i), '')
		FROM pg_prepared_statements, unnest(parameter_types::oid[]) WITH ORDINALITY u(t, i) WHERE name = $1`
	if err := s.conn.QueryRowContext(ctx, typesQuery, name).Scan(&types); err != nil {
		return fmt.Errorf("cannot read its parameter types: %w", err)
	}
	var ts []string
	if types != "" {
		ts = strings.Split(types, "\x01")
	}
	q.nparam = len(ts)
	if q.nparam == 0 {
		q.bound, q.ParamSource = q.Text, "none"
		return nil
	}
	if vals, consts, ok := s.samples.bind(q.Text, q.nparam); ok {
		q.Params, q.ParamSource = vals, "samples recorded by the service"
		q.bound = substitute(q.Text, vals, ts)
		q.consts = constColumns(q.Text, consts)
		return nil
	}
	vals, source, ok := bindParams(q.Text, ts, s.cat)
	if !ok {
		q.ParamSource = "generic plan (" + source + ")"
		return nil
	}
	q.Params, q.ParamSource = vals, source
	q.bound = substitute(q.Text, vals, ts)
	return nil
}

// explain plans q as it stands (with whatever hypothetical indexes exist),
// by its bound text or, without values, its generic plan.
func (s *session) explain(ctx context.Context, q *Query, analyze bool) (*Plan, error) {
	if analyze && q.bound != "" {
		p, err := analyzeOn(ctx, s.conn, q.bound, analyzeTimeout)
		if !errors.Is(err, errTimedOut) {
			return p, err
		}
		s.report.Notes = append(s.report.Notes, fmt.Sprintf("query %d ran over %s under EXPLAIN ANALYZE: planned without it", q.ID, analyzeTimeout))
	}
	var stmt string
	if q.bound != "" {
		stmt = "EXPLAIN (FORMAT JSON, VERBOSE) " + q.bound
	} else {
		nulls := strings.TrimSuffix(strings.Repeat("NULL, ", q.nparam), ", ")
		stmt = "EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE " + q.prep + "(" + nulls + ")"
	}
	return s.explainStmt(ctx, stmt)
}

// explainText plans a statement given as text (no parameters).
func (s *session) explainText(ctx context.Context, text string) (*Plan, error) {
	return s.explainStmt(ctx, "EXPLAIN (FORMAT JSON, VERBOSE) "+text)
}

func (s *session) explainStmt(ctx context.Context, stmt string) (*Plan, error) {
	var out string
	if err := s.conn.QueryRowContext(ctx, stmt).Scan(&out); err != nil {
		return nil, err
	}
	return ParsePlan([]byte(out))
}

// analyzeTimeout bounds one EXPLAIN ANALYZE of Config.Analyze; a query
// slower than this is planned without ANALYZE instead.
const analyzeTimeout = 30 * time.Second

// sqlstateQueryCanceled is PostgreSQL's code for a statement stopped by
// statement_timeout (or a cancel request).
const sqlstateQueryCanceled = "57014"

// errTimedOut marks an EXPLAIN ANALYZE stopped by its statement timeout.
var errTimedOut = errors.New("advisor: query timed out")

// analyzeOn runs text once under EXPLAIN ANALYZE on conn, in a transaction
// that is rolled back whatever the statement (a data-modifying CTE or a
// function with side effects leaves nothing), with timeout as its
// statement timeout (errTimedOut past it).
func analyzeOn(ctx context.Context, conn *sql.Conn, text string, timeout time.Duration) (*Plan, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // the point is to roll back
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeout.Milliseconds())); err != nil {
		return nil, err
	}
	var out string
	if err := tx.QueryRowContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON, VERBOSE) "+text).Scan(&out); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == sqlstateQueryCanceled {
			return nil, errTimedOut
		}
		return nil, err
	}
	return ParsePlan([]byte(out))
}

// cleanup has database/sql discard the session's connection rather than
// return it to the pool: closing it ends the backend, and with it every
// prepared statement, hypothetical index and setting the session made, so
// none can reach the caller's next query.
func (s *session) cleanup() {
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
}

// firstLine returns the first line of s, cut to maxLine runes.
func firstLine(s string) string {
	return sqltext.FirstLine(s, maxLine)
}

// maxLine is the most of a message or query text the advisor quotes in
// one line.
const maxLine = 300

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// qualifiedIdent is schema.name, each quoted; name alone (quoted) when
// the schema is unknown (""), which the catalogue never leaves it.
func qualifiedIdent(schema, name string) string {
	if schema == "" {
		return quoteIdent(name)
	}
	return quoteIdent(schema) + "." + quoteIdent(name)
}

// quoteLiteral quotes a PostgreSQL string literal
// (standard_conforming_strings on, the default since 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
