package advisor

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-dev/strata/internal/sqltext"
)

// Query rewrites. Each rule is a pure function of one explained query, the
// catalogue and the workload (detectRewrites): it matches the normalised
// pg_stat_statements text with simple regular expressions, confirms the
// problem in the plan, and, where the rewrite is mechanical, builds the
// rewritten statement twice: with $n for the advice, and from the bound
// text for the check. The check (session.checkRewrite) plans both forms on
// the database, with hypothetical indexes where the advice needs one, and
// with Config.Analyze compares their rows.

// selectStarWidth is the row width (bytes) over which SELECT * is worth narrowing: ~3 rows of ids and a short text.
const selectStarWidth = 200

// wideColumnBytes is the average width from which a column counts as wide (one a caller rarely needs).
const wideColumnBytes = 64

// sortNoLimitRows is the sorted row count from which a sort returned whole, without LIMIT, should be paginated.
const sortNoLimitRows = 10_000

// correlatedMinRuns is the estimated runs of a correlated subquery (its outer rows) from which a join is advised.
const correlatedMinRuns = 100

// nPlusOneCallsFactor is how many times the workload's median calls an N+1 lookup runs at least.
const nPlusOneCallsFactor = 10

// nPlusOneMinCalls is the fewest calls for a lookup to be flagged as N+1.
const nPlusOneMinCalls = 100

// nPlusOneMaxRowsPerCall is the most rows per call of a single-row lookup (a unique key returns 0 or 1).
const nPlusOneMaxRowsPerCall = 1.5

// sameRowsTimeout bounds each statement of the row comparison that runs with Config.Analyze.
const sameRowsTimeout = "10s"

// rwPercent turns a fraction into a percentage.
const rwPercent = 100

// rwMaxEstimatePct caps an unchecked estimate: a rewrite never removes all of a plan's cost.
const rwMaxEstimatePct = 99

// reasonQueryRunes is how much of a query's text, in runes, a Reason quotes.
const reasonQueryRunes = 80

// rewriteStmt is the prepared statement a check plans a rewritten generic statement under (deallocated after).
const rewriteStmt = "strata_advise_rewrite"

// rwValue is a parameter or constant as it appears in the normalised text
// ($1) or the bound text (('x'::type)), or a plain literal.
const rwValue = `(?:\$\d+|\('(?:[^']|'')*'::[^)]*\)|'(?:[^']|'')*'|-?\d+(?:\.\d+)?)`

var (
	reRwFuncOnCol = regexp.MustCompile(`(?i)\b([a-z_][a-z0-9_]*)\s*\(\s*((?:'[^']*'\s*,\s*)?)` + ident + `\s*\)\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bI?LIKE\b|\bBETWEEN\b)`)
	reRwCastOnCol = regexp.MustCompile(`(?i)` + ident + `\s*::\s*([a-z_][a-z0-9_]*)\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bBETWEEN\b)`)
	reRwWhere     = regexp.MustCompile(`(?i)\bWHERE\b`)
	reRwOrCols    = regexp.MustCompile(`(?i)` + ident + `\s*=\s*` + rwValue + `\s+OR\s+` + ident + `\s*=\s*` + rwValue)
	reRwTopOr     = regexp.MustCompile(`(?i)\s+OR\s+`)
	reRwTail      = regexp.MustCompile(`(?i)\b(ORDER|GROUP|LIMIT|OFFSET|HAVING|UNION|EXCEPT|INTERSECT|FOR|WINDOW|RETURNING|FETCH)\b`)
	reRwNotIn     = regexp.MustCompile(`(?i)` + ident + `\s+NOT\s+IN\s*\(\s*SELECT\b`)
	reRwSubSelect = regexp.MustCompile(`(?is)^\s*SELECT\s+` + ident + `\s+FROM\s+` + ident + `(?:\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?(.*)$`)
	reRwOffsetVal = regexp.MustCompile(`(?i)\bOFFSET\s+(` + rwValue + `)`)
	reRwLimitVal  = regexp.MustCompile(`(?i)\bLIMIT\s+(` + rwValue + `)`)
	reRwOrderBy   = regexp.MustCompile(`(?i)\bORDER\s+BY\s+` + ident + `(\s+(?:ASC|DESC))?\s*(?:LIMIT|OFFSET|$)`)
	reRwStar      = regexp.MustCompile(`(?i)^\s*SELECT\s+(?:ALL\s+|DISTINCT\s+)?(?:[a-z_][a-z0-9_]*\.)?\*|,\s*(?:[a-z_][a-z0-9_]*\.)?\*\s*(?:,|\bFROM\b)`)
	reRwLimitAny  = regexp.MustCompile(`(?i)\b(LIMIT|FETCH)\b`)
	// reRwKeyLookup matches a lookup by one key: the table, the key column
	// and the key's parameter.
	reRwKeyLookup = regexp.MustCompile(`(?is)^\s*SELECT\s+.+?\s+FROM\s+` + ident + `(?:\s+(?:AS\s+)?[a-z_][a-z0-9_]*)?\s+WHERE\s+` + ident + `\s*=\s*(\$\d+)\s*(?:LIMIT\s+(?:\$\d+|1))?\s*$`)
	reRwCorrSub   = regexp.MustCompile(`(?is)\(\s*SELECT\s+(max|min|sum|avg|count|bool_and|bool_or)\s*\(([^()]*)\)\s+FROM\s+` + ident + `(?:\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?\s+WHERE\s+` + ident + `\s*=\s*` + ident + `\s*\)`)
	reRwLiteral   = regexp.MustCompile(`'[^']*'`)
	reRwColRef    = regexp.MustCompile(`\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b`)
	reRwDistinct  = regexp.MustCompile(`(?i)^SELECT\s+DISTINCT\b`)
	reRwJoinList  = regexp.MustCompile(`(?i)\bJOIN\b|,`)
	reRwOrderKw   = regexp.MustCompile(`(?i)\s+ORDER\s+BY\b`)
)

// rwNotFunction reports whether word (lower case) is a keyword that looks
// like a function call before a parenthesis.
func rwNotFunction(word string) bool {
	switch word {
	case "and", "or", "not", "in", "any", "all", "exists", "where", "on", "select", "values", "some", "array":
		return true
	}
	return false
}

// rewrite is one detected rewrite: the advice, and what the check needs.
type rewrite struct {
	rec Recommendation
	// after and afterBound are the rewritten statement, from the normalised
	// text and from the bound text ("" when q.bound is "" or the rewrite is
	// not mechanical; after "" with hypo set means the original statement
	// under the hypothetical indexes).
	after, afterBound string
	// hypo are the indexes the after plan assumes (made with HypoPG for
	// the check).
	hypo []rwIndex
	// alsoOriginal plans the original statement under hypo too: when it is
	// as cheap as the rewrite, the indexes alone are the advice.
	alsoOriginal bool
	// ddl is the DDL part of the advice (CREATE INDEX), kept apart so the
	// check can drop the query part.
	ddl string
	// notSameRows says why the rewrite returns other rows by design (so
	// the rows are not compared), or "".
	notSameRows string
}

// checkable reports whether the check has something to plan.
func (r *rewrite) checkable() bool { return r.after != "" || len(r.hypo) > 0 }

// rwIndex is an index a rewrite's advice assumes: a plain one as a
// candidate (the index advice's own type, so HypoPG makes it through
// session.hypoCreate), or an expression index, which a candidate cannot
// spell (its keys are quoted column names).
type rwIndex struct {
	cand  *candidate // a plain index, or nil for an expression index
	table *Table
	expr  string // the expression key, as the query writes it
}

// plainIndex is a single-column index on col of t.
func plainIndex(t *Table, col string) rwIndex {
	return rwIndex{cand: &candidate{table: t, cols: []string{col}, desc: []bool{false}}, table: t}
}

// exprIndex is an index on the expression expr over t, kept as written.
func exprIndex(t *Table, expr string) rwIndex { return rwIndex{table: t, expr: expr} }

// ddl is the index's CREATE INDEX statement, its table schema-qualified
// and quoted; PostgreSQL (or HypoPG) names it.
func (ix rwIndex) ddl(concurrently bool) string {
	if ix.cand != nil {
		return ix.cand.ddl("", concurrently)
	}
	create := "CREATE INDEX "
	if concurrently {
		create += "CONCURRENTLY "
	}
	return create + "ON " + quoteIdent(ix.table.Schema) + "." + quoteIdent(ix.table.Name) + " (" + ix.expr + ")"
}

// rwWorkload is what the rules need to know of the workload as a whole.
type rwWorkload struct {
	medianCalls float64
	// covered are the queries an index recommendation already helps.
	covered map[int64]bool
}

// newWorkload summarises qs, with the queries covered by the index
// recommendations in recs.
func newRwWorkload(qs []*Query, recs []Recommendation) rwWorkload {
	calls := make([]float64, 0, len(qs))
	for _, q := range qs {
		calls = append(calls, float64(q.Calls))
	}
	slices.Sort(calls)
	w := rwWorkload{covered: map[int64]bool{}}
	if n := len(calls); n > 0 {
		w.medianCalls = calls[n/2]
		if n%2 == 0 {
			w.medianCalls = (calls[n/2-1] + calls[n/2]) / 2
		}
	}
	for _, r := range recs {
		if r.Kind == KindIndex {
			for _, id := range r.Queries {
				w.covered[id] = true
			}
		}
	}
	return w
}

// rewriteRule detects one kind of rewrite in one query.
type rewriteRule struct {
	name string
	// readsRows marks rules whose problem is reading rows the query does
	// not need: when one fires, examined_ratio says nothing more.
	readsRows bool
	detect    func(q *Query, cat *Catalog, w rwWorkload) (rewrite, bool)
}

// rewriteRules returns the rewrite rules in the order their advice is
// listed.
func rewriteRules() []rewriteRule {
	return []rewriteRule{
		{"function_on_column", true, ruleFunctionOnColumn},
		{"offset_pagination", true, ruleOffset},
		{"select_star", false, ruleSelectStar},
		{"not_in_nullable", true, ruleNotIn},
		{"or_across_columns", true, ruleOrAcrossColumns},
		{"correlated_subquery", true, ruleCorrelated},
		{"sort_without_limit", false, ruleSortWithoutLimit},
		{"n_plus_one", false, ruleNPlusOne},
	}
}

// detectRewrites runs every rule over one explained query; examined_ratio
// comes last and only when no row-reading rule fired and no index
// recommendation covers the query.
func detectRewrites(q *Query, cat *Catalog, w rwWorkload) []rewrite {
	if q.plan == nil || q.plan.Root == nil {
		return nil
	}
	var out []rewrite
	explained := false
	for _, r := range rewriteRules() {
		rw, ok := r.detect(q, cat, w)
		if !ok {
			continue
		}
		rw.rec.Kind, rw.rec.Rule, rw.rec.Queries = KindRewrite, r.name, []int64{q.ID}
		out = append(out, rw)
		explained = explained || r.readsRows
	}
	if !explained && !w.covered[q.ID] {
		if rw, ok := ruleExamined(q, cat); ok {
			rw.rec.Kind, rw.rec.Rule, rw.rec.Queries = KindRewrite, "examined_ratio", []int64{q.ID}
			out = append(out, rw)
		}
	}
	return out
}

// rewriteAdvice suggests query rewrites from the text and the plan, and
// checks the mechanical ones on the database. The index recommendations
// are already in s.report (Advise appends them first): a query they help
// gets no examined_ratio advice.
func (s *session) rewriteAdvice(ctx context.Context) []Recommendation {
	qs := s.queries()
	var recs []Recommendation
	if s.report != nil {
		recs = s.report.Recommendations
	}
	w := newRwWorkload(s.all, recs)
	out := []Recommendation{}
	for _, q := range qs {
		for _, rw := range detectRewrites(q, s.cat, w) {
			if rw.checkable() {
				s.checkRewrite(ctx, q, &rw)
			}
			out = append(out, rw.rec)
		}
	}
	return out
}

// --- the rules ---

// ruleFunctionOnColumn: a function or cast over an indexed column in
// WHERE, which a Seq Scan's Filter shows, so the index cannot serve it. The
// advice is an expression index (checked with HypoPG) or comparing the
// column directly. Unchecked estimate: the share of the plan's cost in the
// scan, times the share of the table's rows the scan throws away.
func ruleFunctionOnColumn(q *Query, cat *Catalog, _ rwWorkload) (rewrite, bool) {
	loc := reRwWhere.FindStringIndex(q.Text)
	if loc == nil {
		return rewrite{}, false
	}
	where, tables := q.Text[loc[1]:], aliases(q.Text)
	type hit struct{ ref, expr string }
	var hits []hit
	for _, m := range reRwFuncOnCol.FindAllStringSubmatch(where, -1) {
		if !rwNotFunction(strings.ToLower(m[1])) {
			hits = append(hits, hit{m[3], strings.ToLower(m[1]) + "(" + m[2] + rwBare(m[3]) + ")"})
		}
	}
	for _, m := range reRwCastOnCol.FindAllStringSubmatch(where, -1) {
		hits = append(hits, hit{m[1], "(" + rwBare(m[1]) + "::" + strings.ToLower(m[2]) + ")"})
	}
	for _, h := range hits {
		t, col := column(cat, tables, h.ref)
		if col == nil || !rwLeadsIndex(t, col.Name) {
			continue
		}
		scan := rwFind(q.plan, func(n *Node) bool {
			return n.Type == "Seq Scan" && n.Relation == t.Name && strings.Contains(n.Filter, col.Name) &&
				(strings.Contains(n.Filter, "::") || strings.Contains(strings.ToLower(n.Filter), strings.SplitN(h.expr, "(", 2)[0]+"("))
		})
		if scan == nil {
			continue
		}
		ix := exprIndex(t, h.expr)
		est := rwScanWaste(q.plan, scan, t)
		return rewrite{
			rec: Recommendation{
				Table: t.Name, Columns: []string{col.Name},
				SQL:    fmt.Sprintf("%s; -- or compare %s itself (a range for date/cast)", ix.ddl(true), col.Name),
				Effort: Low, Risk: Low, EstimatedImprovementPct: est,
				Reason: fmt.Sprintf("%s applies %s to the indexed column %s, so the index cannot serve it: Seq Scan on %s reads %.0f rows (filter %s) at cost %.0f of %.0f; an expression index is DDL only (estimate without a check: %.0f %% of the plan's cost is the scan's discarded rows)",
					sqltext.Clip(strings.Join(strings.Fields(q.Text), " "), reasonQueryRunes), h.expr, col.Name, t.Name, t.Rows, scan.Filter, scan.TotalCost, q.plan.Root.TotalCost, est),
			},
			hypo: []rwIndex{ix}, ddl: ix.ddl(true),
		}, true
	}
	return rewrite{}, false
}

// ruleOffset: OFFSET pagination. The Limit node computes the offset rows
// and discards them. Estimate (the keyset form is not mechanical, so it is
// not checked): 100 × offset / (offset + limit), the share of the rows read
// that are thrown away.
func ruleOffset(q *Query, _ *Catalog, _ rwWorkload) (rewrite, bool) {
	m := reRwOffsetVal.FindStringSubmatch(q.Text)
	lim := rwFind(q.plan, func(n *Node) bool { return n.Type == "Limit" })
	if m == nil || lim == nil {
		return rewrite{}, false
	}
	offText := q.Text
	if q.bound != "" {
		offText = q.bound
	}
	offset, offAssumed := rwNumber(reRwOffsetVal, offText, assumedOffset)
	limit, limAssumed := rwNumber(reRwLimitVal, offText, lim.PlanRows)
	if offset <= 0 {
		return rewrite{}, false
	}
	assumed := ""
	if offAssumed || limAssumed {
		assumed = fmt.Sprintf(" (values unknown: assumed OFFSET %.0f, LIMIT %.0f)", offset, limit)
	}
	est := rwPercent * offset / (offset + limit)
	table := ""
	if scan := rwFind(&Plan{Root: lim}, (*Node).isScan); scan != nil {
		table = scan.Relation
	}
	var cols []string
	keyset := "WHERE <key> > <last key seen> ORDER BY <key> LIMIT n"
	if o := reRwOrderBy.FindStringSubmatch(q.Text); o != nil {
		cols = []string{rwBare(o[1])}
		keyset = keysetSQL(q.Text, m[0], o[1], strings.TrimSpace(strings.ToUpper(o[2])) == "DESC")
	}
	return rewrite{rec: Recommendation{
		Table: table, Columns: cols, SQL: keyset, Effort: Medium, Risk: Medium, EstimatedImprovementPct: est,
		Reason: fmt.Sprintf("OFFSET pagination: the Limit node computes %.0f + %.0f rows and discards the first %.0f (%.0f %% of the rows read)%s, and the waste grows with the page number; keyset pagination reads only the page (estimate: offset / (offset + limit)); risk medium: pages are addressed by the last key, not by number, and a non-unique key needs a tiebreaker",
			offset, limit, offset, est, assumed),
	}}, true
}

// ruleSelectStar: SELECT * (or alias.*) of rows wider than selectStarWidth.
// Estimate: the share of the row width in wide columns (avg width ≥
// wideColumnBytes, from pg_stats), the bytes a caller that names its
// columns would most likely leave out; an upper bound on the transfer saved.
func ruleSelectStar(q *Query, cat *Catalog, _ rwWorkload) (rewrite, bool) {
	root := q.plan.Root
	if !reRwStar.MatchString(q.Text) || root.PlanWidth <= selectStarWidth {
		return rewrite{}, false
	}
	scan := rwFind(q.plan, (*Node).isScan)
	if scan == nil {
		return rewrite{}, false
	}
	t := cat.Table(scan.Relation)
	var wide, narrow []string
	var wideBytes float64
	if t != nil {
		for _, name := range rwSortedColumns(t) {
			if c := t.Columns[name]; c.AvgWidth >= wideColumnBytes {
				wide = append(wide, name)
				wideBytes += float64(c.AvgWidth)
			} else {
				narrow = append(narrow, name)
			}
		}
	}
	est := math.Min(rwPercent, rwPercent*wideBytes/root.PlanWidth)
	shape := "SELECT <the columns the caller reads> FROM " + scan.Relation + " …"
	if len(narrow) > 0 {
		shape = reRwStar.ReplaceAllStringFunc(q.Text, func(s string) string {
			return strings.Replace(s, "*", strings.Join(narrow, ", "), 1)
		})
	}
	return rewrite{rec: Recommendation{
		Table: scan.Relation, Columns: wide, SQL: shape, Effort: Medium, Risk: Low, EstimatedImprovementPct: est,
		Reason: fmt.Sprintf("SELECT * returns %.0f-byte rows (over %d); the wide columns %s average %.0f bytes, %.0f %% of each row (estimate: their share of the row width, the bytes sent and held that naming the needed columns saves)",
			root.PlanWidth, selectStarWidth, strings.Join(wide, ", "), wideBytes, est),
	}}, true
}

// ruleNotIn: NOT IN (SELECT col …) over a nullable column. If the
// subquery yields a NULL, NOT IN is never true and the query returns no
// rows; NOT EXISTS has the semantics callers usually mean, and becomes an
// anti join. Checked by planning the NOT EXISTS form; unchecked, 0.
func ruleNotIn(q *Query, cat *Catalog, _ rwWorkload) (rewrite, bool) {
	sub := rwFind(q.plan, func(n *Node) bool { return n.ParentRelationship == "SubPlan" })
	ni, ok := parseNotIn(q.Text)
	if sub == nil || !ok {
		return rewrite{}, false
	}
	t := cat.Table(ni.table)
	if t == nil || t.Columns[rwBare(ni.col)] == nil || t.Columns[rwBare(ni.col)].NotNull {
		return rewrite{}, false
	}
	rw := rewrite{rec: Recommendation{
		Table: t.Name, Columns: []string{rwBare(ni.col)}, SQL: ni.rewrite(q.Text),
		Effort: Medium, Risk: High,
		Reason: fmt.Sprintf("%s NOT IN (SELECT %s FROM %s …): %s.%s is nullable (%.1f %% NULL by pg_stats), and when the subquery yields a NULL, NOT IN returns no rows at all; NOT EXISTS returns the rows without a match and lets the planner use an anti join instead of the %s (cost %.0f per run). Risk high: the two forms differ exactly when NULLs are present (and for rows whose %s is NULL), so check that NOT EXISTS is what the caller means",
			ni.outer, ni.col, ni.table, t.Name, rwBare(ni.col), rwPercent*t.Columns[rwBare(ni.col)].NullFrac, rwSubplanKind(q.plan, sub), sub.TotalCost, ni.outer),
	}}
	if rw.rec.SQL == "" {
		rw.rec.SQL = "… WHERE NOT EXISTS (SELECT 1 FROM " + ni.table + " x WHERE x." + rwBare(ni.col) + " = " + ni.outer + " …)"
		return rw, true
	}
	rw.after = rw.rec.SQL
	if q.bound != "" {
		if b, ok := parseNotIn(q.bound); ok {
			rw.afterBound = b.rewrite(q.bound)
		}
	}
	return rw, true
}

// ruleOrAcrossColumns: WHERE a = … OR b = … over two different columns,
// which a Seq Scan filters row by row. The advice is a UNION ALL of two
// indexed reads (the second half excludes the rows of the first, so the
// rows are the same as with OR), with indexes on the columns that lack one;
// the check also plans the original under those indexes (a BitmapOr).
// Unchecked estimate: as for function_on_column.
func ruleOrAcrossColumns(q *Query, cat *Catalog, _ rwWorkload) (rewrite, bool) {
	tables := aliases(q.Text)
	for _, m := range reRwOrCols.FindAllStringSubmatch(q.Text, -1) {
		if strings.EqualFold(m[1], m[2]) {
			continue
		}
		t1, c1 := column(cat, tables, m[1])
		t2, c2 := column(cat, tables, m[2])
		if c1 == nil || c2 == nil || t1 != t2 {
			continue
		}
		scan := rwFind(q.plan, func(n *Node) bool {
			return n.Type == "Seq Scan" && n.Relation == t1.Name && strings.Contains(n.Filter, " OR ") &&
				strings.Contains(n.Filter, c1.Name) && strings.Contains(n.Filter, c2.Name)
		})
		if scan == nil {
			continue
		}
		return orRewrite(q, t1, c1.Name, c2.Name, scan), true
	}
	return rewrite{}, false
}

// orRewrite builds the or_across_columns advice for columns a and b of t.
func orRewrite(q *Query, t *Table, a, b string, scan *Node) rewrite {
	var ixs []rwIndex
	for _, c := range []string{a, b} {
		if !rwLeadsIndex(t, c) {
			ixs = append(ixs, plainIndex(t, c))
		}
	}
	est := rwScanWaste(q.plan, scan, t)
	rw := rewrite{hypo: ixs, alsoOriginal: true, ddl: rwDDLText(ixs, true)}
	rw.after, _ = unionOfOr(q.Text)
	if q.bound != "" {
		rw.afterBound, _ = unionOfOr(q.bound)
	}
	shape := rw.after
	if shape == "" {
		shape = "SELECT … WHERE " + a + " = $1 UNION ALL SELECT … WHERE " + b + " = $2 AND (" + a + " = $1) IS NOT TRUE"
	}
	missing := "both columns are indexed"
	if len(ixs) > 0 {
		missing = "it needs " + rw.ddl
	}
	rw.rec = Recommendation{
		Table: t.Name, Columns: []string{a, b}, SQL: rwJoinSQL(rw.ddl, shape), Effort: Medium, Risk: Low,
		EstimatedImprovementPct: est,
		Reason: fmt.Sprintf("WHERE %s = … OR %s = … spans two columns, so no single index scan serves it: Seq Scan on %s reads %.0f rows (filter %s) at cost %.0f of %.0f; a UNION ALL of two indexed reads (or a BitmapOr) reads only the matches; %s (estimate without a check: %.0f %% of the cost is the scan's discarded rows); risk low: the second half excludes the first half's rows, so the rows are the same",
			a, b, t.Name, t.Rows, scan.Filter, scan.TotalCost, q.plan.Root.TotalCost, missing, est),
	}
	return rw
}

// ruleCorrelated: a SubPlan that is not hashed runs once per outer row.
// When the subquery is a single aggregate correlated by one equality, the
// JOIN + GROUP BY form is built and checked. Unchecked estimate: the runs
// after the first are saved, 100 × (runs − 1) × subplan cost / plan cost,
// capped at 99 (the join still reads the inner table once).
func ruleCorrelated(q *Query, _ *Catalog, _ rwWorkload) (rewrite, bool) {
	var sub, owner *Node
	q.plan.Root.Walk(func(n, parent *Node) {
		if sub == nil && n.ParentRelationship == "SubPlan" && !rwHashed(q.plan, n) {
			sub, owner = n, parent
		}
	})
	if sub == nil || owner == nil {
		return rewrite{}, false
	}
	runs := owner.PlanRows
	if q.plan.Analyzed {
		runs = sub.ActualLoops
	}
	if runs < correlatedMinRuns {
		return rewrite{}, false
	}
	root := q.plan.Root.TotalCost
	est := 0.0
	if root > 0 {
		est = math.Min(rwMaxEstimatePct, math.Max(0, rwPercent*(runs-1)*sub.TotalCost/root))
	}
	table, cond := "", sub.Filter
	if scan := rwFind(&Plan{Root: sub}, (*Node).isScan); scan != nil {
		table = scan.Relation
		if cond == "" {
			cond = scan.Filter + scan.IndexCond
		}
	}
	rw := rewrite{rec: Recommendation{
		Table: table, Columns: rwCondColumns(cond), Effort: Medium, Risk: Low, EstimatedImprovementPct: est,
		SQL: "… FROM outer_table o LEFT JOIN (SELECT key, agg(…) FROM " + table + " GROUP BY key) s ON s.key = o.… (or LEFT JOIN LATERAL)",
		Reason: fmt.Sprintf("correlated subquery (%s, cond %s) runs once per outer row: about %.0f runs at cost %.0f each, %.0f of the plan's %.0f; a JOIN with GROUP BY reads %s once (estimate without a check: (runs − 1) × subplan cost / plan cost)",
			sub.SubplanName, cond, runs, sub.TotalCost, runs*sub.TotalCost, root, table),
	}}
	if after, ok := joinOfCorrelated(q.Text); ok {
		rw.after, rw.rec.SQL = after, after
		if q.bound != "" {
			rw.afterBound, _ = joinOfCorrelated(q.bound)
		}
	}
	return rw, true
}

// ruleSortWithoutLimit: the plan's top is a Sort (or a Gather Merge over
// one) of at least sortNoLimitRows rows and the query has no LIMIT: every
// row is sorted and sent. Checked by planning the query with LIMIT
// assumedLimit appended (a top-N sort).
func ruleSortWithoutLimit(q *Query, _ *Catalog, _ rwWorkload) (rewrite, bool) {
	sort := q.plan.Root
	if sort.Type == "Gather Merge" && len(sort.Plans) > 0 {
		sort = sort.Plans[0]
	}
	if sort.Type != "Sort" || sort.PlanRows < sortNoLimitRows || reRwLimitAny.MatchString(q.Text) || q.kind != "select" {
		return rewrite{}, false
	}
	table := ""
	if scan := rwFind(&Plan{Root: sort}, (*Node).isScan); scan != nil {
		table = scan.Relation
	}
	var child float64
	if len(sort.Plans) > 0 {
		child = sort.Plans[0].TotalCost
	}
	next := rwMaxParam(q.Text) + 1
	rw := rewrite{rec: Recommendation{
		Table: table, Columns: rwBareAll(sort.SortKey), Effort: Medium, Risk: Low,
		SQL: fmt.Sprintf("%s LIMIT $%d -- a page; the next page by keyset on the sort key", q.Text, next),
		Reason: fmt.Sprintf("the plan sorts %.0f rows (sort cost %.0f of the plan's %.0f) and returns them all, with no LIMIT; a page of %d needs only a top-N sort and sends %d rows; risk low: a caller that really needs every row keeps it, paginated",
			sort.PlanRows, sort.TotalCost-child, q.plan.Root.TotalCost, assumedLimit, assumedLimit),
	}}
	rw.notSameRows = "the LIMIT returns one page by design"
	rw.after = fmt.Sprintf("%s LIMIT %d", q.Text, assumedLimit)
	if q.bound != "" {
		rw.afterBound = fmt.Sprintf("%s LIMIT %d", q.bound, assumedLimit)
	}
	return rw, true
}

// ruleNPlusOne: the same single-row lookup by a unique key, run at least
// nPlusOneCallsFactor × the workload's median calls (and nPlusOneMinCalls):
// the inner side of a loop in the application. Estimate: k = calls /
// median calls lookups per outer statement become one = ANY($n) statement,
// saving 100 × (1 − 1/k) of the round trips and per-statement overhead
// (which pg_stat_statements does not time, so this is not checked).
func ruleNPlusOne(q *Query, cat *Catalog, w rwWorkload) (rewrite, bool) {
	loc := reRwKeyLookup.FindStringSubmatchIndex(q.Text)
	if loc == nil || q.Calls < nPlusOneMinCalls || w.medianCalls <= 0 ||
		float64(q.Calls) < nPlusOneCallsFactor*w.medianCalls || float64(q.Rows) > nPlusOneMaxRowsPerCall*float64(q.Calls) {
		return rewrite{}, false
	}
	table, key := q.Text[loc[2]:loc[3]], q.Text[loc[4]:loc[5]]
	param := q.Text[loc[6]:loc[7]]
	t := cat.Table(table)
	col := rwBare(key)
	if t == nil || !rwUniqueKey(t, col) {
		return rewrite{}, false
	}
	k := float64(q.Calls) / w.medianCalls
	est := rwPercent * (1 - 1/k)
	// Only the WHERE clause's key parameter becomes an array, under its
	// own number, so the statement's other parameters keep theirs.
	shape := q.Text[:loc[6]] + "ANY(" + param + ")" + q.Text[loc[7]:]
	return rewrite{rec: Recommendation{
		Table: t.Name, Columns: []string{col}, SQL: shape, Effort: Medium, Risk: Low, EstimatedImprovementPct: est,
		Reason: fmt.Sprintf("a single-row lookup by the unique key %s.%s runs %d times (%.2f rows a call), %.0f× the workload's median of %.0f calls: an N+1 loop in the application; fetching the keys in one = ANY(%s) statement saves about %.0f %% of the round trips (estimate: 1 − 1/(calls / median calls))",
			t.Name, col, q.Calls, float64(q.Rows)/float64(q.Calls), k, w.medianCalls, param, est),
	}}, true
}

// ruleExamined is the guide's rule: the plan examines more than
// RewriteExaminedRatio rows per row returned, and no rule above says why.
// Estimate: the scan's share of the plan's cost times the share of its
// rows that are not returned, 100 × (scan cost / plan cost) × (1 −
// returned / examined).
func ruleExamined(q *Query, cat *Catalog) (rewrite, bool) {
	ex, top := planExamined(q.plan, cat)
	ret := planReturned(q.plan)
	if top == nil || ex <= RewriteExaminedRatio*ret {
		return rewrite{}, false
	}
	root := q.plan.Root.TotalCost
	est := 0.0
	if root > 0 {
		est = math.Min(rwMaxEstimatePct, rwPercent*math.Min(1, top.TotalCost/root)*(1-ret/ex))
	}
	cond := strings.TrimSpace(top.Filter + " " + top.IndexCond)
	// A parallel scan's Plan Rows are one process's share: count them all.
	kept := returnedRows(top, q.plan.Analyzed, gatherAbove(q.plan, top))
	return rewrite{rec: Recommendation{
		Table: top.Relation, Columns: rwCondColumns(cond), Effort: Medium, Risk: Low, EstimatedImprovementPct: est,
		SQL: fmt.Sprintf("-- %s on %s keeps %.0f of %.0f rows read (%s): give it a predicate an index serves, or pre-aggregate",
			top.Type, top.Relation, math.Min(kept, planScanExamined(top, q.plan, cat)), planScanExamined(top, q.plan, cat), cond),
		Reason: fmt.Sprintf("examines %.0f rows to return %.0f (%.0f×, over the guide's %d×): %s on %s reads %.0f rows (condition %q) at cost %.0f of %.0f; restructure so it reads only what it returns (a selective predicate an index can serve, pre-aggregation, or a narrower time range); estimate: scan share × (1 − returned/examined)",
			ex, ret, ex/ret, RewriteExaminedRatio, top.Type, top.Relation, planScanExamined(top, q.plan, cat), cond, top.TotalCost, root),
	}}, true
}

// --- the check ---

// checkRewrite plans the original (its own plan, session.explain) and the
// rewritten statement (under the rewrite's hypothetical indexes), sets
// rw.rec.Checked and the improvement from the two costs, and with
// Config.Analyze compares the rows of both. Advise clears the index
// advice's hypothetical indexes before the rewrites, so both plans see the
// real schema plus only the rewrite's own indexes.
func (s *session) checkRewrite(ctx context.Context, q *Query, rw *rewrite) {
	after := rw.afterBound
	if q.bound == "" {
		after = rw.after
	}
	if rw.after != "" && after == "" {
		return
	}
	before, err := s.explain(ctx, q, false)
	if err != nil {
		rw.rec.Checked = &Check{Note: "not checked: the original could not be planned: " + firstLine(err.Error())}
		return
	}
	var planned, alt *Plan
	err = s.rwWithHypo(ctx, rw.hypo, func() error {
		var err error
		if after == "" {
			planned, err = s.explain(ctx, q, false)
			return err
		}
		if planned, err = s.rwPlan(ctx, q, after); err != nil {
			return err
		}
		if rw.alsoOriginal && len(rw.hypo) > 0 {
			alt, err = s.explain(ctx, q, false)
		}
		return err
	})
	if err != nil {
		rw.rec.Checked = &Check{CostBefore: before.Cost(), Note: "not checked: " + firstLine(err.Error())}
		return
	}
	applyCheck(rw, before, planned, alt)
	if rw.notSameRows != "" {
		rw.rec.Checked.Note += "; rows not compared: " + rw.notSameRows
		return
	}
	if s.cfg.Analyze && q.bound != "" && rw.afterBound != "" && q.kind == "select" {
		same, err := s.rwSameRows(ctx, q.bound, rw.afterBound)
		if err != nil {
			rw.rec.Checked.Note += "; rows not compared: " + firstLine(err.Error())
		} else {
			rw.rec.Checked.SameRows = &same
		}
	}
}

// applyCheck sets the check's costs and the improvement 100 × (1 −
// after/before), 0 when the rewrite is not cheaper. With alt (the original
// under the same hypothetical indexes) at most the rewrite's cost, the
// indexes alone are the advice.
func applyCheck(rw *rewrite, before, after, alt *Plan) {
	c := &Check{CostBefore: before.Cost(), CostAfter: after.Cost()}
	var notes []string
	if len(rw.hypo) > 0 {
		notes = append(notes, "with hypothetical "+rwDDLText(rw.hypo, false))
	}
	if alt != nil && alt.Cost() <= after.Cost() {
		c.CostAfter = alt.Cost()
		notes = append(notes, fmt.Sprintf("the original with the indexes costs %.0f, no more than the rewrite's %.0f: the indexes alone are enough", alt.Cost(), after.Cost()))
		rw.rec.SQL, rw.rec.Effort = rw.ddl, Low
	}
	imp := 0.0
	if c.CostBefore > 0 && c.CostAfter < c.CostBefore {
		imp = rwPercent * (1 - c.CostAfter/c.CostBefore)
		notes = append(notes, fmt.Sprintf("planner cost %.0f → %.0f", c.CostBefore, c.CostAfter))
	} else {
		notes = append(notes, fmt.Sprintf("not cheaper by the planner's estimate (%.0f → %.0f): improvement 0", c.CostBefore, c.CostAfter))
	}
	c.Note = strings.Join(notes, "; ")
	rw.rec.Checked, rw.rec.EstimatedImprovementPct = c, imp
}

// rwPlan plans a rewritten statement text: directly when q has bound
// values (text is then the bound form), else as a fresh prepared
// statement's generic plan. (The original is planned by session.explain.)
func (s *session) rwPlan(ctx context.Context, q *Query, text string) (*Plan, error) {
	if q.bound != "" {
		p, err := s.explainText(ctx, text)
		if err != nil {
			return nil, fmt.Errorf("the rewrite could not be planned: %w", err)
		}
		return p, nil
	}
	if _, err := s.conn.ExecContext(ctx, "PREPARE "+rewriteStmt+" AS "+text); err != nil {
		return nil, fmt.Errorf("the rewrite could not be prepared: %w", err)
	}
	defer s.conn.ExecContext(ctx, "DEALLOCATE "+rewriteStmt) //nolint:errcheck // best effort
	stmt := "EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE " + rewriteStmt
	if n := rwMaxParam(text); n > 0 {
		stmt += "(" + strings.TrimSuffix(strings.Repeat("NULL, ", n), ", ") + ")"
	}
	p, err := s.explainStmt(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("the rewrite could not be planned: %w", err)
	}
	return p, nil
}

// rwWithHypo runs fn with the hypothetical indexes ixs created, and drops
// them again.
func (s *session) rwWithHypo(ctx context.Context, ixs []rwIndex, fn func() error) error {
	var made []hypo
	defer func() {
		for _, h := range made {
			_ = s.hypoDrop(ctx, h) // best effort: hypopg_reset at the end clears any left
		}
	}()
	for _, ix := range ixs {
		h, err := s.hypoCreateDDL(ctx, ix.ddl(false))
		if err != nil {
			return err
		}
		made = append(made, h)
	}
	return fn()
}

// rwSameRows runs both statements (only with Config.Analyze) and reports
// whether their rows are the same multiset, by EXCEPT ALL both ways, in a
// read-only transaction with a statement timeout.
func (s *session) rwSameRows(ctx context.Context, a, b string) (bool, error) {
	tx, err := s.conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	if _, err := tx.ExecContext(ctx, "SET LOCAL statement_timeout = '"+sameRowsTimeout+"'"); err != nil {
		return false, fmt.Errorf("set statement_timeout: %w", err)
	}
	var n1, n2 int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM (("+a+") EXCEPT ALL ("+b+")) x").Scan(&n1); err != nil {
		return false, fmt.Errorf("original EXCEPT ALL rewrite: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM (("+b+") EXCEPT ALL ("+a+")) x").Scan(&n2); err != nil {
		return false, fmt.Errorf("rewrite EXCEPT ALL original: %w", err)
	}
	return n1 == 0 && n2 == 0, nil
}

// --- text helpers ---

// rwMask returns s with everything inside parentheses and quotes replaced
// by spaces (the parentheses and quotes kept), so that top-level keywords
// can be found by position.
func rwMask(s string) string {
	b := []byte(s)
	depth, quoted := 0, false
	for i, c := range b {
		switch {
		case c == '\'':
			quoted = !quoted
		case quoted:
			b[i] = ' '
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth > 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// rwClosingParen returns the index of the parenthesis closing the one at
// open, or -1.
func rwClosingParen(s string, open int) int {
	depth, quoted := 0, false
	for i := open; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// unionOfOr rewrites "SELECT cols FROM t WHERE A OR B" (nothing after the
// WHERE clause, no function calls in the select list) into "… WHERE A
// UNION ALL … WHERE (B) AND (A) IS NOT TRUE", which returns the same rows.
func unionOfOr(text string) (string, bool) {
	m := rwMask(text)
	locs := reRwWhere.FindAllStringIndex(m, -1)
	if len(locs) != 1 {
		return "", false
	}
	head, where := strings.TrimSpace(text[:locs[0][0]]), text[locs[0][1]:]
	mw := m[locs[0][1]:]
	if !strings.HasPrefix(strings.ToUpper(head), "SELECT") || strings.Contains(head, "(") || reRwTail.MatchString(mw) {
		return "", false
	}
	ors := reRwTopOr.FindAllStringIndex(mw, -1)
	if len(ors) != 1 {
		return "", false
	}
	a := strings.TrimSpace(where[:ors[0][0]])
	b := strings.TrimSpace(where[ors[0][1]:])
	op := "UNION ALL"
	if reRwDistinct.MatchString(head) {
		op = "UNION"
	}
	return fmt.Sprintf("%s WHERE %s %s %s WHERE (%s) AND (%s) IS NOT TRUE", head, a, op, head, b, a), true
}

// notIn is a parsed "outer NOT IN (SELECT col FROM table [alias] [WHERE …])".
type notIn struct {
	outer, col, table, alias, rest string
	start, end                     int // the span of "outer NOT IN (…)"
	mechanical                     bool
}

// parseNotIn finds the first NOT IN (SELECT …) of text.
func parseNotIn(text string) (notIn, bool) {
	loc := reRwNotIn.FindStringSubmatchIndex(text)
	if loc == nil {
		return notIn{}, false
	}
	open := strings.Index(text[loc[0]:], "(") + loc[0]
	end := rwClosingParen(text, open)
	if end < 0 {
		return notIn{}, false
	}
	m := reRwSubSelect.FindStringSubmatch(text[open+1 : end])
	if m == nil {
		return notIn{}, false
	}
	ni := notIn{outer: text[loc[2]:loc[3]], col: m[1], table: m[2], alias: m[3], rest: strings.TrimSpace(m[4]), start: loc[0], end: end}
	if sqltext.NotAlias(ni.alias) {
		ni.rest = strings.TrimSpace(ni.alias + " " + ni.rest)
		ni.alias = ""
	}
	if _, n, ok := strings.Cut(ni.table, "."); ok {
		ni.table = n
	}
	mr := rwMask(ni.rest)
	ni.mechanical = (ni.rest == "" || reRwWhere.FindStringIndex(mr) != nil && reRwWhere.FindStringIndex(mr)[0] == 0) &&
		!reRwTail.MatchString(mr) && !reRwJoinList.MatchString(mr)
	if !strings.Contains(ni.outer, ".") {
		// Qualify the outer column with the outer query's table, or give up.
		froms := reFromTable.FindAllStringSubmatch(text[:ni.start], -1)
		if len(froms) == 0 {
			ni.mechanical = false
		} else {
			f := froms[len(froms)-1]
			q := f[1]
			if f[2] != "" && !sqltext.NotAlias(f[2]) {
				q = f[2]
			}
			ni.outer = q + "." + ni.outer
		}
	}
	return ni, true
}

// rewrite returns text with the NOT IN replaced by NOT EXISTS, or "" when
// the subquery is not a plain filtered read of one table.
func (ni notIn) rewrite(text string) string {
	if !ni.mechanical {
		return ""
	}
	alias := ni.alias
	if alias == "" {
		alias = "nin"
	}
	cond := alias + "." + rwBare(ni.col) + " = " + ni.outer
	if ni.rest != "" {
		cond = "(" + strings.TrimSpace(ni.rest[len("WHERE"):]) + ") AND " + cond
	}
	return text[:ni.start] + "NOT EXISTS (SELECT 1 FROM " + ni.table + " " + alias + " WHERE " + cond + ")" + text[ni.end+1:]
}

// joinOfCorrelated rewrites a select-list "(SELECT agg(x) FROM t a WHERE
// a.k = o.c)" into a LEFT JOIN of t grouped by k, placed after the outer
// FROM item; count becomes COALESCE(…, 0) since no match is 0, not NULL.
func joinOfCorrelated(text string) (string, bool) {
	loc := reRwCorrSub.FindStringSubmatchIndex(text)
	if loc == nil {
		return "", false
	}
	g := func(i int) string {
		if loc[2*i] < 0 {
			return ""
		}
		return text[loc[2*i]:loc[2*i+1]]
	}
	agg, arg, table, alias, inner, outer := strings.ToLower(g(1)), g(2), g(3), g(4), g(5), g(6)
	if alias == "" {
		alias = table
	}
	// The inner side of the equality is the one qualified by the subquery's table.
	if strings.HasPrefix(outer, alias+".") {
		inner, outer = outer, inner
	}
	if !strings.HasPrefix(inner, alias+".") {
		return "", false
	}
	rest := text[loc[1]:]
	from := reFromTable.FindStringSubmatchIndex(rest)
	if from == nil || reRwCorrSub.MatchString(rest) {
		return "", false
	}
	end := from[3]
	if from[4] >= 0 && !sqltext.NotAlias(rest[from[4]:from[5]]) {
		end = from[5]
	}
	val := "sq." + agg
	if agg == "count" {
		val = "COALESCE(sq.count, 0)"
	}
	join := fmt.Sprintf(" LEFT JOIN (SELECT %s, %s(%s) AS %s FROM %s %s GROUP BY %s) sq ON sq.%s = %s",
		inner, agg, arg, agg, table, alias, inner, rwBare(inner), outer)
	return text[:loc[0]] + val + rest[:end] + join + rest[end:], true
}

// keysetSQL is the keyset form of a paginated text: the OFFSET clause off,
// "key > $next" (or < for DESC) added to the WHERE clause.
func keysetSQL(text, offsetClause, key string, desc bool) string {
	op := ">"
	if desc {
		op = "<"
	}
	cond := fmt.Sprintf("%s %s $%d", key, op, rwMaxParam(text)+1)
	out := strings.TrimSpace(strings.Replace(text, offsetClause, "", 1))
	if loc := reRwWhere.FindStringIndex(rwMask(out)); loc != nil {
		return out[:loc[1]] + " " + cond + " AND" + out[loc[1]:] + fmt.Sprintf(" -- $%d: the last %s of the previous page", rwMaxParam(text)+1, key)
	}
	ob := reRwOrderKw.FindStringIndex(out)
	if ob == nil {
		return out
	}
	return out[:ob[0]] + " WHERE " + cond + out[ob[0]:] + fmt.Sprintf(" -- $%d: the last %s of the previous page", rwMaxParam(text)+1, key)
}

// rwNumber reads the number the regexp's first group holds in text (a
// literal, or a bound '20'::bigint); def, assumed true, when it is a
// parameter or absent.
func rwNumber(re *regexp.Regexp, text string, def float64) (float64, bool) {
	m := re.FindStringSubmatch(text)
	if m == nil {
		return def, true
	}
	v := m[1]
	if l := reRwLiteral.FindString(v); l != "" {
		v = strings.Trim(l, "'")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return def, true
	}
	return f, false
}

// rwMaxParam is the highest $n in text (0 when none).
func rwMaxParam(text string) int {
	n := 0
	for _, m := range reParam.FindAllStringSubmatch(text, -1) {
		if i, err := strconv.Atoi(m[1]); err == nil && i > n {
			n = i
		}
	}
	return n
}

// rwBare strips an alias or schema qualifier from a column reference.
func rwBare(ref string) string {
	if i := strings.LastIndex(ref, "."); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

// rwBareAll strips the qualifiers of sort keys and their ASC/DESC; an
// empty or blank key is left out.
func rwBareAll(keys []string) []string {
	var out []string
	for _, k := range keys {
		if f := strings.Fields(k); len(f) > 0 {
			out = append(out, rwBare(f[0]))
		}
	}
	return out
}

// rwCondColumns lists the columns an EXPLAIN condition mentions as
// alias.column, deduplicated, in order.
func rwCondColumns(cond string) []string {
	var out []string
	for _, m := range reRwColRef.FindAllStringSubmatch(reRwLiteral.ReplaceAllString(cond, ""), -1) {
		if !slices.Contains(out, m[2]) {
			out = append(out, m[2])
		}
	}
	return out
}

// rwDDLText joins the indexes' CREATE INDEX statements for the advice, a
// Reason or a Note.
func rwDDLText(ixs []rwIndex, concurrently bool) string {
	ddls := make([]string, len(ixs))
	for i, ix := range ixs {
		ddls[i] = ix.ddl(concurrently)
	}
	return strings.Join(ddls, "; ")
}

// rwJoinSQL puts DDL and a query shape together.
func rwJoinSQL(ddl, shape string) string {
	if ddl == "" {
		return shape
	}
	return ddl + ";\n" + shape
}

// --- plan and catalogue helpers ---

// rwFind returns the first node of p (parents first) for which ok holds.
func rwFind(p *Plan, ok func(*Node) bool) *Node {
	var found *Node
	p.Root.Walk(func(n, _ *Node) {
		if found == nil && ok(n) {
			found = n
		}
	})
	return found
}

// rwHashed reports whether the plan refers to the subplan sub as hashed
// (PostgreSQL builds its result once into a hash table).
func rwHashed(p *Plan, sub *Node) bool {
	if sub.SubplanName == "" {
		return false
	}
	h := "hashed " + sub.SubplanName
	hashed := false
	refers := func(e string) bool { return strings.Contains(e, h) }
	p.Root.Walk(func(n, _ *Node) {
		hashed = hashed || slices.ContainsFunc([]string{n.Filter, n.JoinFilter, n.IndexCond, n.RecheckCond, n.HashCond}, refers) ||
			slices.ContainsFunc(n.Output, refers)
	})
	return hashed
}

// rwSubplanKind says how the plan runs sub.
func rwSubplanKind(p *Plan, sub *Node) string {
	if rwHashed(p, sub) {
		return "hashed " + sub.SubplanName
	}
	return sub.SubplanName + ", run once per row"
}

// rwScanWaste estimates the improvement of reading only the rows a
// scan keeps: 100 × (scan cost / plan cost) × (1 − kept rows / table rows).
func rwScanWaste(p *Plan, scan *Node, t *Table) float64 {
	root := p.Root.TotalCost
	if root <= 0 || t.Rows <= 0 {
		return 0
	}
	kept := math.Min(scan.PlanRows, t.Rows)
	return math.Min(rwMaxEstimatePct, rwPercent*math.Min(1, scan.TotalCost/root)*(1-kept/t.Rows))
}

// rwLeadsIndex reports whether some valid index of t has col as its first
// key column.
func rwLeadsIndex(t *Table, col string) bool {
	return slices.ContainsFunc(t.Indexes, func(ix *Index) bool {
		return len(ix.Columns) > 0 && ix.Columns[0] == col && ix.Valid
	})
}

// rwUniqueKey reports whether col alone is t's primary key or a unique
// index's only key column (without a predicate).
func rwUniqueKey(t *Table, col string) bool {
	return slices.ContainsFunc(t.Indexes, func(ix *Index) bool {
		return (ix.Unique || ix.Primary) && ix.Predicate == "" && len(ix.Columns) == 1 && ix.Columns[0] == col
	})
}

// rwSortedColumns lists t's column names in name order.
func rwSortedColumns(t *Table) []string {
	out := make([]string, 0, len(t.Columns))
	for n := range t.Columns {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
