package advisor

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// partPlan1 is an EXPLAIN (FORMAT JSON) plan of one scan node of table
// rel: its node type, estimated rows and filter.
func partPlan1(typ, rel string, rows float64, filter string) string {
	return fmt.Sprintf(`[{"Plan": {"Node Type": %q, "Relation Name": %q, "Schema": "public", "Alias": %q,
		"Startup Cost": 0, "Total Cost": 1000, "Plan Rows": %g, "Plan Width": 16, "Filter": %q}}]`, typ, rel, rel, rows, filter)
}

// partQuery1 is a query with the plan decoded from js.
func partQuery1(t *testing.T, id, calls int64, totalMs float64, text, js string) *Query {
	t.Helper()
	p, err := ParsePlan([]byte(js))
	if err != nil {
		t.Fatalf("ParsePlan: %v", err)
	}
	return &Query{ID: id, Text: text, Calls: calls, TotalMs: totalMs, plan: p}
}

// partHist is a histogram of n+1 bounds from..to, as pg_stats prints
// timestamptz values.
func partHist(from, to time.Time, n int) []string {
	var out []string
	step := to.Sub(from) / time.Duration(n)
	for i := 0; i <= n; i++ {
		out = append(out, from.Add(time.Duration(i)*step).UTC().Format("2006-01-02 15:04:05+00"))
	}
	return out
}

// partDay is midnight UTC of a day of 2026.
func partDay(month time.Month, day int) time.Time {
	return time.Date(2026, month, day, 0, 0, 0, 0, time.UTC)
}

// partMetrics is a catalogue with a metrics table of rows rows, whose
// recorded_at histogram spans from..to.
func partMetrics(rows float64, from, to time.Time) *Catalog {
	return &Catalog{Tables: map[string]*Table{"metrics": {
		Schema: "public", Name: "metrics", Rows: rows, Bytes: 80 << 20,
		Columns: map[string]*Column{
			"device_id":   {Name: "device_id", Type: "integer", HasStats: true, NDistinct: 500},
			"recorded_at": {Name: "recorded_at", Type: "timestamp with time zone", HasStats: true, NDistinct: -1, Histogram: partHist(from, to, 100)},
			"value":       {Name: "value", Type: "double precision", HasStats: true, NDistinct: 97},
		},
	}}}
}

// partAccounts is a catalogue with an accounts table of rows rows: a
// primary key id, a region and an owner_id, and no time column.
func partAccounts(rows float64) *Catalog {
	return &Catalog{Tables: map[string]*Table{"accounts": {
		Schema: "public", Name: "accounts", Rows: rows, Bytes: 2 << 30,
		Columns: map[string]*Column{
			"id":       {Name: "id", Type: "bigint", NotNull: true, HasStats: true, NDistinct: -1},
			"owner_id": {Name: "owner_id", Type: "bigint", HasStats: true, NDistinct: -0.1},
			"region":   {Name: "region", Type: "text", HasStats: true, NDistinct: 3},
			"balance":  {Name: "balance", Type: "bigint", HasStats: true, NDistinct: -0.5},
		},
		Indexes: []*Index{{Name: "accounts_pkey", Schema: "public", Table: "accounts", Method: "btree", Columns: []string{"id"},
			Primary: true, Unique: true, Constraint: "accounts_pkey", Valid: true,
			Def: "CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)"}},
	}}}
}

const partTimeFilter = "(metrics.recorded_at >= '2026-06-01 00:00:00+00'::timestamp with time zone)"

func TestPartitionAdviceCases(t *testing.T) {
	year := partMetrics(1_200_000, partDay(1, 1), partDay(12, 31))
	type want struct {
		table, rule string
		cols        []string
		parts       int     // PARTITION OF lines, DEFAULT included
		gain        float64 // EstimatedImprovementPct; NaN: not checked
		ids         []int64
		reason      []string // substrings of Reason
		// effort and risk: effort medium under 1 GiB (metrics, 80 MiB),
		// high from it (accounts, 2 GiB); risk high when the primary
		// key lacks the partition key.
		effort, risk string
	}
	cases := []struct {
		name string
		qs   func(t *testing.T) []*Query
		cat  *Catalog
		cfg  Config
		want []want
	}{
		// A sequential scan of 1.2M rows with a time filter: 12 monthly range
		// partitions; the filter returns 1/6 of the rows, so the scan reads
		// 1/6 + 1/12 of the table: a 75 % gain.
		{"range on a time filter", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 3, 900, "SELECT device_id, avg(value) FROM metrics WHERE recorded_at >= $1 GROUP BY device_id",
				partPlan1("Seq Scan", "metrics", 200_000, partTimeFilter))}
		}, year, Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 13, 75, []int64{7},
			[]string{"1200000 rows", "12 monthly partitions", "2026-01-01 to 2027-01-01", "Effort medium: the heap is 80.0 MiB", "Risk medium"}, Medium, Medium}}},
		// The same scan under a Gather of 2 workers: the estimate is one
		// process's share, scaled by PostgreSQL's parallel divisor (2.4),
		// so the gain is the same.
		{"range under a Gather", func(t *testing.T) []*Query {
			js := `[{"Plan": {"Node Type": "Gather", "Total Cost": 1, "Plan Rows": 200000, "Workers Planned": 2, "Plans": [
				{"Node Type": "Seq Scan", "Parallel Aware": true, "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 83333.3333, "Filter": ` +
				fmt.Sprintf("%q", partTimeFilter) + `}]}}]`
			return []*Query{partQuery1(t, 7, 3, 900, "SELECT * FROM metrics WHERE recorded_at >= $1", js)}
		}, year, Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 13, 75, []int64{7}, nil, Medium, Medium}}},
		// Under a Gather Merge of 4 workers the divisor is 4 (the leader adds
		// nothing from 4 workers on): 50,000 rows a process, the same gain.
		// The fixed 2.4 the rule once used would give 120,000 rows and 85 %.
		{"range under a Gather Merge of 4", func(t *testing.T) []*Query {
			js := `[{"Plan": {"Node Type": "Gather Merge", "Total Cost": 1, "Plan Rows": 200000, "Workers Planned": 4, "Plans": [
				{"Node Type": "Sort", "Plan Rows": 50000, "Sort Key": ["metrics.device_id"], "Plans": [
				{"Node Type": "Seq Scan", "Parallel Aware": true, "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 50000, "Filter": ` +
				fmt.Sprintf("%q", partTimeFilter) + `}]}]}}]`
			return []*Query{partQuery1(t, 7, 3, 900, "SELECT * FROM metrics WHERE recorded_at >= $1 ORDER BY device_id", js)}
		}, year, Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 13, 75, []int64{7}, nil, Medium, Medium}}},
		// Five weeks of data make two monthly partitions: weekly ones instead.
		{"weekly when months are too few", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1",
				partPlan1("Seq Scan", "metrics", 200_000, partTimeFilter))}
		}, partMetrics(1_200_000, partDay(1, 1), partDay(2, 4)), Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 7, math.NaN(), []int64{7},
			[]string{"6 weekly partitions from 2025-12-29 to 2026-02-09"}, Medium, Medium}}},
		// Three days of data: daily partitions.
		{"daily when weeks are too few", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1",
				partPlan1("Seq Scan", "metrics", 200_000, partTimeFilter))}
		}, partMetrics(1_200_000, partDay(1, 5), partDay(1, 8).Add(-time.Hour)), Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 4, math.NaN(), []int64{7},
			[]string{"3 daily partitions"}, Medium, Medium}}},
		// No time column: hash on the column compared for equality (3 regions
		// are too few values for 8 partitions, so owner_id).
		{"hash on an equality column", func(t *testing.T) []*Query {
			return []*Query{
				partQuery1(t, 1, 50, 5000, "SELECT * FROM accounts WHERE owner_id = $1",
					partPlan1("Seq Scan", "accounts", 10, "(accounts.owner_id = '42'::bigint)")),
				partQuery1(t, 2, 60, 5000, "SELECT * FROM accounts WHERE region = $1",
					partPlan1("Seq Scan", "accounts", 2_000_000, "(accounts.region = 'eu'::text)")),
			}
		}, partAccounts(6_000_000), Config{}, []want{{"accounts", "hash", []string{"owner_id"}, 8, 43.8, []int64{1, 2},
			[]string{"8 hash partitions", "EXCLUDING INDEXES", "Effort high", "Risk high: accounts_pkey must be rebuilt to include owner_id"}, High, High}}},
		// No time column and no equality: hash on the primary key, no gain in the plans.
		{"hash on the primary key", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 3, 5, 100, "SELECT * FROM accounts WHERE balance > $1",
				partPlan1("Seq Scan", "accounts", 1000, "(accounts.balance > 100)"))}
		}, partAccounts(1_500_000), Config{}, []want{{"accounts", "hash", []string{"id"}, 2, 0, []int64{3},
			[]string{"its primary key", "none of them can prune", "Risk medium: the primary key and unique indexes, if any, already include id"}, High, Medium}}},
		// A time column without statistics cannot be range-partitioned: hash, and the reason says why.
		{"time column without histogram", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1 AND device_id = $2",
				partPlan1("Seq Scan", "metrics", 200, partTimeFilter+" AND (metrics.device_id = 4)"))}
		}, func() *Catalog {
			c := partMetrics(1_200_000, partDay(1, 1), partDay(12, 31))
			c.Tables["metrics"].Columns["recorded_at"].Histogram = nil
			return c
		}(), Config{}, []want{{"metrics", "hash", []string{"device_id"}, 2, math.NaN(), []int64{7},
			[]string{"run ANALYZE"}, Medium, Medium}}},
		// 900,000 rows examined is under the seed's million: no advice.
		{"under the threshold", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1",
				partPlan1("Seq Scan", "metrics", 1000, partTimeFilter))}
		}, partMetrics(900_000, partDay(1, 1), partDay(12, 31)), Config{}, nil},
		// Six reads of a 300,000-row table examine 1.8M rows, but the table is
		// one partition's worth: no advice (an index is the cure).
		{"small table read many times", func(t *testing.T) []*Query {
			js := `[{"Plan": {"Node Type": "Append", "Plan Rows": 6, "Plans": [` + strings.Repeat(
				`{"Node Type": "Seq Scan", "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 1, "Filter": "(metrics.device_id = 4)"},`, 5) +
				`{"Node Type": "Seq Scan", "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 1, "Filter": "(metrics.device_id = 5)"}]}}]`
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE device_id = $1", js)}
		}, partMetrics(300_000, partDay(1, 1), partDay(12, 31)), Config{}, nil},
		// Two time-filtered reads of the table in one query: each reads 1/6 +
		// 1/12 of it after partitioning, so the gain is still 75 %.
		{"two reads of a big table", func(t *testing.T) []*Query {
			scan := `{"Node Type": "Seq Scan", "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 200000, "Filter": ` + fmt.Sprintf("%q", partTimeFilter) + `}`
			js := `[{"Plan": {"Node Type": "Append", "Plan Rows": 400000, "Plans": [` + scan + `,` + scan + `]}}]`
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1 UNION ALL SELECT * FROM metrics WHERE recorded_at >= $1", js)}
		}, year, Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 13, 75, []int64{7}, []string{"2400000 rows"}, Medium, Medium}}},
		// An index scan examines its Plan Rows, not the table: no advice.
		{"index scan under the threshold", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1",
				partPlan1("Index Scan", "metrics", 5000, ""))}
		}, year, Config{}, nil},
		// An analyzed plan counts returned plus filtered rows, times loops: 1.1M.
		{"analyzed rows examined", func(t *testing.T) []*Query {
			js := `[{"Plan": {"Node Type": "Index Scan", "Relation Name": "metrics", "Alias": "metrics", "Plan Rows": 10,
				"Actual Rows": 100000, "Actual Loops": 2, "Rows Removed by Filter": 450000, "Filter": "(metrics.value > 1)"}, "Execution Time": 5.5}]`
			return []*Query{partQuery1(t, 9, 1, 10, "SELECT * FROM metrics WHERE device_id = 1 AND value > 1", js)}
		}, year, Config{}, []want{{"metrics", "hash", []string{"device_id"}, 2, math.NaN(), []int64{9}, []string{"1100000 rows"}, Medium, Medium}}},
		// A query that could not be explained is skipped.
		{"unexplained skipped", func(t *testing.T) []*Query {
			return []*Query{{ID: 1, Text: "SELECT * FROM metrics", Calls: 1, Unexplained: "no"}}
		}, year, Config{}, nil},
		// Expected QPS 20,000: accounts takes 90 % of the calls (18,000 a second), metrics 10 % (2,000).
		{"expected QPS", func(t *testing.T) []*Query {
			return []*Query{
				partQuery1(t, 1, 900, 90, "SELECT * FROM accounts WHERE owner_id = $1",
					partPlan1("Index Scan", "accounts", 10, "")),
				partQuery1(t, 2, 100, 10, "SELECT * FROM metrics WHERE device_id = $1",
					partPlan1("Index Scan", "metrics", 10, "")),
			}
		}, func() *Catalog {
			c := partAccounts(3_000_000)
			c.Tables["metrics"] = year.Tables["metrics"]
			return c
		}(), Config{ExpectedQPS: 20_000}, []want{{"accounts", "hash", []string{"owner_id"}, 4, 0, []int64{1},
			[]string{"about 18000 a second"}, High, High}}},
		// The same workload without an expected QPS: no advice.
		{"no expected QPS", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 1, 900, 90, "SELECT * FROM accounts WHERE owner_id = $1",
				partPlan1("Index Scan", "accounts", 10, ""))}
		}, partAccounts(3_000_000), Config{}, nil},
		// A busy table under a million rows is one partition's worth: no advice.
		{"expected QPS on a small table", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 1, 900, 90, "SELECT * FROM accounts WHERE owner_id = $1",
				partPlan1("Index Scan", "accounts", 10, ""))}
		}, partAccounts(500_000), Config{ExpectedQPS: 50_000}, nil},
		// Past 100 GB the reason points to the sharding planner.
		{"past 100 GB", func(t *testing.T) []*Query {
			return []*Query{partQuery1(t, 7, 1, 10, "SELECT * FROM metrics WHERE recorded_at >= $1",
				partPlan1("Seq Scan", "metrics", 200_000, partTimeFilter))}
		}, func() *Catalog {
			c := partMetrics(1_200_000, partDay(1, 1), partDay(12, 31))
			c.Tables["metrics"].Bytes = 150 << 30
			return c
		}(), Config{}, []want{{"metrics", "range", []string{"recorded_at"}, 13, math.NaN(), []int64{7}, []string{"sharding planner", "not built yet", "150.0 GiB", "Effort high"}, High, Medium}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := partitionAdvice(c.qs(t), c.cat, c.cfg)
			if len(got) != len(c.want) {
				t.Fatalf("got %d recommendations, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				r := got[i]
				if r.Kind != KindPartition || r.Table != w.table || r.Rule != w.rule || !reflect.DeepEqual(r.Columns, w.cols) ||
					r.Effort != w.effort || r.Risk != w.risk || !reflect.DeepEqual(r.Queries, w.ids) {
					t.Errorf("got %+v, want %+v", r, w)
				}
				if strings.Contains(r.Reason, "strata shard") {
					t.Errorf("reason names a command that does not exist: %s", r.Reason)
				}
				if n := strings.Count(r.SQL, " PARTITION OF "); n != w.parts {
					t.Errorf("%d partitions, want %d:\n%s", n, w.parts, r.SQL)
				}
				if !math.IsNaN(w.gain) && r.EstimatedImprovementPct != w.gain {
					t.Errorf("gain %v, want %v", r.EstimatedImprovementPct, w.gain)
				}
				for _, s := range w.reason {
					if !strings.Contains(r.Reason, s) && !strings.Contains(r.SQL, s) {
						t.Errorf("reason and SQL lack %q:\n%s\n%s", s, r.Reason, r.SQL)
					}
				}
			}
		})
	}
}

func TestPartitionDDL(t *testing.T) {
	// The range DDL: the partitioned table, each month with its bounds, a
	// DEFAULT partition, and the migration plan in comments.
	cat := partMetrics(1_200_000, partDay(1, 1), partDay(3, 15))
	rs := partitionAdvice([]*Query{partQuery1(t, 7, 3, 900, "SELECT * FROM metrics WHERE recorded_at >= $1",
		partPlan1("Seq Scan", "metrics", 200_000, partTimeFilter))}, cat, Config{})
	if len(rs) != 1 {
		t.Fatalf("got %+v", rs)
	}
	// Three monthly partitions are too few: weekly ones, named by their Monday.
	// Every name is schema-qualified and quoted.
	wantPrefix := `CREATE TABLE "public"."metrics_partitioned" (LIKE "public"."metrics" INCLUDING ALL) PARTITION BY RANGE ("recorded_at");
CREATE TABLE "public"."metrics_p2025_12_29" PARTITION OF "public"."metrics_partitioned" FOR VALUES FROM ('2025-12-29 00:00:00+00') TO ('2026-01-05 00:00:00+00');
CREATE TABLE "public"."metrics_p2026_01_05" PARTITION OF "public"."metrics_partitioned" FOR VALUES FROM ('2026-01-05 00:00:00+00') TO ('2026-01-12 00:00:00+00');
`
	if !strings.HasPrefix(rs[0].SQL, wantPrefix) {
		t.Errorf("SQL:\n%s\nwant it to start with:\n%s", rs[0].SQL, wantPrefix)
	}
	for _, s := range []string{
		`CREATE TABLE "public"."metrics_default" PARTITION OF "public"."metrics_partitioned" DEFAULT;`,
		"-- 1. Create the partitioned table", "-- 2. Copy the rows in batches", "dual-write",
		`-- 3. Swap the names in one transaction`,
		// RENAME TO takes a bare name: the table stays in its schema.
		`ALTER TABLE "public"."metrics" RENAME TO "metrics_unpartitioned"; ALTER TABLE "public"."metrics_partitioned" RENAME TO "metrics";`,
	} {
		if !strings.Contains(rs[0].SQL, s) {
			t.Errorf("SQL lacks %q:\n%s", s, rs[0].SQL)
		}
	}

	// The hash DDL for a table whose primary key lacks the partition key:
	// indexes are left out of LIKE and rebuilt with the key appended.
	acc := partAccounts(3_000_000)
	acc.Tables["accounts"].Indexes = append(acc.Tables["accounts"].Indexes,
		&Index{Name: "accounts_region", Method: "btree", Columns: []string{"region", "balance"}, Desc: []bool{false, true},
			Predicate: "(balance > 0)", Valid: true, Def: "CREATE INDEX accounts_region ON public.accounts USING btree (region, balance DESC) WHERE (balance > 0)"})
	rs = partitionAdvice([]*Query{partQuery1(t, 1, 5, 10, "SELECT * FROM accounts a WHERE a.owner_id = $1",
		partPlan1("Seq Scan", "accounts", 30, "(accounts.owner_id = '7'::bigint)"))}, acc, Config{})
	if len(rs) != 1 {
		t.Fatalf("got %+v", rs)
	}
	for _, s := range []string{
		`CREATE TABLE "public"."accounts_partitioned" (LIKE "public"."accounts" INCLUDING ALL EXCLUDING INDEXES) PARTITION BY HASH ("owner_id");`,
		`CREATE TABLE "public"."accounts_p0" PARTITION OF "public"."accounts_partitioned" FOR VALUES WITH (MODULUS 4, REMAINDER 0);`,
		`CREATE TABLE "public"."accounts_p3" PARTITION OF "public"."accounts_partitioned" FOR VALUES WITH (MODULUS 4, REMAINDER 3);`,
		`ALTER TABLE "public"."accounts_partitioned" ADD PRIMARY KEY (id, "owner_id");`,
		`CREATE INDEX ON "public"."accounts_partitioned" USING btree (region, balance DESC) WHERE (balance > 0);`,
		`-- was: CREATE UNIQUE INDEX accounts_pkey`,
	} {
		if !strings.Contains(rs[0].SQL, s) {
			t.Errorf("SQL lacks %q:\n%s", s, rs[0].SQL)
		}
	}
	// The text's alias "a" resolves to accounts; the seq scan with an
	// equality on the key reads one partition of four.
	if rs[0].EstimatedImprovementPct != 75 {
		t.Errorf("gain %v, want 75", rs[0].EstimatedImprovementPct)
	}
}

// TestPartNames: names stay within PostgreSQL's 63 bytes by cutting the
// table's name (at a rune boundary), never a suffix, stay unique among
// themselves, and avoid relations that exist already.
func TestPartNames(t *testing.T) {
	long := strings.Repeat("é", 31) + "x" // 63 bytes, the longest name PostgreSQL keeps
	cat := partMetrics(1_200_000, partDay(1, 1), partDay(12, 31))
	tbl := cat.Tables["metrics"]
	delete(cat.Tables, "metrics")
	tbl.Name = long
	cat.Tables[long] = tbl
	rs := partitionAdvice([]*Query{partQuery1(t, 7, 3, 900, "SELECT * FROM metrics WHERE recorded_at >= $1",
		partPlan1("Seq Scan", long, 200_000, strings.ReplaceAll(partTimeFilter, "metrics.", "")))}, cat, Config{})
	if len(rs) != 1 {
		t.Fatalf("got %+v", rs)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`CREATE TABLE "public"\."((?:[^"]|"")*)"`).FindAllStringSubmatch(rs[0].SQL, -1) {
		name := m[1]
		if len(name) > maxIdentBytes || !utf8.ValidString(name) || seen[name] {
			t.Errorf("name %q: %d bytes, valid UTF-8 %v, seen before %v", name, len(name), utf8.ValidString(name), seen[name])
		}
		seen[name] = true
		if !strings.HasPrefix(name, strings.Repeat("é", 24)) || !regexp.MustCompile(`_(partitioned|p\d{4}_\d{2}|default)$`).MatchString(name) {
			t.Errorf("name %q does not keep its suffix whole after a cut base", name)
		}
	}
	if len(seen) != 14 { // the partitioned table, 12 months and DEFAULT
		t.Errorf("%d distinct names, want 14:\n%s", len(seen), rs[0].SQL)
	}

	// A relation that exists already (here an index named like the
	// DEFAULT partition) moves every name to a numbered base.
	sc := &partScheme{parts: []partPart{{suffix: "_p0"}, {suffix: "_default"}}}
	taken := func(n string) bool { return n == "metrics_default" }
	if n := partNames(&Table{Schema: "s", Name: "metrics"}, sc, taken); n.name("_default") != "metrics_2_default" ||
		n.qualified("_p0") != `"s"."metrics_2_p0"` {
		t.Errorf("got %+v", n)
	}
	// partCut never cuts inside a rune.
	if got := partCut("aé", 2); got != "a" {
		t.Errorf("partCut = %q", got)
	}
}

func TestPartitionAdviceOrder(t *testing.T) {
	// Two tables past the rule come by name, and each lists its queries by id.
	cat := partAccounts(2_000_000)
	cat.Tables["metrics"] = partMetrics(1_200_000, partDay(1, 1), partDay(12, 31)).Tables["metrics"]
	qs := []*Query{
		partQuery1(t, 30, 1, 1, "SELECT * FROM metrics WHERE recorded_at >= $1", partPlan1("Seq Scan", "metrics", 10, partTimeFilter)),
		partQuery1(t, 20, 1, 1, "SELECT * FROM accounts", partPlan1("Seq Scan", "accounts", 2_000_000, "")),
		partQuery1(t, 10, 1, 1, "SELECT * FROM metrics WHERE recorded_at < $1", partPlan1("Seq Scan", "metrics", 10, partTimeFilter)),
	}
	for range 5 {
		rs := partitionAdvice(qs, cat, Config{})
		if len(rs) != 2 || rs[0].Table != "accounts" || rs[1].Table != "metrics" ||
			!reflect.DeepEqual(rs[1].Queries, []int64{10, 30}) {
			t.Fatalf("got %+v", rs)
		}
	}
}

func TestPartParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // RFC 3339 in UTC; "" when it must not parse
	}{
		{"2026-01-01 00:00:00+00", "2026-01-01T00:00:00Z"},       // timestamptz in UTC
		{"2026-01-01 05:30:00.25+05:30", "2026-01-01T00:00:00Z"}, // fractional seconds, a half-hour zone
		{"2026-03-01 12:00:00-08", "2026-03-01T20:00:00Z"},       // a negative offset
		{"2026-01-01 00:00:00", "2026-01-01T00:00:00Z"},          // timestamp without time zone
		{"2026-02-03", "2026-02-03T00:00:00Z"},                   // date
		{"infinity", ""},                                         // infinity has no month
		{"2026-01-01 00:00:00+00 BC", ""},                        // BC dates are left out
		{"01/02/2026", ""},                                       // a non-ISO DateStyle
	} {
		got, ok := partParseTime(c.in)
		if s := got.UTC().Format(time.RFC3339); (c.want == "") == ok || ok && s != c.want {
			t.Errorf("partParseTime(%q) = %s, %v; want %q", c.in, s, ok, c.want)
		}
	}
}

func TestPartMentions(t *testing.T) {
	for _, c := range []struct {
		s, col string
		want   bool
	}{
		{"(m.recorded_at >= $1)", "recorded_at", true}, // qualified
		{"recorded_at_old > 1", "recorded_at", false},  // a longer name
		{"x.prerecorded_at = 1", "recorded_at", false}, // a longer name, before
		{"RECORDED_AT < now()", "recorded_at", true},   // case-folded
		{"a = 1 AND recorded_at", "recorded_at", true}, // at the end
		{"", "recorded_at", false},                     // empty text
	} {
		if got := partMentions(c.s, c.col); got != c.want {
			t.Errorf("partMentions(%q, %q) = %v", c.s, c.col, got)
		}
	}
}

func TestPartEqs(t *testing.T) {
	tbl := partAccounts(1).Tables["accounts"]
	ours := func(q string) bool { return q == "accounts" }
	// Equalities count; >=, <=, <> and another table's columns do not.
	got := partEqs("((accounts.owner_id = 4) AND (accounts.balance >= 5) AND (region <> 'x') AND (other.id = 1) AND (id = 2))", tbl, ours)
	if !reflect.DeepEqual(got, []string{"owner_id", "id"}) {
		t.Errorf("got %q", got)
	}
}

func FuzzPartHistogramSpan(f *testing.F) {
	f.Add("2026-01-01 00:00:00+00", "2026-12-31 23:59:59+00")
	f.Add("2026-01-01", "2025-01-01")
	f.Add("infinity", "-infinity")
	f.Fuzz(func(t *testing.T, a, b string) {
		first, last, ok := partHistogramSpan([]string{a, b})
		if ok && last.Before(first) {
			t.Errorf("span %v..%v out of order", first, last)
		}
		if ok {
			// Any span parses into bounds without panicking, and in order.
			for _, s := range partSteps() {
				if first.Year() < 1 || last.Sub(first) > 24*time.Hour*366*3 {
					break
				}
				bs := partBounds(s, first, last)
				for i := 1; i < len(bs); i++ {
					if !bs[i].After(bs[i-1]) {
						t.Fatalf("%s bounds out of order: %v", s.name, bs)
					}
				}
			}
		}
	})
}
