package advisor

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// minLeadingDistinct is the fewest distinct values a full (not partial)
// index's leading column may have: a btree led by a column of two or three
// values reads a large share of the table whichever value is asked for, and
// a partial index serves that case better.
const minLeadingDistinct = 10

// coveringMaxInclude is how many non-key columns a covering candidate may
// carry in INCLUDE; past that the index approaches a copy of the table.
const coveringMaxInclude = 3

// candidate is a hypothetical index: key columns (with direction), INCLUDE
// columns and a partial-index predicate.
type candidate struct {
	table   *Table
	cols    []string
	desc    []bool
	include []string
	where   string
	// from are the queries whose plans suggested it.
	from map[int64]bool
}

// key identifies a candidate.
func (c *candidate) key() string {
	return c.table.Name + "|" + c.keyList() + "|" + strings.Join(c.include, ",") + "|" + c.where
}

func (c *candidate) keyList() string {
	parts := make([]string, len(c.cols))
	for i, col := range c.cols {
		parts[i] = quoteIdent(col)
		if c.desc[i] {
			parts[i] += " DESC"
		}
	}
	return strings.Join(parts, ", ")
}

// ddl is the CREATE INDEX statement; name "" leaves the name to
// PostgreSQL (HypoPG makes its own).
func (c *candidate) ddl(name string, concurrently bool) string {
	var b strings.Builder
	b.WriteString("CREATE INDEX ")
	if concurrently {
		b.WriteString("CONCURRENTLY ")
	}
	if name != "" {
		b.WriteString(quoteIdent(name) + " ")
	}
	b.WriteString("ON " + qualifiedIdent(c.table.Schema, c.table.Name) + " (" + c.keyList() + ")")
	if len(c.include) > 0 {
		inc := make([]string, len(c.include))
		for i, col := range c.include {
			inc[i] = quoteIdent(col)
		}
		b.WriteString(" INCLUDE (" + strings.Join(inc, ", ") + ")")
	}
	if c.where != "" {
		b.WriteString(" WHERE " + c.where)
	}
	return b.String()
}

// maxIdentBytes is PostgreSQL's identifier limit (NAMEDATALEN − 1).
const maxIdentBytes = 63

// name is the index name the advice proposes, before uniqueIndexNames
// makes it unique: table, key columns, "incl" and "part" for the covering
// and partial forms, cut to fit PostgreSQL's limit with room for a suffix.
func (c *candidate) name() string {
	n := c.table.Name + "_" + strings.Join(c.cols, "_")
	if len(c.include) > 0 {
		n += "_incl"
	}
	if c.where != "" {
		n += "_part"
	}
	const room = len("_idx") + len("_99")
	if len(n) > maxIdentBytes-room {
		n = strings.ToValidUTF8(n[:maxIdentBytes-room], "")
	}
	return n + "_idx"
}

// scanUse is what one query needs of one table it scans: the columns it
// compares with constants or joins on (eq), ranges (rng), sorts by, the
// null tests that could become a partial index's predicate, and the
// columns it reads.
type scanUse struct {
	table *Table
	eq    []string
	rng   []string
	alt   []string // compared under an OR: single-column candidates only
	sort  []string
	sortD []bool
	nulls []string // "col IS NULL" / "col IS NOT NULL"
	// consts are the columns the service's text compares with constants
	// (from its samples), with the constants.
	consts map[string]string
	reads  []string
}

var (
	// reQualCmp matches a comparison in a deparsed plan qualifier,
	// alias-qualified as EXPLAIN VERBOSE prints it: (o.customer_id = …).
	reQualCmp = regexp.MustCompile(`([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*) (=|<|>|<=|>=) `)
	// reQualNull matches a null test: (o.shipped_at IS NULL).
	reQualNull = regexp.MustCompile(`([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*) IS (NOT )?NULL`)
	// reSortKey matches a plain sort key: o.created_at DESC.
	reSortKey = regexp.MustCompile(`^([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)( DESC)?(?: NULLS (?:FIRST|LAST))?$`)
	// reOutCol matches a plain output column: o.amount.
	reOutCol = regexp.MustCompile(`^([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)$`)
)

// scanUses reads a plan and returns, per alias of a scanned table, what
// the query needs of it.
func scanUses(p *Plan, cat *Catalog) map[string]*scanUse {
	uses := map[string]*scanUse{}
	p.Root.Walk(func(n, _ *Node) {
		if n.Relation == "" {
			return
		}
		t := cat.Table(n.Relation)
		if t == nil {
			return
		}
		alias := n.Alias
		if alias == "" {
			alias = n.Relation
		}
		u := uses[alias]
		if u == nil {
			u = &scanUse{table: t}
			uses[alias] = u
		}
		for _, o := range n.Output {
			// A scan's output names its own columns, alias-qualified when
			// the query reads several tables.
			if m := reOutCol.FindStringSubmatch(o); m != nil && m[1] == alias {
				u.reads = appendNew(u.reads, m[2])
			} else if t.Columns[o] != nil {
				u.reads = appendNew(u.reads, o)
			}
		}
	})
	p.Root.Walk(func(n, _ *Node) {
		for _, cond := range []string{n.Filter, n.IndexCond, n.RecheckCond, n.JoinFilter, n.HashCond, n.MergeCond} {
			addQual(uses, cond)
		}
		if n.Type == "Sort" || n.Type == "Incremental Sort" {
			addSort(uses, n.SortKey)
		}
	})
	return uses
}

func addQual(uses map[string]*scanUse, cond string) {
	for _, c := range conjuncts(cond) {
		addConjunct(uses, c)
	}
}

// addConjunct records one conjunct of a qualifier. Comparisons under an
// OR are alternatives: each may use an index of its own (a BitmapOr), but
// they must not become one multi-column key.
func addConjunct(uses map[string]*scanUse, cond string) {
	disjunct := strings.Contains(cond, " OR ")
	for _, m := range reQualCmp.FindAllStringSubmatch(cond, -1) {
		u := uses[m[1]]
		if u == nil || u.table.Columns[m[2]] == nil {
			continue
		}
		switch {
		case disjunct:
			u.alt = appendNew(u.alt, m[2])
		case m[3] == "=":
			u.eq = appendNew(u.eq, m[2])
		default:
			u.rng = appendNew(u.rng, m[2])
		}
		u.reads = appendNew(u.reads, m[2])
	}
	for _, m := range reQualNull.FindAllStringSubmatch(cond, -1) {
		u := uses[m[1]]
		if u == nil || u.table.Columns[m[2]] == nil {
			continue
		}
		if !disjunct {
			u.nulls = appendNew(u.nulls, quoteIdent(m[2])+" IS "+m[3]+"NULL")
		}
		u.reads = appendNew(u.reads, m[2])
	}
}

// conjuncts splits a deparsed qualifier, "((a = 1) AND ((b = 2) OR (c =
// 3)))", at its top-level ANDs: "(a = 1)", "((b = 2) OR (c = 3))". Quoted
// literals are skipped over.
func conjuncts(cond string) []string {
	cond = strings.TrimSpace(cond)
	for len(cond) >= 2 && cond[0] == '(' && closing(cond, 0) == len(cond)-1 {
		cond = strings.TrimSpace(cond[1 : len(cond)-1])
	}
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(cond); i++ {
		switch cond[i] {
		case '\'':
			i = skipQuoted(cond, i)
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 && strings.HasPrefix(cond[i:], " AND ") {
				out = append(out, cond[start:i])
				start = i + len(" AND ")
				i += len(" AND ") - 1
			}
		}
	}
	return append(out, cond[start:])
}

// closing returns the index of the parenthesis closing the one at open,
// or -1.
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\'':
			i = skipQuoted(s, i)
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// skipQuoted returns the index of the quote closing the literal that
// opens at i (” inside is an escaped quote), or the last index.
func skipQuoted(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\'' {
			if j+1 < len(s) && s[j+1] == '\'' {
				j++
				continue
			}
			return j
		}
	}
	return len(s) - 1
}

// addSort records a sort whose keys are all plain columns of one alias.
func addSort(uses map[string]*scanUse, keys []string) {
	var alias string
	var cols []string
	var desc []bool
	for _, k := range keys {
		m := reSortKey.FindStringSubmatch(k)
		if m == nil || (alias != "" && m[1] != alias) {
			return
		}
		alias = m[1]
		cols = append(cols, m[2])
		desc = append(desc, m[3] != "")
	}
	if u := uses[alias]; u != nil && len(cols) > 0 && u.sort == nil {
		u.sort, u.sortD = cols, desc
	}
}

// appendNew appends v to s unless s holds it already.
func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// indexable reports whether a btree can index the column's type.
func indexable(c *Column) bool {
	if c == nil {
		return false
	}
	switch {
	case strings.HasSuffix(c.Type, "[]"), c.Type == "json", c.Type == "jsonb", c.Type == "tsvector", c.Type == "xml":
		return false
	}
	return true
}

// candidatesFor derives the candidate indexes one scan suggests: each
// compared column alone; the equality columns (most selective first), then
// a range or sort column; and each of those as a partial index when the
// query tests a column for NULL. Covering forms are tried later, on the
// indexes chosen (upgrade).
func candidatesFor(u *scanUse) []*candidate {
	t := u.table
	eq := filterIndexable(t, u.eq)
	sort.SliceStable(eq, func(i, j int) bool {
		return t.Columns[eq[i]].Distinct(t.Rows) > t.Columns[eq[j]].Distinct(t.Rows)
	})
	rng := filterIndexable(t, u.rng)
	type keyset struct {
		cols []string
		desc []bool
	}
	asc := func(cols ...string) keyset { return keyset{cols, make([]bool, len(cols))} }
	var sets []keyset
	for _, c := range eq {
		sets = append(sets, asc(c))
	}
	for _, c := range filterIndexable(t, u.alt) {
		if !slices.Contains(eq, c) {
			sets = append(sets, asc(c))
		}
	}
	for _, c := range rng {
		if !slices.Contains(eq, c) {
			sets = append(sets, asc(c), asc(append(append([]string{}, eq...), c)...))
		}
	}
	if len(eq) > 1 {
		sets = append(sets, asc(eq...))
	}
	if len(u.sort) > 0 && len(filterIndexable(t, u.sort)) == len(u.sort) {
		var cols []string
		var desc []bool
		for _, c := range eq {
			if !slices.Contains(u.sort, c) {
				cols, desc = append(cols, c), append(desc, false)
			}
		}
		sets = append(sets, keyset{append(cols, u.sort...), append(desc, u.sortD...)})
	}
	var out []*candidate
	for _, ks := range sets {
		if c := t.Columns[ks.cols[0]]; !c.HasStats || c.Distinct(t.Rows) >= minLeadingDistinct {
			out = append(out, &candidate{table: t, cols: ks.cols, desc: ks.desc})
		}
		for _, n := range u.nulls {
			out = append(out, &candidate{table: t, cols: ks.cols, desc: ks.desc, where: n})
		}
		out = append(out, constPartials(u, ks.cols, ks.desc)...)
	}
	return out
}

// constPartials are the partial forms of a key for the constants the
// service's own text compares columns with (known from its samples):
// status = 'pending' becomes the index's WHERE, and leaves the key.
func constPartials(u *scanUse, cols []string, desc []bool) []*candidate {
	var out []*candidate
	for _, c := range slices.Sorted(maps.Keys(u.consts)) {
		var kc []string
		var kd []bool
		for i, col := range cols {
			if col != c {
				kc, kd = append(kc, col), append(kd, desc[i])
			}
		}
		if len(kc) > 0 {
			out = append(out, &candidate{table: u.table, cols: kc, desc: kd, where: quoteIdent(c) + " = " + quoteLiteral(u.consts[c])})
		}
	}
	return out
}

func filterIndexable(t *Table, cols []string) []string {
	var out []string
	for _, c := range cols {
		if indexable(t.Columns[c]) {
			out = append(out, c)
		}
	}
	return out
}

// coveredBy returns an existing index that already serves c: a valid
// btree with the same predicate whose key starts with c's key (in the
// same directions, or all reversed: a btree reads both ways) and that
// holds c's INCLUDE columns; or nil.
func coveredBy(c *candidate) *Index {
	for _, ix := range c.table.Indexes {
		if ix.Method != "btree" || !ix.Valid || !samePredicate(ix.Predicate, c.where) || len(ix.Columns) < len(c.cols) {
			continue
		}
		if !prefixMatch(ix, c) {
			continue
		}
		all := append(append([]string{}, ix.Columns...), ix.Include...)
		ok := true
		for _, inc := range c.include {
			if !slices.Contains(all, inc) && !slices.Contains(all, quoteIdent(inc)) {
				ok = false
			}
		}
		if ok {
			return ix
		}
	}
	return nil
}

func prefixMatch(ix *Index, c *candidate) bool {
	same, reversed := true, true
	for i, col := range c.cols {
		if ix.Columns[i] != col && ix.Columns[i] != quoteIdent(col) {
			return false
		}
		d := i < len(ix.Desc) && ix.Desc[i]
		if d != c.desc[i] {
			same = false
		} else {
			reversed = false
		}
	}
	return same || reversed
}

// samePredicate compares an index predicate as pg_get_expr prints it with
// a candidate's, ignoring quoting, parentheses and casts of literals
// ("(status = 'pending'::text)" and "\"status\" = 'pending'" are the same).
func samePredicate(a, b string) bool {
	norm := func(s string) string {
		s = reCast.ReplaceAllString(strings.ToLower(s), "")
		return strings.NewReplacer(`"`, "", "(", "", ")", "", " ", "").Replace(s)
	}
	return norm(a) == norm(b)
}

// reCast matches a cast as pg_get_expr prints it after a literal.
var reCast = regexp.MustCompile(`::[a-z_]+(\[\])?`)
