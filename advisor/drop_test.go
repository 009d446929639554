package advisor

import (
	"reflect"
	"strings"
	"testing"
)

// dropIx is a valid, scanned, plain btree index on table t.
func dropIx(name string, cols ...string) *Index {
	return &Index{Name: name, Schema: "public", Table: "t", Method: "btree", Columns: cols, Valid: true, Scans: 10, Bytes: 3 << 20}
}

// dropCat is a catalogue of one table t, with writes, holding ixs.
func dropCat(ixs ...*Index) *Catalog {
	return &Catalog{
		Tables: map[string]*Table{"t": {
			Name: "t", Rows: 1000, Inserts: 100, Updates: 50, HotUpdates: 20, Deletes: 5, Indexes: ixs,
		}},
		StatsReset: "2026-01-01 00:00:00+00",
	}
}

// dropWith applies changes to an index and returns it.
func dropWith(ix *Index, f func(*Index)) *Index { f(ix); return ix }

// dropSummary describes each recommendation as "index:rule" or, for a
// duplicate, "index:duplicate<cover".
func dropSummary(rs []Recommendation) []string {
	var out []string
	for _, r := range rs {
		name := strings.TrimSuffix(strings.TrimPrefix(r.SQL, `DROP INDEX CONCURRENTLY "public"."`), `";`)
		s := name + ":" + r.Rule
		if r.Rule == "duplicate" {
			_, after, _ := strings.Cut(r.Reason, "is covered by ")
			cover, _, _ := strings.Cut(after, " ")
			s += "<" + cover
		}
		out = append(out, s)
	}
	return out
}

func TestDropAdviceCases(t *testing.T) {
	unused := func(ix *Index) { ix.Scans = 0 }
	desc := func(d ...bool) func(*Index) { return func(ix *Index) { ix.Desc = d } }
	cases := []struct {
		name string
		cat  *Catalog
		want []string
	}{
		// An index never scanned, that nothing depends on, is unused.
		{"unused", dropCat(dropIx("t_pkey", "id"), dropWith(dropIx("t_note", "note"), unused)),
			[]string{"t_note:unused"}},
		// The primary key is never dropped, scanned or not.
		{"primary kept", dropCat(dropWith(dropIx("t_pkey", "id"), func(ix *Index) { ix.Primary, ix.Unique, ix.Scans = true, true, 0 })),
			nil},
		// A unique index enforces something: never dropped as unused.
		{"unique kept", dropCat(dropWith(dropIx("t_email", "email"), func(ix *Index) { ix.Unique, ix.Scans = true, 0 })),
			nil},
		// An index backing a constraint (here an exclusion constraint) is kept.
		{"constraint kept", dropCat(dropWith(dropIx("t_excl", "room"), func(ix *Index) { ix.Constraint, ix.Scans = "t_excl", 0 })),
			nil},
		// An invalid index (a failed concurrent build) is not advised as unused.
		{"invalid skipped", dropCat(dropWith(dropIx("t_bad", "x"), func(ix *Index) { ix.Valid, ix.Scans = false, 0 })),
			nil},
		// Identical keys: the one with fewer scans goes.
		{"identical", dropCat(dropWith(dropIx("t_a", "x"), func(ix *Index) { ix.Scans = 5 }), dropIx("t_b", "x")),
			[]string{"t_a:duplicate<t_b"}},
		// Identical keys: the unique one stays even with fewer scans.
		{"identical keeps unique", dropCat(dropWith(dropIx("t_u", "x"), func(ix *Index) { ix.Unique, ix.Scans = true, 1 }), dropIx("t_plain", "x")),
			[]string{"t_plain:duplicate<t_u"}},
		// Identical keys, one backing a constraint: the constraint's stays.
		{"identical keeps constraint", dropCat(dropWith(dropIx("t_key", "x"), func(ix *Index) { ix.Unique, ix.Constraint, ix.Scans = true, "t_key", 0 }),
			dropWith(dropIx("t_uq", "x"), func(ix *Index) { ix.Unique, ix.Scans = true, 99 })),
			[]string{"t_uq:duplicate<t_key"}},
		// Identical keys and scans: the name decides, so the result is stable.
		{"identical by name", dropCat(dropIx("t_b", "x", "y"), dropIx("t_a", "x", "y")),
			[]string{"t_b:duplicate<t_a"}},
		// A strict prefix is a duplicate of the longer index.
		{"prefix", dropCat(dropIx("orders_status", "status"), dropIx("orders_status_created", "status", "created_at")),
			[]string{"orders_status:duplicate<orders_status_created"}},
		// A unique prefix enforces uniqueness the longer one does not: kept.
		{"unique prefix kept", dropCat(dropWith(dropIx("t_x", "x"), func(ix *Index) { ix.Unique = true }), dropIx("t_xy", "x", "y")),
			nil},
		// A different predicate serves different reads: not a duplicate.
		{"prefix other predicate", dropCat(dropWith(dropIx("t_x", "x"), func(ix *Index) { ix.Predicate = "(y IS NULL)" }), dropIx("t_xy", "x", "y")),
			nil},
		// A multi-column prefix in another direction (not wholly reversed) is not a duplicate.
		{"prefix other direction", dropCat(dropWith(dropIx("t_ab", "a", "b"), desc(false, true)), dropIx("t_abc", "a", "b", "c")),
			nil},
		// A wholly reversed prefix is served by a backward scan: a duplicate.
		{"prefix reversed", dropCat(dropWith(dropIx("t_ab", "a", "b"), desc(true, true)), dropIx("t_abc", "a", "b", "c")),
			[]string{"t_ab:duplicate<t_abc"}},
		// Direction does not matter for a single-column prefix.
		{"single column direction", dropCat(dropWith(dropIx("t_a", "a"), desc(true)), dropIx("t_ab", "a", "b")),
			[]string{"t_a:duplicate<t_ab"}},
		// Expression keys are not compared.
		{"expression", dropCat(dropIx("t_lower", "lower(email)"), dropIx("t_lower2", "lower(email)", "id")),
			nil},
		// Another method (gin) is not a duplicate of a btree.
		{"other method", dropCat(dropWith(dropIx("t_gin", "tags"), func(ix *Index) { ix.Method = "gin" }), dropIx("t_tags", "tags", "id")),
			nil},
		// A prefix of another method than btree is not a duplicate (no prefix scans).
		{"hash prefix", dropCat(dropWith(dropIx("t_h", "x"), func(ix *Index) { ix.Method = "hash" }), dropWith(dropIx("t_h2", "x", "y"), func(ix *Index) { ix.Method = "hash" })),
			nil},
		// Unused and duplicate: one recommendation, as a duplicate.
		{"unused duplicate once", dropCat(dropWith(dropIx("orders_status", "status"), unused), dropIx("orders_status_created", "status", "created_at")),
			[]string{"orders_status:duplicate<orders_status_created"}},
		// A chain a ⊂ b ⊂ c: both shorter ones name c, the one that stays.
		{"chain", dropCat(dropIx("t_a", "a"), dropIx("t_ab", "a", "b"), dropIx("t_abc", "a", "b", "c")),
			[]string{"t_a:duplicate<t_abc", "t_ab:duplicate<t_abc"}},
		// The index with the INCLUDE column covers the one without, whatever the
		// scans, and is not unused: it takes over the duplicate's reads.
		{"include covers", dropCat(dropIx("t_x", "x"), dropWith(dropIx("t_x_incl", "x"), func(ix *Index) { ix.Include, ix.Scans = []string{"y"}, 0 })),
			[]string{"t_x:duplicate<t_x_incl"}},
		// Both unscanned: the duplicate goes, and its unused cover too.
		{"include covers, both unused", dropCat(dropWith(dropIx("t_x", "x"), unused), dropWith(dropIx("t_x_incl", "x"), func(ix *Index) { ix.Include, ix.Scans = []string{"y"}, 0 })),
			[]string{"t_x:duplicate<t_x_incl", "t_x_incl:unused"}},
		// A prefix with an INCLUDE column the longer index lacks is not covered.
		{"include not covered", dropCat(dropWith(dropIx("t_x", "x"), func(ix *Index) { ix.Include = []string{"z"} }), dropIx("t_xy", "x", "y")),
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := dropSummary(dropAdvice(c.cat))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDropAdviceFields(t *testing.T) {
	cat := dropCat(dropIx("t_pkey", "id"), dropWith(dropIx("t_note", "note"), func(ix *Index) { ix.Scans = 0 }),
		dropIx("t_s", "s"), dropIx("t_s_c", "s", "c"))
	rs := dropAdvice(cat)
	if len(rs) != 2 {
		t.Fatalf("got %d recommendations, want 2: %+v", len(rs), rs)
	}
	unused, dup := rs[0], rs[1] // by index name: t_note, t_s
	// Four indexes plus the heap: each is a fifth of the write work.
	const share = 20
	for _, r := range rs {
		if r.Kind != KindDropIndex || r.Table != "t" || r.Effort != Low || r.SizeBytes != 3<<20 ||
			r.EstimatedImprovementPct != share || r.Score != 0 || r.Queries != nil {
			t.Errorf("fields: %+v", r)
		}
		// Writes: 100 inserts + 50 updates − 20 HOT + 5 deletes = 135.
		for _, want := range []string{"3.0 MiB", "135 index-writing row changes", "2026-01-01"} {
			if !strings.Contains(r.Reason, want) {
				t.Errorf("reason %q lacks %q", r.Reason, want)
			}
		}
	}
	if unused.SQL != `DROP INDEX CONCURRENTLY "public"."t_note";` || unused.Rule != "unused" || unused.Risk != Medium ||
		!reflect.DeepEqual(unused.Columns, []string{"note"}) || !strings.Contains(unused.Reason, "check replicas") {
		t.Errorf("unused: %+v", unused)
	}
	if dup.Rule != "duplicate" || dup.Risk != Low || !strings.Contains(dup.Reason, "t_s_c") {
		t.Errorf("duplicate: %+v", dup)
	}
}

func TestDropAdviceNoWrites(t *testing.T) {
	// A table without writes: the gain is space only, and the reason says so.
	cat := &Catalog{Tables: map[string]*Table{"t": {Name: "t", Indexes: []*Index{
		dropWith(dropIx("t_x", "x"), func(ix *Index) { ix.Scans = 0 })}}}}
	rs := dropAdvice(cat)
	if len(rs) != 1 || rs[0].EstimatedImprovementPct != 0 || !strings.Contains(rs[0].Reason, "space only") ||
		!strings.Contains(rs[0].Reason, "never reset") {
		t.Errorf("got %+v", rs)
	}
}

func TestDropAdviceOrder(t *testing.T) {
	// Recommendations come by table, then index name, whatever the map
	// order. The indexes have no schema of their own: the table's is used.
	cat := &Catalog{Tables: map[string]*Table{}}
	for _, tn := range []string{"zeta", "alpha", "mid"} {
		cat.Tables[tn] = &Table{Schema: "s", Name: tn, Inserts: 1, Indexes: []*Index{
			{Name: tn + "_b", Method: "btree", Columns: []string{"b"}, Valid: true},
			{Name: tn + "_a", Method: "btree", Columns: []string{"a"}, Valid: true},
		}}
	}
	var got []string
	for range 5 {
		got = got[:0]
		for _, r := range dropAdvice(cat) {
			got = append(got, r.SQL)
		}
		want := []string{`DROP INDEX CONCURRENTLY "s"."alpha_a";`, `DROP INDEX CONCURRENTLY "s"."alpha_b";`,
			`DROP INDEX CONCURRENTLY "s"."mid_a";`, `DROP INDEX CONCURRENTLY "s"."mid_b";`,
			`DROP INDEX CONCURRENTLY "s"."zeta_a";`, `DROP INDEX CONCURRENTLY "s"."zeta_b";`}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q", got)
		}
	}
}

// TestDropIndexSQLQualified: the statement names the index by its schema,
// both parts quoted, so that it drops the advised index whatever the
// search path, and a name with a quote or a capital cannot break it.
func TestDropIndexSQLQualified(t *testing.T) {
	ix := dropWith(dropIx(`Odd"Name`, "x"), func(ix *Index) { ix.Schema, ix.Scans = "Sales Data", 0 })
	rs := dropAdvice(dropCat(ix))
	const want = `DROP INDEX CONCURRENTLY "Sales Data"."Odd""Name";`
	if len(rs) != 1 || rs[0].SQL != want {
		t.Fatalf("got %+v, want SQL %s", rs, want)
	}
	if got := qualifiedIdent("", "t_x"); got != `"t_x"` {
		t.Errorf("qualifiedIdent without a schema = %s", got)
	}
}
