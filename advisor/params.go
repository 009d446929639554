package advisor

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-dev/strata/internal/sqltext"
)

// pg_stat_statements stores a query with its constants replaced by $1, $2,
// …, and the application's own parameters look the same. Such a statement
// cannot be planned as it stands (dexter #23, #45). The advisor finds, for
// each parameter, the column it is compared with, and takes a value from
// that column's statistics in pg_stats:
//
//   - equality, IN and = ANY: a most common value of middling frequency
//     (or the median histogram bound of a column without common values);
//   - > and >=: the 90th-percentile histogram bound (the top tenth);
//   - < and <=: the 10th-percentile bound;
//   - BETWEEN: the 45th and 55th percentile bounds;
//   - LIMIT and OFFSET: assumedLimit and assumedOffset, said so in the
//     report.
//
// A statement with a parameter it cannot place is planned generically
// instead (PREPARE, then EXPLAIN EXECUTE with plan_cache_mode =
// force_generic_plan), which is what PostgreSQL itself runs after five
// executions of a prepared statement; the report says which it used.

// assumedLimit is the LIMIT used for a LIMIT $n (a page of results).
const assumedLimit = 20

// assumedOffset is the OFFSET used for an OFFSET $n (the sixth page).
const assumedOffset = 100

// arraySample is how many values an = ANY($n) array parameter gets.
const arraySample = 5

const ident = `((?:[a-zA-Z_][a-zA-Z0-9_]*\.)?[a-zA-Z_][a-zA-Z0-9_]*)`

var (
	reColOpParam = regexp.MustCompile(ident + `\s*(=|<>|!=|<=|>=|<|>)\s*\$(\d+)`)
	reParamOpCol = regexp.MustCompile(`\$(\d+)\s*(=|<>|!=|<=|>=|<|>)\s*` + ident)
	reAny        = regexp.MustCompile(`(?i)` + ident + `\s*(?:=|<>)\s*(?:ANY|ALL)\s*\(\s*\$(\d+)\s*\)`)
	reIn         = regexp.MustCompile(`(?i)` + ident + `\s+(?:NOT\s+)?IN\s*\(([^()]*)\)`)
	reBetween    = regexp.MustCompile(`(?i)` + ident + `\s+(?:NOT\s+)?BETWEEN\s+(?:SYMMETRIC\s+)?\$(\d+)\s+AND\s+\$(\d+)`)
	reLike       = regexp.MustCompile(`(?i)` + ident + `\s+(?:NOT\s+)?I?LIKE\s+\$(\d+)`)
	reLimit      = regexp.MustCompile(`(?i)\bLIMIT\s+\$(\d+)`)
	reOffset     = regexp.MustCompile(`(?i)\bOFFSET\s+\$(\d+)`)
	reParam      = regexp.MustCompile(`\$(\d+)`)
	reFromTable  = regexp.MustCompile(`(?i)\b(?:FROM|JOIN|UPDATE|INTO)\s+` + ident + `(?:\s+(?:AS\s+)?([a-zA-Z_][a-zA-Z0-9_]*))?`)
)

// use is how a parameter is used.
type use struct {
	col  string // the column, possibly alias-qualified ("" for LIMIT/OFFSET)
	kind string // eq, gt, lt, between-low, between-high, array, like, limit, offset
}

// paramUses finds, for each parameter number, how the text uses it.
func paramUses(text string) map[int]use {
	uses := map[int]use{}
	set := func(n string, u use) {
		i, err := strconv.Atoi(n)
		if err != nil {
			return
		}
		if _, ok := uses[i]; !ok {
			uses[i] = u
		}
	}
	for _, m := range reBetween.FindAllStringSubmatch(text, -1) {
		set(m[2], use{m[1], "between-low"})
		set(m[3], use{m[1], "between-high"})
	}
	for _, m := range reAny.FindAllStringSubmatch(text, -1) {
		set(m[2], use{m[1], "array"})
	}
	for _, m := range reIn.FindAllStringSubmatch(text, -1) {
		for _, p := range reParam.FindAllStringSubmatch(m[2], -1) {
			set(p[1], use{m[1], "eq"})
		}
	}
	for _, m := range reLike.FindAllStringSubmatch(text, -1) {
		set(m[2], use{m[1], "like"})
	}
	for _, m := range reLimit.FindAllStringSubmatch(text, -1) {
		set(m[1], use{"", "limit"})
	}
	for _, m := range reOffset.FindAllStringSubmatch(text, -1) {
		set(m[1], use{"", "offset"})
	}
	for _, m := range reColOpParam.FindAllStringSubmatch(text, -1) {
		set(m[3], use{m[1], opKind(m[2], false)})
	}
	for _, m := range reParamOpCol.FindAllStringSubmatch(text, -1) {
		set(m[1], use{m[3], opKind(m[2], true)})
	}
	pairRanges(uses)
	return uses
}

// pairRanges turns a lower and an upper bound on the same column (col >= $1
// AND col < $2) into a BETWEEN, so the two values make a window rather
// than, each taken alone, an empty range.
func pairRanges(uses map[int]use) {
	low := map[string]int{}
	for _, n := range slices.Sorted(maps.Keys(uses)) {
		if u := uses[n]; u.kind == "gt" {
			if _, ok := low[u.col]; !ok {
				low[u.col] = n
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(uses)) {
		u := uses[n]
		if l, ok := low[u.col]; ok && u.kind == "lt" {
			uses[l] = use{u.col, "between-low"}
			uses[n] = use{u.col, "between-high"}
			delete(low, u.col)
		}
	}
}

func opKind(op string, flipped bool) string {
	switch op {
	case ">", ">=":
		if flipped {
			return "lt"
		}
		return "gt"
	case "<", "<=":
		if flipped {
			return "gt"
		}
		return "lt"
	}
	return "eq"
}

// aliases maps the aliases and names of the tables a text reads to the
// tables' names.
func aliases(text string) map[string]string {
	m := map[string]string{}
	for _, g := range reFromTable.FindAllStringSubmatch(text, -1) {
		table := g[1]
		if _, n, ok := strings.Cut(table, "."); ok {
			table = n
		}
		m[strings.ToLower(table)] = table
		if a := strings.ToLower(g[2]); a != "" && !sqltext.NotAlias(a) {
			m[a] = table
		}
	}
	return m
}

// column resolves a possibly alias-qualified column of text to its
// catalogue entry.
func column(cat *Catalog, tables map[string]string, ref string) (*Table, *Column) {
	if a, c, ok := strings.Cut(ref, "."); ok {
		t := cat.Table(tables[strings.ToLower(a)])
		if t == nil {
			return nil, nil
		}
		return t, t.Columns[c]
	}
	for _, name := range tables {
		if t := cat.Table(name); t != nil {
			if c := t.Columns[ref]; c != nil {
				return t, c
			}
		}
	}
	return nil, nil
}

// bindParams chooses a value for every parameter of text (types from
// pg_prepared_statements). ok is false when some parameter cannot be
// placed; source then says which and why, else where the values came from.
func bindParams(text string, types []string, cat *Catalog) (vals []string, source string, ok bool) {
	uses := paramUses(text)
	tables := aliases(text)
	var assumed []string
	vals = make([]string, len(types))
	for i := range types {
		n := i + 1
		u, found := uses[n]
		if !found {
			return nil, fmt.Sprintf("$%d is not compared with a column", n), false
		}
		switch u.kind {
		case "limit":
			vals[i] = strconv.Itoa(assumedLimit)
			assumed = append(assumed, fmt.Sprintf("LIMIT %d", assumedLimit))
			continue
		case "offset":
			vals[i] = strconv.Itoa(assumedOffset)
			assumed = append(assumed, fmt.Sprintf("OFFSET %d", assumedOffset))
			continue
		}
		_, col := column(cat, tables, u.col)
		if col == nil {
			return nil, fmt.Sprintf("$%d: column %s not found", n, u.col), false
		}
		v, ok := sampleValue(col, u.kind)
		if !ok {
			return nil, fmt.Sprintf("$%d: no statistics for %s (run ANALYZE)", n, u.col), false
		}
		vals[i] = v
	}
	source = "pg_stats"
	slices.Sort(assumed)
	assumed = slices.Compact(assumed)
	if len(assumed) > 0 {
		source += "; assumed " + strings.Join(assumed, ", ")
	}
	return vals, source, true
}

// sampleValue picks a value of col for a parameter used as kind.
func sampleValue(col *Column, kind string) (string, bool) {
	pct := func(p float64) (string, bool) {
		if len(col.Histogram) > 0 {
			return col.Histogram[int(p*float64(len(col.Histogram)-1))], true
		}
		if len(col.MostCommon) > 0 {
			return col.MostCommon[len(col.MostCommon)/2], true
		}
		return "", false
	}
	switch kind {
	case "gt":
		return pct(0.9)
	case "lt":
		return pct(0.1)
	case "between-low":
		return pct(0.45)
	case "between-high":
		return pct(0.55)
	case "like":
		v, ok := pct(0.5)
		if !ok {
			return "", false
		}
		if r := []rune(v); len(r) > 3 {
			v = string(r[:3])
		}
		return v + "%", true
	case "array":
		var vs []string
		src := col.MostCommon
		if len(src) == 0 {
			src = col.Histogram
		}
		if len(src) == 0 {
			return "", false
		}
		step := max(1, len(src)/arraySample)
		for i := 0; i < len(src) && len(vs) < arraySample; i += step {
			vs = append(vs, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(src[i])+`"`)
		}
		return "{" + strings.Join(vs, ",") + "}", true
	}
	if len(col.MostCommon) > 0 {
		return col.MostCommon[len(col.MostCommon)/2], true
	}
	return pct(0.5)
}

// substitute replaces each $n of text with its value as a typed literal.
func substitute(text string, vals, types []string) string {
	return reParam.ReplaceAllStringFunc(text, func(m string) string {
		i, err := strconv.Atoi(m[1:])
		if err != nil || i < 1 || i > len(vals) {
			return m
		}
		return "(" + quoteLiteral(vals[i-1]) + "::" + types[i-1] + ")"
	})
}

// constColumns maps the columns a text compares with the given constants
// (by parameter number, from samples) to those constants: "status" →
// "pending" for status = $2 when the service's text held 'pending' there.
func constColumns(text string, consts map[int]string) map[string]string {
	if len(consts) == 0 {
		return nil
	}
	out := map[string]string{}
	uses := paramUses(text)
	for n, v := range consts {
		if u, ok := uses[n]; ok && u.kind == "eq" && u.col != "" {
			col := u.col
			if _, c, ok := strings.Cut(col, "."); ok {
				col = c
			}
			out[col] = v
		}
	}
	return out
}
