package advisor

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleReport is a report with something in every section: two queries
// (one slow with a long, multi-line text; one not explained), a finding,
// and one recommendation of each kind in rank order, the index verified.
func sampleReport() *Report {
	same := true
	return &Report{
		Database:   "shop",
		At:         time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		StatsReset: "2026-02-01 00:00:00+00",
		Elapsed:    1500 * time.Millisecond,
		Queries: []*Query{
			{ID: 101, Text: "SELECT *\n  FROM orders\n WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3 OFFSET $4",
				Calls: 5000, TotalMs: 900000, MeanMs: 180, Rows: 100000, SharedBlksRead: 42000, Slow: true, ParamSource: "pg_stats"},
			{ID: 202, Text: "SELECT count(*) FROM gone", Calls: 3, TotalMs: 12, MeanMs: 4,
				Unexplained: "cannot be prepared (relation \"gone\" does not exist)"},
		},
		Findings: []Finding{{QueryID: 101, Kind: "seq_scan", Table: "public.orders", Detail: "Seq Scan on orders (1.2M rows) filters out 99.9 %"}},
		Recommendations: []Recommendation{
			{Kind: KindIndex, Table: "public.orders", Columns: []string{"customer_id", "status"}, Include: []string{"total"},
				Where: "status <> 'done'", SQL: "CREATE INDEX CONCURRENTLY ON public.orders (customer_id, status) INCLUDE (total) WHERE status <> 'done';",
				EstimatedImprovementPct: 87.5, SavedMs: 787500, WriteCostMs: 1200, SizeBytes: 3 << 20, Effort: Low, Risk: Low,
				Queries: []int64{101}, Reason: "Seq Scan on orders filtered by customer_id",
				Measured: &Measurement{BeforeMs: 180, AfterMs: 12.5, ImprovementPct: 93.1, BuildMs: 840,
					Skipped: map[int64]string{303: "a write: not run twice"}}},
			{Kind: KindRewrite, Table: "public.orders", Rule: "offset_pagination", EstimatedImprovementPct: 60,
				SQL:    "SELECT * FROM orders\nWHERE customer_id = $1 AND (created_at, id) < ($2, $3)\nORDER BY created_at DESC, id DESC LIMIT $4",
				Effort: Medium, Risk: Low, Queries: []int64{101}, Reason: "OFFSET reads and discards rows: use keyset pagination",
				Checked: &Check{CostBefore: 5400, CostAfter: 120, SameRows: &same}},
			{Kind: KindDropIndex, Table: "public.orders", Columns: []string{"status"}, Rule: "unused",
				SQL: "DROP INDEX CONCURRENTLY public.orders_status_idx", SizeBytes: 1 << 30, WriteCostMs: 300,
				Effort: Low, Risk: Medium, Reason: "never scanned since the statistics were reset"},
			{Kind: KindPartition, Table: "public.events", Columns: []string{"created_at"}, EstimatedImprovementPct: 30,
				SQL:    "-- partition public.events by range of created_at\nCREATE TABLE public.events_new (LIKE public.events) PARTITION BY RANGE (created_at);;",
				Effort: High, Risk: High, Reason: "queries examine over 1,000,000 rows"},
		},
		Skipped: []string{"public.orders (status): covered by orders_status_idx"},
		Notes:   []string{"left out 3 utility statements"},
	}
}

func TestWriteTextSections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report *Report
		want   []string // in order
		not    []string
	}{
		// Every section, in order, with its rows.
		{"full", sampleReport(), []string{
			"Query advice for database shop", "statistics window", "since 2026-02-01 00:00:00+00", "statements read", "2",
			"Top queries by total time", "101", "SLOW", "pg_stats", "SELECT * FROM orders WHERE customer_id",
			"Not explained", "202", `relation "gone" does not exist`,
			"Plan findings", "seq_scan", "Seq Scan on orders",
			"Indexes to create", "MEASURED %", "1", "public.orders", "customer_id, status", "total", "status <> 'done'",
			"87.5", "93.1 (180.0→12.5 ms, built in 840 ms)", "3.0 MiB", "rank 1: query 303 not measured: a write: not run twice",
			"Indexes to drop", "3", "unused", "1.0 GiB", "DROP INDEX CONCURRENTLY public.orders_status_idx",
			"Query rewrites", "2", "offset_pagination", "5400→120 (same rows)", "keyset pagination",
			"rank 2, suggested shape: SELECT * FROM orders WHERE",
			"Partitioning", "4", "public.events", "created_at",
			"Skipped candidates", "covered by orders_status_idx",
			"Notes", "left out 3 utility statements",
		}, []string{"none", "Other recommendations", "OFFSET $4"}},
		// Nothing found: every section is there and says none.
		{"empty", &Report{Database: "empty"}, []string{
			"since the server started", "Top queries by total time\n-------------------------\nnone",
			"Not explained\n-------------\nnone", "Plan findings\n-------------\nnone",
			"Indexes to create\n-----------------\nnone", "Indexes to drop\n---------------\nnone",
			"Query rewrites\n--------------\nnone", "Partitioning\n------------\nnone",
			"Skipped candidates\n------------------\nnone", "Notes\n-----\nnone",
		}, []string{"MEASURED", "Other recommendations"}},
		// An index not verified has no measured column; a kind the report
		// does not know is listed, not dropped.
		{"unverified and unknown kind", &Report{Recommendations: []Recommendation{
			{Kind: KindIndex, Table: "t", Columns: []string{"a"}, EstimatedImprovementPct: 40},
			{Kind: "vacuum", Table: "t", Reason: "bloat"},
		}}, []string{"Indexes to create", "40.0", "Other recommendations", "2", "vacuum", "bloat"}, []string{"MEASURED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.report.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing %q (in order) in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("has %q:\n%s", n, out)
				}
			}
		})
	}
}

// TestWriteTextQueryOneLine: a query's text is one line of at most 80
// characters in the table.
func TestWriteTextQueryOneLine(t *testing.T) {
	r := &Report{Queries: []*Query{{ID: 7, Text: "SELECT\n\t" + strings.Repeat("a_column, ", 50) + "b FROM t"}}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(line, "7 ") {
			continue
		}
		i := strings.Index(line, "SELECT a_column")
		if i < 0 {
			t.Fatalf("query line %q", line)
		}
		if n := utf8.RuneCountInString(line[i:]); n > 80 || !strings.HasSuffix(line, "…") {
			t.Errorf("query cell is %d runes: %q", n, line[i:])
		}
		return
	}
	t.Fatalf("no row for query 7:\n%s", b.String())
}

type failWriter struct{}

var errDiskFull = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// TestWriteTextError: the writer's error comes back wrapped, with what
// failed.
func TestWriteTextError(t *testing.T) {
	err := sampleReport().WriteText(failWriter{})
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "write the report") {
		t.Errorf("got %v, want the wrapped disk full", err)
	}
}

func TestMigrationSQL(t *testing.T) {
	sql := sampleReport().MigrationSQL()
	for _, w := range []string{
		"cannot run inside a\n-- transaction block",
		"-- #1 index on public.orders (est. 87.5 %): Seq Scan on orders filtered by customer_id\nCREATE INDEX CONCURRENTLY ON public.orders (customer_id, status) INCLUDE (total) WHERE status <> 'done';\n",
		"-- #2 rewrite on public.orders (est. 60.0 %)",
		"-- SELECT * FROM orders\n-- WHERE customer_id = $1 AND (created_at, id) < ($2, $3)\n-- ORDER BY created_at DESC, id DESC LIMIT $4;\n",
		"-- #3 drop_index on public.orders (est. 0.0 %): never scanned since the statistics were reset\nDROP INDEX CONCURRENTLY public.orders_status_idx;\n",
		"-- #4 partition on public.events (est. 30.0 %)",
		"CREATE TABLE public.events_new (LIKE public.events) PARTITION BY RANGE (created_at);\n",
	} {
		if !strings.Contains(sql, w) {
			t.Errorf("missing %q in:\n%s", w, sql)
		}
	}
	for _, line := range strings.Split(sql, "\n") {
		if strings.Contains(line, "keyset") || strings.Contains(line, "(created_at, id) <") {
			if !strings.HasPrefix(line, "--") {
				t.Errorf("rewrite not commented out: %q", line)
			}
		}
		if strings.Contains(line, ";;") {
			t.Errorf("double semicolon: %q", line)
		}
	}
	if got := (&Report{Database: "x"}).MigrationSQL(); !strings.Contains(got, "-- No changes advised.") {
		t.Errorf("empty report:\n%s", got)
	}
}

func TestRepStatement(t *testing.T) {
	for in, want := range map[string]string{
		"CREATE INDEX i ON t (a)":          "CREATE INDEX i ON t (a);",
		"CREATE INDEX i ON t (a);":         "CREATE INDEX i ON t (a);",
		"  DROP INDEX i ;; \n":             "DROP INDEX i;",
		"SELECT 1 -- trailing comment":     "SELECT 1 -- trailing comment\n;",
		" ; ":                              "",
		"a;\nb":                            "a;\nb;",
		"CREATE INDEX i ON t (a) -- note;": "CREATE INDEX i ON t (a) -- note\n;",
	} {
		if got := repStatement(in); got != want {
			t.Errorf("repStatement(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRepLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"a\n  b\tc", 80, "a b c"},
		{"abcdef", 6, "abcdef"},
		{"abcdefg", 6, "abcde…"},
		{"ab cdefg", 4, "ab…"},
		{"ééééé", 3, "éé…"},
		// Four-byte runes are cut between runes, never inside one.
		{"𝄞𝄞𝄞𝄞", 3, "𝄞𝄞…"},
		// A width under 1 is taken as 1, not a panic.
		{"abc", 0, "…"},
		{"abc", 1, "…"},
	} {
		if got := repLine(tc.in, tc.width); got != tc.want {
			t.Errorf("repLine(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
		if got := repLine(tc.in, tc.width); !utf8.ValidString(got) {
			t.Errorf("repLine(%q, %d) = %q is not valid UTF-8", tc.in, tc.width, got)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},             // zero prints as bytes
		{1023, "1023 B"},       // under a KiB stays in bytes
		{1536, "1.5 KiB"},      // fractions to a tenth
		{50069504, "47.8 MiB"}, // the planted orders_note
		{1<<20 - 1, "1.0 MiB"}, // 1023.999 KiB rounds up a unit, not to "1024.0 KiB"
		{3 << 40, "3.0 TiB"},   // large sizes step up
		{1 << 62, "4.0 EiB"},   // the largest unit
	} {
		if got := formatBytes(c.n); got != c.want {
			t.Errorf("formatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	// A cell shows "-" for an unknown size, else the same text.
	if repSize(0) != "-" || repSize(1536) != "1.5 KiB" {
		t.Errorf("repSize: %q, %q", repSize(0), repSize(1536))
	}
}

// TestWriteTextDropWriteMs: the "Indexes to drop" table shows the write
// time the lead fills in, and sizes as formatBytes prints them.
func TestWriteTextDropWriteMs(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	_, drops, _ := strings.Cut(b.String(), "Indexes to drop")
	drops, _, _ = strings.Cut(drops, "Query rewrites")
	if !strings.Contains(drops, "WRITE MS") {
		t.Fatalf("no WRITE MS column:\n%s", drops)
	}
	found := false
	for _, line := range strings.Split(drops, "\n") {
		if !strings.HasPrefix(line, "3 ") {
			continue
		}
		found = true
		if !strings.Contains(line, " 300.0 ") || !strings.Contains(line, "1.0 GiB") {
			t.Errorf("drop row lacks 300.0 ms or 1.0 GiB: %q", line)
		}
	}
	if !found {
		t.Errorf("no row for rank 3:\n%s", drops)
	}
}

// TestWriteTextBuildError: an index Verify could not build says so in the
// measured column instead of a gain.
func TestWriteTextBuildError(t *testing.T) {
	r := &Report{Recommendations: []Recommendation{{Kind: KindIndex, Table: "t", Columns: []string{"a"},
		SQL: "CREATE INDEX CONCURRENTLY x ON t (a);", EstimatedImprovementPct: 50, Effort: Low, Risk: Low,
		Measured: &Measurement{Error: "build failed: could not extend file"}}}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not built: build failed: could not extend file") {
		t.Errorf("the build error is not shown:\n%s", b.String())
	}
}
