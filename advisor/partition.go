package advisor

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The seed's rule (Query Optimization): partition a table when one query
// examines more than PartitionRowsExamined rows of it, or when the
// expected load is past PartitionQPS queries a second.
//
// Rows examined come from the plan, per scan node of the table, summed
// over the query's scans of it, counted as the findings count them (see
// examined in findings.go).
//
// The QPS rule needs to know which tables the expected load falls on. The
// advisor spreads Config.ExpectedQPS over the workload's queries in
// proportion to their calls: a table's share is the calls of the queries
// that scan it over all calls; a table whose share is past PartitionQPS is
// proposed.
//
// Under either rule, a table must hold more than PartitionRowsExamined
// rows: a smaller one is a single partition's worth (see partHashCount),
// and a query that examines a million rows of it does so by reading it
// again and again, which an index cures, not partitions.
//
// The key: range on a time column the table's queries filter or sort on,
// with monthly partitions over the column's histogram (weekly or daily
// when that gives fewer than minRangePartitions); else hash on the column
// the queries compare for equality most often (weighted by calls); else
// hash on the primary key.

const (
	// minRangePartitions is the fewest range partitions worth having: with
	// fewer monthly ones the advisor tries weekly, then daily ones.
	minRangePartitions = 4
	// maxRangePartitions bounds the range partitions; past it they are
	// yearly. PostgreSQL plans a few thousand partitions well only when
	// queries prune most of them (its manual, "Partitioning Best
	// Practices").
	maxRangePartitions = 1000
	// minHashPartitions is the fewest hash partitions: one is no split.
	minHashPartitions = 2
	// maxHashPartitions caps hash partitions, as the seed caps shards
	// (Sharding: "cap at reasonable maximum", 64).
	maxHashPartitions = 64
	// partShardBytes is the heap size past which one machine is not the
	// answer: the seed's vertical-split boundary (Sharding: "< 100 GB").
	partShardBytes = 100 << 30
	// partMaxGain caps the estimated improvement: partitioning never
	// removes all of the work.
	partMaxGain = 0.99
	// partPercent turns a fraction into a percentage.
	partPercent = 100
	// partTenths rounds the gain to a tenth of a percent.
	partTenths = 10
)

// rePartEq matches an equality comparison's left side, optionally
// qualified: "t.col =" or "col =" (not ">=", "<=", "<>", "!=").
var rePartEq = regexp.MustCompile(`(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)\s*=`)

// rePartWhere and rePartOrder find where a query's filter and its sort
// start; rePartClauseEnd where the filter ends.
var (
	rePartWhere     = regexp.MustCompile(`(?i)\bWHERE\b`)
	rePartOrder     = regexp.MustCompile(`(?i)\bORDER\s+BY\b`)
	rePartClauseEnd = regexp.MustCompile(`(?i)\b(?:GROUP\s+BY|ORDER\s+BY|LIMIT|OFFSET|HAVING|WINDOW|FOR\s+UPDATE)\b`)
)

// partQuery is what one query does to one table.
type partQuery struct {
	q *Query
	// examined is the rows its scans of the table read; returned the rows
	// they pass on; reads how many times they read it (scans × loops).
	examined, returned, reads float64
	// conds are the scans' Filter, Index Cond and Recheck Cond; names the
	// aliases and names the scans use for the table; sorts the plan's
	// sort keys.
	conds, names, sorts []string
}

// partTable is a table the rule picked and the queries that picked it.
type partTable struct {
	t       *Table
	queries []*partQuery
	// why says which rule picked it.
	why []string
}

// partitionAdvice proposes partitioning for tables past the seed's rule,
// one recommendation a table, ordered by table name.
func partitionAdvice(qs []*Query, cat *Catalog, cfg Config) []Recommendation {
	usage, calls := partUsage(qs, cat)
	var out []Recommendation
	for _, n := range slices.Sorted(maps.Keys(usage)) {
		pt := partPick(cat.Table(n), usage[n], calls, cfg)
		if pt == nil {
			continue
		}
		if r, ok := partRecommend(pt, cat); ok {
			out = append(out, r)
		}
	}
	return out
}

// partUsage gathers, for each table the plans scan, what each query does
// to it, and the workload's total calls.
func partUsage(qs []*Query, cat *Catalog) (map[string][]*partQuery, int64) {
	usage := map[string][]*partQuery{}
	var calls int64
	for _, q := range qs {
		p := q.Plan()
		if p == nil {
			continue
		}
		calls += max(q.Calls, 1)
		byTable := map[string]*partQuery{}
		var sorts []string
		walkGather(p.Root, func(n, gather *Node) {
			sorts = append(sorts, n.SortKey...)
			t := cat.Table(n.Relation)
			if !n.isScan() || t == nil {
				return
			}
			pq := byTable[t.Name]
			if pq == nil {
				pq = &partQuery{q: q}
				byTable[t.Name] = pq
			}
			pq.examined += examined(n, t, p.Analyzed, gather)
			pq.returned += returnedRows(n, p.Analyzed, gather)
			pq.reads += n.Loops()
			pq.names = append(pq.names, n.Relation, n.Alias)
			for _, c := range []string{n.Filter, n.IndexCond, n.RecheckCond} {
				if c != "" {
					pq.conds = append(pq.conds, c)
				}
			}
		})
		for name, pq := range byTable {
			pq.sorts = sorts
			usage[name] = append(usage[name], pq)
		}
	}
	return usage, calls
}

// partPick applies the seed's rule to table t, read by qs; calls are the
// workload's total calls. It returns nil when the rule does not pick t.
func partPick(t *Table, qs []*partQuery, calls int64, cfg Config) *partTable {
	if t == nil || t.Rows <= PartitionRowsExamined {
		return nil
	}
	pt := &partTable{t: t}
	var tableCalls int64
	for _, pq := range qs {
		tableCalls += max(pq.q.Calls, 1)
		if pq.examined > PartitionRowsExamined {
			pt.queries = append(pt.queries, pq)
			pt.why = append(pt.why, fmt.Sprintf("query %d examines %.0f rows of it", pq.q.ID, pq.examined))
		}
	}
	if len(pt.why) > 0 {
		pt.why[len(pt.why)-1] += fmt.Sprintf(" (the seed partitions past %d rows examined)", PartitionRowsExamined)
	}
	if cfg.ExpectedQPS > PartitionQPS && calls > 0 {
		share := float64(tableCalls) / float64(calls)
		if qps := cfg.ExpectedQPS * share; qps > PartitionQPS {
			pt.why = append(pt.why, fmt.Sprintf("at the expected %.0f queries a second, its queries (%.0f%% of the workload's calls) would run about %.0f a second (the seed partitions past %d)",
				cfg.ExpectedQPS, share*partPercent, qps, PartitionQPS))
			for _, pq := range qs {
				if !slices.Contains(pt.queries, pq) {
					pt.queries = append(pt.queries, pq)
				}
			}
		}
	}
	if len(pt.queries) == 0 {
		return nil
	}
	slices.SortFunc(pt.queries, func(a, b *partQuery) int { return cmp.Compare(a.q.ID, b.q.ID) })
	return pt
}

// partScheme is a chosen partitioning: the rule, the key, the partitions.
type partScheme struct {
	rule string // "range" or "hash"
	key  []string
	// parts are the partitions' names and bounds.
	parts []partPart
	// describe says what the partitions are; note is anything the user
	// should know about the choice.
	describe, note string
	// touched is the fraction of the table a query reads after
	// partitioning, given what it does with the key.
	touched func(pq *partQuery) float64
}

// partPart is one partition: the suffix its name adds to the table's
// (see partNames) and its FOR VALUES clause or DEFAULT.
type partPart struct{ suffix, bound string }

// partOnlineCopyBytes is the heap size under which the migration's
// effort is medium: a batched online copy of under 1 GiB takes minutes;
// past it the copy runs for long enough to need dual writes and
// monitoring (high).
const partOnlineCopyBytes = 1 << 30

// partRecommend builds the recommendation for a picked table of cat; ok
// is false when no key can be found (no time column, equality column or
// primary key).
func partRecommend(pt *partTable, cat *Catalog) (Recommendation, bool) {
	t := pt.t
	sc, ok := partChoose(pt)
	if !ok {
		return Recommendation{}, false
	}
	gain := partGain(pt, sc)
	ids := make([]int64, 0, len(pt.queries))
	for _, pq := range pt.queries {
		ids = append(ids, pq.q.ID)
	}
	key := strings.Join(sc.key, ", ")
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s. %s", t.Name, strings.Join(pt.why, "; "), sc.describe)
	if sc.note != "" {
		fmt.Fprintf(&b, " (%s)", sc.note)
	}
	fmt.Fprintf(&b, ". Estimated improvement %.1f%%: the share of the rows these queries examine that partition pruning would skip, weighted by their total time", gain)
	if gain == 0 {
		b.WriteString(" (none of them can prune on the key: the gain is in maintenance, vacuum and index size per partition, not in these plans)")
	}
	if t.Bytes > partShardBytes {
		fmt.Fprintf(&b, ". At %s the table is past the seed's vertical-split boundary (%s): one machine will not hold it for long, "+
			"so plan shards too (the sharding planner, the shard package, is not built yet)", formatBytes(t.Bytes), formatBytes(partShardBytes))
	}
	effort := High
	if t.Bytes < partOnlineCopyBytes {
		effort = Medium
		fmt.Fprintf(&b, ". Effort medium: the heap is %s, under %s, so a batched online copy takes minutes", formatBytes(t.Bytes), formatBytes(partOnlineCopyBytes))
	} else {
		fmt.Fprintf(&b, ". Effort high: the heap is %s, %s or more, so the copy runs long enough to need dual writes or a backfill behind them", formatBytes(t.Bytes), formatBytes(partOnlineCopyBytes))
	}
	risk := Medium
	if lack := partKeysLacking(t, sc.key); len(lack) > 0 {
		risk = High
		fmt.Fprintf(&b, ". Risk high: %s must be rebuilt to include %s (PostgreSQL requires it of a partitioned table's primary key and unique indexes), "+
			"which weakens their uniqueness to the combination, and foreign keys that reference the table need such a key",
			strings.Join(lack, ", "), key)
	} else {
		fmt.Fprintf(&b, ". Risk medium: the primary key and unique indexes, if any, already include %s, so uniqueness is unchanged", key)
	}
	fmt.Fprintf(&b, "; queries that do not filter on %s read every partition, and the copy and rename need dual writes or a quiet moment.", key)
	return Recommendation{
		Kind:                    KindPartition,
		Table:                   t.Name,
		Columns:                 sc.key,
		SQL:                     partDDL(t, sc, partNames(t, sc, partTaken(cat, t))),
		EstimatedImprovementPct: gain,
		Effort:                  effort,
		Risk:                    risk,
		Queries:                 ids,
		Reason:                  b.String(),
		Rule:                    sc.rule,
	}, true
}

// partChoose picks the key and the partitions: range on a time column the
// queries use, else hash on their most used equality column, else hash on
// the primary key.
func partChoose(pt *partTable) (*partScheme, bool) {
	var note string
	if col, n := partTimeColumn(pt); col != nil {
		if sc, ok := partRangeScheme(pt.t, col); ok {
			sc.describe = fmt.Sprintf("Range partitioning by %s (filtered or sorted on by %d of the %d queries above): %s",
				col.Name, n, len(pt.queries), sc.describe)
			return sc, true
		}
		note = fmt.Sprintf("%s is filtered or sorted on, but its statistics give no time bounds to range-partition by: run ANALYZE, with DateStyle ISO", col.Name)
	}
	key, how := partEqColumn(pt)
	if key == nil {
		key, how = partPrimaryKey(pt.t), "its primary key, as no query compares a column for equality"
	}
	if key == nil {
		return nil, false
	}
	sc := partHashScheme(pt.t, key)
	sc.describe = fmt.Sprintf("Hash partitioning by %s (%s): %s", strings.Join(key, ", "), how, sc.describe)
	sc.note = note
	return sc, true
}

// partTimeType reports whether a column type is a time type.
func partTimeType(typ string) bool {
	return typ == "date" || typ == "timestamptz" || strings.HasPrefix(typ, "timestamp")
}

// partTimeColumn is the time column of the table the most queries filter
// or sort on (by calls, then name), with the number of queries; nil when
// none does.
func partTimeColumn(pt *partTable) (*Column, int) {
	var best *Column
	var bestCalls int64
	bestN := 0
	cols := partSortedColumns(pt.t)
	for _, c := range cols {
		if !partTimeType(c.Type) {
			continue
		}
		var calls int64
		n := 0
		for _, pq := range pt.queries {
			if partFilters(pq, c.Name) || partSorts(pq, c.Name) {
				calls += max(pq.q.Calls, 1)
				n++
			}
		}
		if calls > bestCalls {
			best, bestCalls, bestN = c, calls, n
		}
	}
	return best, bestN
}

// partSortedColumns is the table's columns by name. (rewrite.go's
// rwSortedColumns lists the same names; this one returns the columns.)
func partSortedColumns(t *Table) []*Column {
	return slices.SortedFunc(maps.Values(t.Columns), func(a, b *Column) int { return strings.Compare(a.Name, b.Name) })
}

// partFilters reports whether the query filters on column col: in its
// scans' conditions or in the WHERE clause of its text.
func partFilters(pq *partQuery, col string) bool {
	return slices.ContainsFunc(pq.conds, func(c string) bool { return partMentions(c, col) }) ||
		partMentions(partWhereText(pq.q.Text), col)
}

// partSorts reports whether the query sorts on column col.
func partSorts(pq *partQuery, col string) bool {
	if slices.ContainsFunc(pq.sorts, func(k string) bool { return partMentions(k, col) }) {
		return true
	}
	if loc := rePartOrder.FindStringIndex(pq.q.Text); loc != nil {
		return partMentions(pq.q.Text[loc[1]:], col)
	}
	return false
}

// partWhereText is the text of the query's first WHERE clause, up to the
// clause after it ("" without one).
func partWhereText(text string) string {
	loc := rePartWhere.FindStringIndex(text)
	if loc == nil {
		return ""
	}
	rest := text[loc[1]:]
	if end := rePartClauseEnd.FindStringIndex(rest); end != nil {
		rest = rest[:end[0]]
	}
	return rest
}

// partMentions reports whether s names the identifier col as a whole word
// (case-insensitively, as PostgreSQL folds unquoted names).
func partMentions(s, col string) bool {
	s, col = strings.ToLower(s), strings.ToLower(col)
	isIdent := func(c byte) bool {
		return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	for i := 0; ; {
		j := strings.Index(s[i:], col)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(col)
		if (start == 0 || !isIdent(s[start-1])) && (end == len(s) || !isIdent(s[end])) {
			return true
		}
		i = start + 1
	}
}

// partEqColumn is the column of the table its queries compare for
// equality most often, weighted by calls (ties by name), and a phrase
// saying so; nil when none. A column whose statistics show fewer distinct
// values than hash partitions is passed by: it would leave some empty.
func partEqColumn(pt *partTable) ([]string, string) {
	t := pt.t
	weight := map[string]int64{}
	for _, pq := range pt.queries {
		seen := map[string]bool{}
		for _, c := range pq.conds {
			for _, col := range partEqs(c, t, func(q string) bool { return slices.Contains(pq.names, q) }) {
				seen[col] = true
			}
		}
		tables := aliases(pq.q.Text)
		for _, col := range partEqs(partWhereText(pq.q.Text), t, func(q string) bool {
			return strings.EqualFold(tables[strings.ToLower(q)], t.Name)
		}) {
			seen[col] = true
		}
		for col := range seen {
			weight[col] += max(pq.q.Calls, 1)
		}
	}
	n := float64(partHashCount(t))
	var best string
	for col, w := range weight {
		if d := t.Columns[col].Distinct(t.Rows); d > 0 && d < n {
			continue // too few values to fill the partitions: skew
		}
		if best == "" || w > weight[best] || w == weight[best] && col < best {
			best = col
		}
	}
	if best == "" {
		return nil, ""
	}
	return []string{best}, fmt.Sprintf("the column its queries compare for equality most often, in %d calls", weight[best])
}

// partEqs lists the columns of t that s compares for equality; a
// qualified reference counts when ours says its qualifier names t.
func partEqs(s string, t *Table, ours func(qualifier string) bool) []string {
	var out []string
	for _, m := range rePartEq.FindAllStringSubmatch(s, -1) {
		if t.Columns[m[2]] == nil || (m[1] != "" && !ours(m[1])) {
			continue
		}
		out = append(out, m[2])
	}
	return out
}

// partPrimaryKey is the table's primary key columns, or nil.
func partPrimaryKey(t *Table) []string {
	if i := slices.IndexFunc(t.Indexes, func(ix *Index) bool { return ix.Primary }); i >= 0 {
		return slices.Clone(t.Indexes[i].Columns)
	}
	return nil
}

// partHashCount is the number of hash partitions for t: the next power of
// two of the partitions that keep each one under PartitionRowsExamined
// rows, between minHashPartitions and maxHashPartitions.
func partHashCount(t *Table) int {
	need := math.Ceil(t.Rows / PartitionRowsExamined)
	n := minHashPartitions
	for float64(n) < need && n < maxHashPartitions {
		n *= 2
	}
	return n
}

// partHashScheme is hash partitioning of t by key into partHashCount
// partitions.
func partHashScheme(t *Table, key []string) *partScheme {
	n := partHashCount(t)
	sc := &partScheme{rule: "hash", key: key}
	for i := range n {
		sc.parts = append(sc.parts, partPart{
			suffix: fmt.Sprintf("_p%d", i),
			bound:  fmt.Sprintf("FOR VALUES WITH (MODULUS %d, REMAINDER %d)", n, i),
		})
	}
	sc.describe = fmt.Sprintf("%d hash partitions (the next power of two of %.0f rows / %d rows a partition, between %d and %d)",
		n, t.Rows, PartitionRowsExamined, minHashPartitions, maxHashPartitions)
	eq := key[0]
	sc.touched = func(pq *partQuery) float64 {
		// An equality on the key reads one partition; else all of them.
		ours := func(q string) bool { return slices.Contains(pq.names, q) }
		if slices.ContainsFunc(pq.conds, func(c string) bool { return slices.Contains(partEqs(c, t, ours), eq) }) {
			return 1 / float64(n)
		}
		return 1
	}
	return sc
}

// partStep is one granularity of range partitions.
type partStep struct {
	name  string // monthly, weekly, …
	trunc func(time.Time) time.Time
	next  func(time.Time) time.Time
	// suffix formats a partition's start for its name.
	suffix string
}

// partSteps are the granularities, coarsest first.
func partSteps() []partStep {
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	const daysAWeek = 7
	return []partStep{
		{"yearly", func(t time.Time) time.Time { return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC) },
			func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }, "2006"},
		{"monthly", func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) },
			func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }, "2006_01"},
		{"weekly", func(t time.Time) time.Time {
			// Weeks start on Monday, as date_trunc('week', …) has them.
			return day(t).AddDate(0, 0, -((int(t.Weekday()) + daysAWeek - 1) % daysAWeek))
		}, func(t time.Time) time.Time { return t.AddDate(0, 0, daysAWeek) }, "2006_01_02"},
		{"daily", day, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }, "2006_01_02"},
	}
}

// partBounds are the partition bounds of step from first to last: from
// the start of first's period to the end of last's.
func partBounds(s partStep, first, last time.Time) []time.Time {
	var out []time.Time
	for at := s.trunc(first); !at.After(last); at = s.next(at) {
		out = append(out, at)
	}
	return append(out, s.next(out[len(out)-1]))
}

// partRangeScheme is range partitioning of t by the time column col over
// its histogram: monthly partitions, or weekly, then daily ones when that
// gives fewer than minRangePartitions, or yearly ones past
// maxRangePartitions; plus a DEFAULT partition for rows outside. ok is
// false when the histogram has no two time bounds.
func partRangeScheme(t *Table, col *Column) (*partScheme, bool) {
	first, last, ok := partHistogramSpan(col.Histogram)
	if !ok {
		return nil, false
	}
	steps := partSteps()
	const monthly = 1 // index of the monthly step in partSteps
	i := monthly
	bounds := partBounds(steps[i], first, last)
	if len(bounds)-1 > maxRangePartitions {
		i = 0
		bounds = partBounds(steps[i], first, last)
	}
	for len(bounds)-1 < minRangePartitions && i < len(steps)-1 {
		i++
		bounds = partBounds(steps[i], first, last)
	}
	step := steps[i]
	n := len(bounds) - 1
	sc := &partScheme{rule: "range", key: []string{col.Name}}
	for k := range n {
		sc.parts = append(sc.parts, partPart{
			suffix: "_p" + bounds[k].Format(step.suffix),
			bound: fmt.Sprintf("FOR VALUES FROM (%s) TO (%s)",
				quoteLiteral(partLiteral(bounds[k], col.Type)), quoteLiteral(partLiteral(bounds[k+1], col.Type))),
		})
	}
	sc.parts = append(sc.parts, partPart{suffix: "_default", bound: "DEFAULT"})
	sc.describe = fmt.Sprintf("%d %s partitions from %s to %s (the span of the column's histogram, in UTC), plus a DEFAULT partition for rows outside it",
		n, step.name, bounds[0].Format(time.DateOnly), bounds[n].Format(time.DateOnly))
	sc.touched = func(pq *partQuery) float64 {
		// A range filter returning a share s of the rows spans s·n
		// partitions and, on average, straddles one more boundary.
		if !partFilters(pq, col.Name) || t.Rows <= 0 {
			return 1
		}
		s := min(1, pq.returned/(t.Rows*max(pq.reads, 1)))
		return min(1, s+1/float64(n))
	}
	return sc, true
}

// partLiteral prints a partition bound for a column of type typ.
func partLiteral(at time.Time, typ string) string {
	switch {
	case typ == "date":
		return at.Format(time.DateOnly)
	case typ == "timestamptz" || strings.HasSuffix(typ, "with time zone"):
		return at.Format(time.DateTime) + "+00"
	default:
		return at.Format(time.DateTime)
	}
}

// partHistogramSpan is the first and last bound of a time column's
// histogram that parse; ok is false unless two do and they are in order.
func partHistogramSpan(h []string) (first, last time.Time, ok bool) {
	i, j := 0, len(h)-1
	for ; i < len(h); i++ {
		if first, ok = partParseTime(h[i]); ok {
			break
		}
	}
	for ; j > i; j-- {
		if last, ok = partParseTime(h[j]); ok {
			break
		}
	}
	if i >= j || !ok || last.Before(first) {
		return time.Time{}, time.Time{}, false
	}
	return first.UTC(), last.UTC(), true
}

// partParseTime parses a date or timestamp in PostgreSQL's ISO text
// format ("2026-01-01 00:00:00+00", "2026-01-01 05:30:00.5+05:30",
// "2026-01-01"); a value without a zone is taken as UTC. Infinity and BC
// dates do not parse.
func partParseTime(s string) (time.Time, bool) {
	for _, layout := range []string{
		"2006-01-02 15:04:05-07",
		"2006-01-02 15:04:05-07:00",
		"2006-01-02 15:04:05-07:00:00",
		time.DateTime,
		time.DateOnly,
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// partGain is the estimated improvement, in percent: over the picked
// queries, weighted by total time (calls when no time is known), the
// share of the rows each examines that it would no longer read:
//
//	gain = 1 − min(examined, reads × Rows × touched) / examined
//
// where reads is how many times the query reads the table (scans ×
// loops) and touched the fraction of the table each read covers after
// partitioning (see partScheme.touched). For a sequential scan with a
// range filter that returns a share s of the rows over n partitions, this
// is 1 − s − 1/n; a query that already reads few rows by an index gains
// nothing. Capped at partMaxGain.
func partGain(pt *partTable, sc *partScheme) float64 {
	var sum, weights float64
	for _, pq := range pt.queries {
		w := pq.q.TotalMs
		if w <= 0 {
			w = float64(max(pq.q.Calls, 1))
		}
		weights += w
		if pq.examined <= 0 {
			continue
		}
		after := min(pq.examined, max(pq.reads, 1)*pt.t.Rows*sc.touched(pq))
		sum += w * (1 - after/pq.examined)
	}
	if weights == 0 {
		return 0
	}
	return math.Round(min(partMaxGain, sum/weights)*partPercent*partTenths) / partTenths
}

// partMaxTries bounds the numbered bases partNames tries when the names
// it derives are taken.
const partMaxTries = 100

// Suffixes of the relations the migration creates besides the partitions:
// the partitioned table, and the name the original table is renamed to.
const (
	partSuffixNew = "_partitioned"
	partSuffixOld = "_unpartitioned"
)

// partRelNames names the relations the migration creates or renames: the
// table's schema, and a base to which each relation adds its suffix.
type partRelNames struct{ schema, base string }

// name is the unquoted name of the relation with suffix.
func (n partRelNames) name(suffix string) string { return n.base + suffix }

// qualified is the relation with suffix, schema-qualified and quoted.
func (n partRelNames) qualified(suffix string) string {
	return qualifiedIdent(n.schema, n.name(suffix))
}

// partNames picks the base for the names of sc's relations: the table's
// name, cut at a rune boundary (the base is cut, never a suffix) so that
// base + the longest suffix fits maxIdentBytes. All names share the
// base and their suffixes differ, so they are unique among themselves;
// when one is taken already, the base gets a number ("_2", "_3", …).
func partNames(t *Table, sc *partScheme, taken func(string) bool) partRelNames {
	suffixes := []string{partSuffixNew, partSuffixOld}
	for _, p := range sc.parts {
		suffixes = append(suffixes, p.suffix)
	}
	longest := 0
	for _, s := range suffixes {
		longest = max(longest, len(s))
	}
	n := partRelNames{schema: t.Schema}
	for i := 1; ; i++ {
		mark := ""
		if i > 1 {
			mark = fmt.Sprintf("_%d", i)
		}
		n.base = partCut(t.Name, maxIdentBytes-longest-len(mark)) + mark
		if i == partMaxTries || !slices.ContainsFunc(suffixes, func(s string) bool { return taken(n.name(s)) }) {
			return n
		}
	}
}

// partCut cuts s to at most n bytes, at a rune boundary.
func partCut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// partTaken reports whether a relation name is in use in t's schema, as
// far as cat knows: a table's or an index's (they share a namespace).
func partTaken(cat *Catalog, t *Table) func(string) bool {
	used := map[string]bool{t.Name: true}
	for _, o := range cat.Tables {
		if o.Schema != t.Schema {
			continue
		}
		used[o.Name] = true
		for _, ix := range o.Indexes {
			used[ix.Name] = true
		}
	}
	return func(name string) bool { return used[name] }
}

// partDDL is the DDL to apply: the partitioned table, its partitions, its
// keys rebuilt to include the partition key when the table's do not, and
// a migration plan in comments. Relations are named by names.
func partDDL(t *Table, sc *partScheme, names partRelNames) string {
	newName := names.qualified(partSuffixNew)
	var b strings.Builder
	keys := make([]string, len(sc.key))
	for i, k := range sc.key {
		keys[i] = quoteIdent(k)
	}
	rekey := len(partKeysLacking(t, sc.key)) > 0
	like := "INCLUDING ALL"
	if rekey {
		like = "INCLUDING ALL EXCLUDING INDEXES"
	}
	fmt.Fprintf(&b, "CREATE TABLE %s (LIKE %s %s) PARTITION BY %s (%s);\n",
		newName, qualifiedIdent(t.Schema, t.Name), like, strings.ToUpper(sc.rule), strings.Join(keys, ", "))
	for _, p := range sc.parts {
		fmt.Fprintf(&b, "CREATE TABLE %s PARTITION OF %s %s;\n", names.qualified(p.suffix), newName, p.bound)
	}
	if rekey {
		b.WriteString("-- A partitioned table's primary key and unique indexes must include the partition key, so its indexes are rebuilt here\n")
		b.WriteString("-- from the catalogue (check operator classes and collations against the original definitions):\n")
		ixs := slices.Clone(t.Indexes)
		slices.SortFunc(ixs, func(a, b *Index) int { return strings.Compare(a.Name, b.Name) })
		for _, ix := range ixs {
			b.WriteString(partIndexDDL(newName, ix, sc.key))
		}
	}
	partPlan(&b, t, sc, names)
	return b.String()
}

// partHasKey reports whether index ix has every key column.
func partHasKey(ix *Index, key []string) bool {
	return !slices.ContainsFunc(key, func(k string) bool {
		return !slices.Contains(ix.Columns, k) && !slices.Contains(ix.Columns, quoteIdent(k))
	})
}

// partKeysLacking names the primary key and unique indexes of t that lack
// a partition key column, which PostgreSQL refuses on a partitioned
// table, by name.
func partKeysLacking(t *Table, key []string) []string {
	var out []string
	for _, ix := range t.Indexes {
		if (ix.Primary || ix.Unique) && !partHasKey(ix, key) {
			out = append(out, ix.Name)
		}
	}
	slices.Sort(out)
	return out
}

// partIndexDDL re-creates index ix on table newName (qualified and
// quoted), with the partition key appended to a primary key or unique
// index that lacks it.
func partIndexDDL(newName string, ix *Index, key []string) string {
	var b strings.Builder
	if ix.Def != "" {
		fmt.Fprintf(&b, "-- was: %s\n", ix.Def)
	}
	if ix.Constraint != "" && !ix.Unique && !ix.Primary {
		fmt.Fprintf(&b, "-- recreate constraint %s by hand: its index is not a plain key\n", ix.Constraint)
		return b.String()
	}
	cols := make([]string, 0, len(ix.Columns)+len(key))
	for i, c := range ix.Columns {
		if strings.Contains(c, "(") && !strings.HasPrefix(c, "(") {
			c = "(" + c + ")"
		}
		if dropDesc(ix, i) {
			c += " DESC"
		}
		cols = append(cols, c)
	}
	if ix.Primary || ix.Unique {
		for _, k := range key {
			if !partHasKey(ix, []string{k}) {
				cols = append(cols, quoteIdent(k))
			}
		}
	}
	list := strings.Join(cols, ", ")
	switch {
	case ix.Primary:
		fmt.Fprintf(&b, "ALTER TABLE %s ADD PRIMARY KEY (%s);\n", newName, list)
		return b.String()
	case ix.Unique && ix.Constraint != "":
		fmt.Fprintf(&b, "ALTER TABLE %s ADD UNIQUE (%s);\n", newName, list)
		return b.String()
	}
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	fmt.Fprintf(&b, "CREATE %sINDEX ON %s USING %s (%s)", unique, newName, ix.Method, list)
	if len(ix.Include) > 0 {
		fmt.Fprintf(&b, " INCLUDE (%s)", strings.Join(ix.Include, ", "))
	}
	if ix.Predicate != "" {
		fmt.Fprintf(&b, " WHERE %s", ix.Predicate)
	}
	b.WriteString(";\n")
	return b.String()
}

// partPlan writes the migration plan, as SQL comments.
func partPlan(b *strings.Builder, t *Table, sc *partScheme, names partRelNames) {
	old, cur := qualifiedIdent(t.Schema, t.Name), names.qualified(partSuffixNew)
	tmp := names.qualified(partSuffixOld)
	batch := quoteIdent(sc.key[0])
	if pk := partPrimaryKey(t); sc.rule == "hash" && len(pk) > 0 {
		batch = quoteIdent(pk[0])
	}
	fmt.Fprintf(b, "-- Migration plan:\n")
	fmt.Fprintf(b, "-- 1. Create the partitioned table and its partitions: the statements above (quick: %s starts empty).\n", cur)
	fmt.Fprintf(b, "-- 2. Copy the rows in batches by %s (INSERT INTO %s SELECT * FROM %s WHERE %s >= … AND %s < …;),\n", batch, cur, old, batch, batch)
	fmt.Fprintf(b, "--    or dual-write from the application and backfill behind it, until the copy has caught up.\n")
	fmt.Fprintf(b, "-- 3. Swap the names in one transaction: BEGIN; LOCK TABLE %s IN EXCLUSIVE MODE; copy the last rows;\n", old)
	// RENAME TO takes a bare name: the table stays in its schema.
	fmt.Fprintf(b, "--    ALTER TABLE %s RENAME TO %s; ALTER TABLE %s RENAME TO %s; COMMIT;\n",
		old, quoteIdent(names.name(partSuffixOld)), cur, quoteIdent(t.Name))
	fmt.Fprintf(b, "--    then move identity sequences on (setval), and re-point foreign keys, views and grants.\n")
	fmt.Fprintf(b, "-- 4. Keep %s until the application has run on the new table, then drop it.\n", tmp)
	if sc.rule == "range" {
		fmt.Fprintf(b, "-- 5. Create each next partition ahead of time (a scheduled job or pg_partman): rows past the last bound land in the DEFAULT partition.\n")
	}
}
