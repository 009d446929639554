package advisor

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
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
	all          []*Query // the workload, by total time
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
		return "", fmt.Errorf("cannot look up the %s extension: %v", name, err)
	}
	var available bool
	if err := s.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)`, name).Scan(&available); err != nil {
		return "", fmt.Errorf("cannot look up the %s extension: %v", name, err)
	}
	if !available {
		return "", fmt.Errorf("the %s extension is not installed on the server: %s, then CREATE EXTENSION %s in database %q", name, install, name, db)
	}
	return "", fmt.Errorf("the %s extension is not created in database %q: run CREATE EXTENSION %s (as a superuser or the database owner)", name, db, name)
}

// notWorkload matches statements that read the catalogues or statistics
// (the advisor's own and monitoring tools'), not the application's tables.
var notWorkload = regexp.MustCompile(`(?i)\b(pg_catalog|information_schema|pg_stat_\w+|pg_class|pg_index|pg_namespace|pg_attribute|pg_am|pg_constraint|pg_database|pg_prepared_statements|pg_stats|pg_roles|pg_extension|pg_available_extensions|pg_settings|hypopg\w*|current_setting|pg_is_in_recovery|pg_relation_size|pg_get_\w+|current_database|current_user)\b`)

// loadWorkload reads the top statements of this database by total time.
func (s *session) loadWorkload(ctx context.Context) error {
	q := `SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows, shared_blks_read, shared_blks_hit
FROM ` + s.pgss + `.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND toplevel AND queryid IS NOT NULL
ORDER BY total_exec_time DESC`
	rows, err := s.conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("advisor: read pg_stat_statements: %w", err)
	}
	var other, catalog int
	for rows.Next() {
		qu := &Query{}
		if err := rows.Scan(&qu.ID, &qu.Text, &qu.Calls, &qu.TotalMs, &qu.MeanMs, &qu.Rows,
			&qu.SharedBlksRead, &qu.SharedBlksHit); err != nil {
			rows.Close()
			return fmt.Errorf("advisor: read pg_stat_statements: %w", err)
		}
		qu.kind = statementKind(qu.Text)
		switch {
		case qu.kind == "other":
			other++
			continue
		case notWorkload.MatchString(qu.Text):
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
			"left out %d utility statements (SET, BEGIN, DDL, …) and %d statements on the system catalogues", other, catalog))
	}
	if len(s.all) == 0 {
		s.report.Notes = append(s.report.Notes, "pg_stat_statements holds no statements on this database's tables yet: run the workload, then advise")
	}
	s.report.Queries = s.all
	return nil
}

// statementKind classifies a statement by its first keyword.
func statementKind(text string) string {
	t := strings.TrimLeft(text, " \t\r\n(")
	word := strings.ToLower(strings.FieldsFunc(t+" ", func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '('
	})[0])
	switch word {
	case "select", "with", "table", "values":
		if word == "with" {
			// A data-modifying CTE is a write; the advisor only reads it.
			l := strings.ToLower(t)
			if strings.Contains(l, "insert into") || strings.Contains(l, "update ") || strings.Contains(l, "delete from") {
				return "write"
			}
		}
		return "select"
	case "update":
		return "update"
	case "delete":
		return "delete"
	case "insert":
		return "insert"
	}
	return "other"
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
	if _, err := s.conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		s.report.Notes = append(s.report.Notes, "could not force generic plans: "+err.Error())
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
	var types string
	if err := s.conn.QueryRowContext(ctx, `SELECT parameter_types::text FROM pg_prepared_statements WHERE name = $1`, name).Scan(&types); err != nil {
		return fmt.Errorf("cannot read its parameter types: %v", err)
	}
	ts := parseArray(types)
	q.nparam = len(ts)
	if q.nparam == 0 {
		q.bound, q.ParamSource = q.Text, "none"
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
		return s.explainAnalyze(ctx, q.bound, q.kind != "select")
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

// explainAnalyze runs text under EXPLAIN ANALYZE on the session's
// connection; see explainAnalyzeOn.
func (s *session) explainAnalyze(ctx context.Context, text string, write bool) (*Plan, error) {
	return explainAnalyzeOn(ctx, s.conn, text, write)
}

// explainAnalyzeOn runs text under EXPLAIN ANALYZE on conn; a write runs
// in a transaction that is rolled back.
func explainAnalyzeOn(ctx context.Context, conn *sql.Conn, text string, write bool) (*Plan, error) {
	stmt := "EXPLAIN (ANALYZE, FORMAT JSON, VERBOSE) " + text
	var out string
	if !write {
		if err := conn.QueryRowContext(ctx, stmt).Scan(&out); err != nil {
			return nil, err
		}
		return ParsePlan([]byte(out))
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // the point is to roll back
	if err := tx.QueryRowContext(ctx, stmt).Scan(&out); err != nil {
		return nil, err
	}
	return ParsePlan([]byte(out))
}

// cleanup drops what the session made (prepared statements, hypothetical
// indexes, the plan_cache_mode setting), then has database/sql discard the
// connection rather than return it to the pool, so no session state can
// reach the caller's next query.
func (s *session) cleanup(ctx context.Context) {
	for _, q := range s.all {
		if q.prep != "" {
			_, _ = s.conn.ExecContext(ctx, "DEALLOCATE "+q.prep)
		}
	}
	if s.hypopg != "" {
		_, _ = s.conn.ExecContext(ctx, "SELECT "+s.hypopg+".hypopg_reset()")
	}
	_, _ = s.conn.ExecContext(ctx, "RESET plan_cache_mode")
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
}

// firstLine returns the first line of s, cut to maxLine runes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return clip(s, maxLine)
}

// maxLine is the most of a message or query text the advisor quotes in
// one line.
const maxLine = 300

// clip cuts s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes a PostgreSQL string literal
// (standard_conforming_strings on, the default since 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
