package advisor

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// An index costs every write to its table one more index entry, and buys
// nothing if no query reads it. dropAdvice finds two kinds:
//
//   - unused: no scan since the statistics were reset, and nothing else
//     depends on it (not the primary key, not unique, backing no
//     constraint);
//   - duplicate: another index on the same table, of the same method and
//     predicate, serves every read it serves: identical key columns, or
//     key columns of which its own are a strict prefix (btree only),
//     scanned in the same direction or wholly reversed.
//
// The gain is computed, not canned: a write of one row writes the heap and
// one entry in each index (HOT updates write none), so an index is
// 1/(indexes+1) of the table's write work.

// dropKeepScore ranks, among indexes with identical keys, which one to keep:
// the one backing a constraint, then the primary key, then a unique one.
func dropKeepScore(ix *Index) int {
	const constraint, primary, unique = 4, 2, 1 // weights: constraint > primary > unique
	s := 0
	if ix.Constraint != "" {
		s += constraint
	}
	if ix.Primary {
		s += primary
	}
	if ix.Unique {
		s += unique
	}
	return s
}

// dropKeeps reports whether, of two indexes with identical keys, a is the
// one to keep rather than b: by dropKeepScore, then more scans, then name.
func dropKeeps(a, b *Index) bool {
	if sa, sb := dropKeepScore(a), dropKeepScore(b); sa != sb {
		return sa > sb
	}
	if a.Scans != b.Scans {
		return a.Scans > b.Scans
	}
	return a.Name < b.Name
}

// dropComparable reports whether a and b can stand in for each other at
// all: both valid, same method and predicate, no expression keys.
func dropComparable(a, b *Index) bool {
	if a == b || !a.Valid || !b.Valid || a.Method != b.Method || a.Predicate != b.Predicate {
		return false
	}
	isExpr := func(c string) bool { return strings.Contains(c, "(") }
	return !slices.ContainsFunc(a.Columns, isExpr) && !slices.ContainsFunc(b.Columns, isExpr)
}

// dropDesc is whether key column i of ix sorts descending (a missing flag
// means ascending).
func dropDesc(ix *Index, i int) bool { return i < len(ix.Desc) && ix.Desc[i] }

// dropPrefixOf reports whether the key columns of a are a prefix of (or
// equal to) those of b, in the same direction or wholly reversed (a
// backward scan). Direction matters only when a has more than one key.
func dropPrefixOf(a, b *Index) bool {
	if len(a.Columns) == 0 || len(a.Columns) > len(b.Columns) {
		return false
	}
	same, reversed := true, true
	for i, c := range a.Columns {
		if c != b.Columns[i] {
			return false
		}
		if dropDesc(a, i) == dropDesc(b, i) {
			reversed = false
		} else {
			same = false
		}
	}
	return len(a.Columns) == 1 || same || reversed
}

// dropIncludes reports whether every INCLUDE column of a is a key or
// INCLUDE column of b, so b keeps a's index-only scans.
func dropIncludes(a, b *Index) bool {
	return !slices.ContainsFunc(a.Include, func(c string) bool {
		return !slices.Contains(b.Columns, c) && !slices.Contains(b.Include, c)
	})
}

// dropCovers reports whether b makes a redundant: a can be dropped because
// b serves every read a serves and enforces whatever a enforces.
func dropCovers(b, a *Index) bool {
	if !dropComparable(a, b) || !dropPrefixOf(a, b) || !dropIncludes(a, b) {
		return false
	}
	if a.Primary || a.Constraint != "" {
		return false // DROP INDEX cannot drop it; the constraint needs it
	}
	if len(a.Columns) < len(b.Columns) {
		// A strict prefix: only a plain index is a duplicate; a unique
		// one enforces something the longer index does not, and a
		// prefix scan is a btree's, not every method's.
		return !a.Unique && a.Method == "btree"
	}
	// Identical keys: a unique one goes only if the one kept enforces the
	// same uniqueness. The one with fewer INCLUDE columns goes; with the
	// same ones, the one dropKeeps does not keep.
	if a.Unique && !b.Unique && !b.Primary {
		return false
	}
	return !dropIncludes(b, a) || dropKeeps(b, a)
}

// dropDuplicates maps each duplicate index of t to the index that covers
// it, chosen among those that are not duplicates themselves (covering is
// transitive, so there always is one): the one with the fewest key
// columns, then by name.
func dropDuplicates(t *Table) map[*Index]*Index {
	covers := map[*Index][]*Index{}
	for _, a := range t.Indexes {
		for _, b := range t.Indexes {
			if dropCovers(b, a) {
				covers[a] = append(covers[a], b)
			}
		}
	}
	dup := map[*Index]*Index{}
	for a, bs := range covers {
		var best *Index
		for _, b := range bs {
			if len(covers[b]) > 0 {
				continue // b goes too
			}
			if best == nil || len(b.Columns) < len(best.Columns) ||
				(len(b.Columns) == len(best.Columns) && b.Name < best.Name) {
				best = b
			}
		}
		if best != nil {
			dup[a] = best
		}
	}
	return dup
}

// dropUnused reports whether ix has not been scanned and nothing depends
// on it.
func dropUnused(ix *Index) bool {
	return ix.Scans == 0 && !ix.Primary && !ix.Unique && ix.Constraint == "" && ix.Valid
}

// dropWrites is the table's writes since the statistics reset that wrote
// index entries: inserts, updates that were not HOT, and deletes (whose
// index entries vacuum removes).
func dropWrites(t *Table) int64 {
	return t.Inserts + t.Updates - t.HotUpdates + t.Deletes
}

// dropAdvice finds indexes to drop: unused ones and duplicates. An index
// that is both is advised once, as a duplicate; an unused index that
// covers a scanned duplicate is not advised (it takes over the reads).
// The order is by table, then index name.
func dropAdvice(cat *Catalog) []Recommendation {
	var out []Recommendation
	for _, name := range slices.Sorted(maps.Keys(cat.Tables)) {
		t := cat.Tables[name]
		dup := dropDuplicates(t)
		// An index that takes over a scanned duplicate's reads is not
		// unused once the duplicate goes.
		inherits := map[*Index]bool{}
		for d, cover := range dup {
			if d.Scans > 0 {
				inherits[cover] = true
			}
		}
		ixs := slices.SortedFunc(slices.Values(t.Indexes), func(a, b *Index) int { return strings.Compare(a.Name, b.Name) })
		for _, ix := range ixs {
			cover, isDup := dup[ix]
			if !isDup && (!dropUnused(ix) || inherits[ix]) {
				continue
			}
			out = append(out, dropRecommendation(cat, t, ix, cover))
		}
	}
	return out
}

// dropRecommendation is the advice to drop ix, a duplicate of cover or,
// when cover is nil, unused.
func dropRecommendation(cat *Catalog, t *Table, ix, cover *Index) Recommendation {
	const percent = 100 // a share in percent
	const tenths = 10   // the gain is rounded to a tenth of a percent
	writes := dropWrites(t)
	share := 0.0
	if writes > 0 {
		share = math.Round(percent*tenths/float64(len(t.Indexes)+1)) / tenths
	}
	schema := ix.Schema
	if schema == "" {
		schema = t.Schema // an index lives in its table's schema
	}
	r := Recommendation{
		Kind:                    KindDropIndex,
		Table:                   t.Name,
		Columns:                 slices.Clone(ix.Columns),
		SQL:                     "DROP INDEX CONCURRENTLY " + qualifiedIdent(schema, ix.Name) + ";",
		SizeBytes:               ix.Bytes,
		EstimatedImprovementPct: share,
		Effort:                  Low,
	}
	since := "since the statistics reset (" + cat.StatsReset + ")"
	if cat.StatsReset == "" {
		since = "since the statistics were first collected (never reset)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s (%s), %s, ", ix.Name, t.Name, strings.Join(ix.Columns, ", "), formatBytes(ix.Bytes))
	if cover != nil {
		r.Rule, r.Risk = "duplicate", Low
		fmt.Fprintf(&b, "is covered by %s (%s), which serves every read it serves", cover.Name, strings.Join(cover.Columns, ", "))
		if dropUnused(ix) {
			fmt.Fprintf(&b, "; it is also unused: 0 scans %s", since)
		} else {
			fmt.Fprintf(&b, "; its %d scans %s can use %s instead", ix.Scans, since, cover.Name)
		}
	} else {
		r.Rule, r.Risk = "unused", Medium
		fmt.Fprintf(&b, "has had 0 scans %s", since)
	}
	if writes > 0 {
		fmt.Fprintf(&b, ". The table took %d index-writing row changes in that time (inserts + non-HOT updates + deletes); "+
			"each writes the heap and one entry per index, so dropping it saves about %.1f%% of the table's index-maintenance work (1 of %d) and %s",
			writes, share, len(t.Indexes)+1, formatBytes(ix.Bytes))
	} else {
		fmt.Fprintf(&b, ". The table took no writes in that time, so the gain is space only: %s", formatBytes(ix.Bytes))
	}
	if cover == nil {
		b.WriteString(". Scans are counted on this server only: check replicas before dropping")
	}
	b.WriteString(".")
	r.Reason = b.String()
	return r
}
