package advisor

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// How index advice is chosen for the whole workload:
//
//  1. Candidates come from every plan (candidatesFor); a candidate an
//     existing index already serves is skipped and listed as such.
//  2. Each candidate is created alone with HypoPG and every explained
//     query on its table is planned again. Its benefit is the time it
//     would save: Σ total_ms × (1 − cost with / cost without) over the
//     queries whose new plan uses it (time is taken as proportional to
//     the planner's cost).
//  3. Its write cost is one more index entry per row the workload writes
//     to the table, each priced at the workload's own measured cost of a
//     row write divided by the entries it already makes (heap + indexes).
//  4. Greedy, best net benefit first, each candidate is re-planned with
//     the ones already chosen in place; it is kept only when its marginal
//     saving exceeds its write cost and cuts the cost of the queries it
//     helps by at least MinImprovementPct. So a second index that adds
//     nothing over the first is not advised.

// hypo is a hypothetical index made by HypoPG.
type hypo struct {
	oid  int64
	size int64
}

func (s *session) hypoCreate(ctx context.Context, c *candidate) (hypo, error) {
	return s.hypoCreateDDL(ctx, c.ddl("", false))
}

// hypoCreateDDL makes the index a CREATE INDEX statement describes (any
// that HypoPG accepts: expression keys included) and reads its size.
func (s *session) hypoCreateDDL(ctx context.Context, ddl string) (hypo, error) {
	var h hypo
	if err := s.conn.QueryRowContext(ctx, "SELECT indexrelid FROM "+s.hypopg+".hypopg_create_index($1)", ddl).Scan(&h.oid); err != nil {
		return h, fmt.Errorf("advisor: hypothetical index %s: %w", ddl, err)
	}
	if err := s.conn.QueryRowContext(ctx, "SELECT "+s.hypopg+".hypopg_relation_size($1)", h.oid).Scan(&h.size); err != nil {
		return h, fmt.Errorf("advisor: hypothetical index size: %w", err)
	}
	return h, nil
}

func (s *session) hypoDrop(ctx context.Context, h hypo) error {
	_, err := s.conn.ExecContext(ctx, "SELECT "+s.hypopg+".hypopg_drop_index($1)", h.oid)
	return err
}

// uses reports whether the plan reads the hypothetical index h.
func uses(p *Plan, h hypo) bool {
	prefix := fmt.Sprintf("<%d>", h.oid)
	found := false
	p.Root.Walk(func(n, _ *Node) {
		if strings.HasPrefix(n.IndexName, prefix) {
			found = true
		}
	})
	return found
}

// evaluated is a candidate after HypoPG: the cost of each query whose plan
// used it, its size, benefit and write cost.
type evaluated struct {
	*candidate
	cost      map[*Query]float64
	size      int64
	benefit   float64
	writeCost float64
	writeHow  string
}

// adviseIndexes proposes the indexes to create (see above).
func (s *session) adviseIndexes(ctx context.Context) ([]Recommendation, error) {
	byTable := map[*Table][]*Query{}
	reads := map[*Table]map[*Query][]string{}
	cands := map[string]*candidate{}
	var order []string
	for _, q := range s.queries() {
		uses := scanUses(q.plan, s.cat)
		for _, alias := range slices.Sorted(maps.Keys(uses)) { // a stable order: the same advice every run
			u := uses[alias]
			for col, v := range q.consts {
				if u.table.Columns[col] != nil {
					if u.consts == nil {
						u.consts = map[string]string{}
					}
					u.consts[col] = v
				}
			}
			byTable[u.table] = appendNew(byTable[u.table], q)
			if reads[u.table] == nil {
				reads[u.table] = map[*Query][]string{}
			}
			for _, c := range u.reads {
				reads[u.table][q] = appendNew(reads[u.table][q], c)
			}
			for _, c := range candidatesFor(u) {
				k := c.key()
				if cands[k] == nil {
					c.from = map[int64]bool{}
					cands[k] = c
					order = append(order, k)
				}
				cands[k].from[q.ID] = true
			}
		}
	}
	writes := s.writeRows()
	var evs []*evaluated
	for _, k := range order {
		c := cands[k]
		if ix := coveredBy(c); ix != nil {
			s.report.Skipped = append(s.report.Skipped, fmt.Sprintf("%s (%s)%s: an existing index serves it: %s", c.table.Name, c.keyList(), whereSuffix(c), ix.Name))
			continue
		}
		ev, err := s.evaluate(ctx, c, byTable[c.table])
		if err != nil {
			return nil, err
		}
		if ev.benefit <= 0 {
			continue
		}
		ev.writeCost, ev.writeHow = writes.cost(c.table)
		evs = append(evs, ev)
	}
	sort.SliceStable(evs, func(i, j int) bool {
		return evs[i].benefit-evs[i].writeCost > evs[j].benefit-evs[j].writeCost
	})
	return s.choose(ctx, evs, reads)
}

// whereSuffix spells a candidate's INCLUDE and WHERE for messages.
func whereSuffix(c *candidate) string {
	s := ""
	if len(c.include) > 0 {
		s += " INCLUDE (" + strings.Join(c.include, ", ") + ")"
	}
	if c.where != "" {
		s += " WHERE " + c.where
	}
	return s
}

// evaluate plans every query on the candidate's table with the candidate
// alone in place.
func (s *session) evaluate(ctx context.Context, c *candidate, qs []*Query) (*evaluated, error) {
	h, err := s.hypoCreate(ctx, c)
	if err != nil {
		return nil, err
	}
	defer s.hypoDrop(ctx, h) //nolint:errcheck // hypopg_reset at the end clears any left
	ev := &evaluated{candidate: c, cost: map[*Query]float64{}, size: h.size}
	for _, q := range qs {
		p, err := s.explain(ctx, q, false)
		if err != nil {
			continue // planned before; a failure now only loses this candidate's use
		}
		if uses(p, h) && p.Cost() < q.Cost {
			ev.cost[q] = p.Cost()
			ev.benefit += q.TotalMs * (1 - p.Cost()/q.Cost)
		}
	}
	return ev, nil
}

// byID returns the queries sorted by queryid, so that sums over them (and
// so the advice) do not depend on map order.
func byID(qs iter.Seq[*Query]) []*Query {
	return slices.SortedFunc(qs, func(a, b *Query) int { return cmp.Compare(a.ID, b.ID) })
}

// gain is what one hypothetical index does to a set of queries, against
// their current costs.
type gain struct {
	h               hypo
	saved, helpedMs float64
	before, after   float64
	costs           map[*Query]float64 // with the index
	base            map[*Query]float64 // before it
	ids             []int64
}

func (g gain) pct() float64 {
	if g.helpedMs == 0 {
		return 0
	}
	return 100 * g.saved / g.helpedMs
}

// try creates c with HypoPG and plans qs again; the index stays in place.
func (s *session) try(ctx context.Context, c *candidate, qs []*Query, current map[*Query]float64) (gain, error) {
	h, err := s.hypoCreate(ctx, c)
	if err != nil {
		return gain{}, err
	}
	g := gain{h: h, costs: map[*Query]float64{}, base: map[*Query]float64{}}
	for _, q := range qs {
		p, err := s.explain(ctx, q, false)
		if err != nil || !uses(p, h) || p.Cost() >= current[q] {
			continue
		}
		g.saved += q.TotalMs * (1 - p.Cost()/current[q])
		g.helpedMs += q.TotalMs
		g.before += current[q]
		g.after += p.Cost()
		g.costs[q] = p.Cost()
		g.base[q] = current[q]
		g.ids = append(g.ids, q.ID)
	}
	sort.Slice(g.ids, func(i, j int) bool { return g.ids[i] < g.ids[j] })
	return g, nil
}

// choose runs the greedy selection over evaluated candidates, best first,
// then tries to make each chosen index covering (see upgrade).
func (s *session) choose(ctx context.Context, evs []*evaluated, reads map[*Table]map[*Query][]string) ([]Recommendation, error) {
	current := map[*Query]float64{}
	for _, ev := range evs {
		for q := range ev.cost {
			current[q] = q.Cost
		}
	}
	var out []Recommendation
	for _, ev := range evs {
		g, err := s.try(ctx, ev.candidate, byID(maps.Keys(ev.cost)), current)
		if err != nil {
			return nil, err
		}
		if g.saved <= ev.writeCost || g.pct() < s.cfg.MinImprovementPct {
			s.report.Skipped = append(s.report.Skipped, fmt.Sprintf("%s (%s)%s: %s", ev.table.Name, ev.keyList(), whereSuffix(ev.candidate), skipReason(g.saved, ev.writeCost, g.pct(), s.cfg.MinImprovementPct)))
			if err := s.hypoDrop(ctx, g.h); err != nil {
				return nil, fmt.Errorf("advisor: drop hypothetical index: %w", err)
			}
			continue
		}
		for q, c := range g.costs {
			current[q] = c
		}
		up, err := s.upgrade(ctx, ev, g, reads[ev.table], current)
		if err != nil {
			return nil, err
		}
		rec := s.indexRecommendation(ev, up)
		rec.seq = len(out)
		out = append(out, rec)
	}
	return out, nil
}

// upgrade tries the chosen index ev with INCLUDE columns: those its helped
// queries read beyond its key, when few enough, so they can be answered by
// index-only scans. The covering form is kept when it cuts their cost by
// MinImprovementPct more; else the plain index is put back.
func (s *session) upgrade(ctx context.Context, ev *evaluated, g gain, reads map[*Query][]string, current map[*Query]float64) (gain, error) {
	// A query that reads more than coveringMaxInclude other columns (a
	// scan's output may list every column: PostgreSQL's physical target
	// list) cannot be made index-only and does not vote. Columns the
	// partial predicate fixes need not be stored: PostgreSQL reads them
	// from the predicate.
	var inc []string
	helped := byID(maps.Keys(g.costs))
	for _, q := range helped {
		var extra []string
		for _, c := range reads[q] {
			if !slices.Contains(ev.cols, c) && !strings.Contains(ev.where, quoteIdent(c)) {
				extra = append(extra, c)
			}
		}
		if len(extra) <= coveringMaxInclude {
			for _, c := range extra {
				inc = appendNew(inc, c)
			}
		}
	}
	if len(inc) == 0 || len(inc) > coveringMaxInclude || len(filterIndexable(ev.table, inc)) != len(inc) {
		return g, nil
	}
	sort.Strings(inc)
	cov := &candidate{table: ev.table, cols: ev.cols, desc: ev.desc, where: ev.where, include: inc, from: ev.from}
	if ix := coveredBy(cov); ix != nil {
		return g, nil
	}
	if err := s.hypoDrop(ctx, g.h); err != nil {
		return g, fmt.Errorf("advisor: drop hypothetical index: %w", err)
	}
	g2, err := s.try(ctx, cov, helped, current)
	if err != nil {
		return g, err
	}
	if g2.pct() >= s.cfg.MinImprovementPct && g2.saved > 0 {
		for q, c := range g2.costs {
			current[q] = c
		}
		// Against the costs before the plain index: the two steps' savings
		// do not add, each being relative to its own starting cost.
		ev.candidate = cov
		g.h = g2.h
		g.saved, g.after = 0, 0
		for q := range g.costs {
			g.costs[q] = current[q]
			g.after += current[q]
			g.saved += q.TotalMs * (1 - current[q]/g.base[q])
		}
		return g, nil
	}
	if err := s.hypoDrop(ctx, g2.h); err != nil {
		return g, fmt.Errorf("advisor: drop hypothetical index: %w", err)
	}
	h, err := s.hypoCreate(ctx, ev.candidate)
	g.h = h
	return g, err
}

func skipReason(saved, writeCost, pct, minPct float64) string {
	switch {
	case saved <= 0:
		return "no further gain once the indexes chosen before it exist"
	case saved <= writeCost:
		return fmt.Sprintf("would save %.0f ms of reads but cost %.0f ms of writes", saved, writeCost)
	default:
		return fmt.Sprintf("cuts the helped queries' cost by %.1f %%, under the %.0f %% bar", pct, minPct)
	}
}

// Effort of building an index, by the heap it reads: under effortLowBytes a
// build takes seconds; past effortHighBytes, long enough to schedule.
const (
	effortLowBytes  = 1 << 30  // 1 GiB
	effortHighBytes = 50 << 30 // 50 GiB
)

func (s *session) indexRecommendation(ev *evaluated, g gain) Recommendation {
	saved, pct, ids := g.saved, g.pct(), g.ids
	effort := Low
	switch {
	case ev.table.Bytes > effortHighBytes:
		effort = High
	case ev.table.Bytes > effortLowBytes:
		effort = Medium
	}
	risk := Low
	switch {
	case ev.writeCost > saved/2:
		risk = High
	case ev.writeCost > saved/10:
		risk = Medium
	}
	shape := "single-column"
	switch {
	case ev.where != "":
		shape = "partial"
	case len(ev.include) > 0:
		shape = "covering"
	case len(ev.cols) > 1:
		shape = "multi-column"
	}
	reason := fmt.Sprintf("%s index: HypoPG planner cost of %d quer%s %.0f → %.0f (−%.1f %% time-weighted); ~%.0f ms saved against %.0f ms of extra writes (%s)",
		shape, len(ids), plural(len(ids), "y", "ies"), g.before, g.after, pct, saved, ev.writeCost, ev.writeHow)
	return Recommendation{
		Kind:                    KindIndex,
		Table:                   ev.table.Name,
		Columns:                 colsWithDir(ev.candidate),
		Include:                 ev.include,
		Where:                   ev.where,
		SQL:                     ev.ddl(s.uniqueName(ev.name()), true) + ";",
		EstimatedImprovementPct: round1(pct),
		Effort:                  effort,
		Risk:                    risk,
		Queries:                 ids,
		Reason:                  reason,
		SizeBytes:               g.h.size,
		SavedMs:                 round1(saved),
		WriteCostMs:             round1(ev.writeCost),
		Rule:                    shape,
		hypo:                    ev.candidate,
	}
}

// uniqueName returns base, or base with a number before its "_idx", so it
// names no existing index and no index advised before in this run.
func (s *session) uniqueName(base string) string {
	if s.names == nil {
		s.names = map[string]bool{}
		for _, t := range s.cat.Tables {
			for _, ix := range t.Indexes {
				s.names[ix.Name] = true
			}
		}
	}
	name := base
	for i := 2; s.names[name]; i++ {
		name = fmt.Sprintf("%s_%d_idx", strings.TrimSuffix(base, "_idx"), i)
	}
	s.names[name] = true
	return name
}

func colsWithDir(c *candidate) []string {
	out := make([]string, len(c.cols))
	for i, col := range c.cols {
		out[i] = col
		if c.desc[i] {
			out[i] += " DESC"
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// writeLoad is the workload's writes per table: rows written and the time
// spent writing them.
type writeLoad map[string]struct{ rows, ms float64 }

var reWriteTable = regexp.MustCompile(`(?i)^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?` + ident)

// writeRows sums the workload's INSERT, UPDATE and DELETE statements by
// table.
func (s *session) writeRows() writeLoad {
	w := writeLoad{}
	for _, q := range s.all {
		if q.kind != "insert" && q.kind != "update" && q.kind != "delete" {
			continue
		}
		m := reWriteTable.FindStringSubmatch(q.Text)
		if m == nil {
			continue
		}
		name := m[1]
		if _, n, ok := strings.Cut(name, "."); ok {
			name = n
		}
		e := w[name]
		e.rows += float64(q.Rows)
		e.ms += q.TotalMs
		w[name] = e
	}
	return w
}

// cost is the estimated extra write time of one more index on t over the
// statistics window, and how it was priced. A row write makes one entry
// in the heap and one per index; the new index adds one entry per row,
// priced at the workload's measured time per entry. Only the workload's
// own writes count: the table's counters (pg_stat_user_tables) cover
// another window, often with a bulk load in it, and would weigh months of
// writes against the reads since pg_stat_statements was last reset.
func (w writeLoad) cost(t *Table) (ms float64, how string) {
	if e := w[t.Name]; e.rows > 0 {
		perEntry := e.ms / e.rows / float64(len(t.Indexes)+1)
		return e.rows * perEntry, fmt.Sprintf("%.0f rows written by the workload at a measured %.3f ms an index entry", e.rows, perEntry)
	}
	return 0, "no writes to the table in the workload"
}
