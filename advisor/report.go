package advisor

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/strata-dev/strata/internal/sqltext"
)

// Widths to which the text report shortens free text.
const (
	repQueryWidth  = 80  // a query's text in a table
	repReasonWidth = 160 // a reason or a detail in a table
	repSQLWidth    = 120 // a statement in a table
	repNoteWidth   = 300 // a line of its own (skipped candidates, notes)
	repNameWidth   = 60  // a table's name, a WHERE clause, a check's note
	repWordWidth   = 30  // a rule's or a kind's name
	repParamWidth  = 40  // where a query's parameters came from
	repListWidth   = 80  // a list of column names
	repShortQuery  = 60  // a query's text beside a long reason
	repShownIDs    = 4   // queryids listed in a cell before "+N more"
)

// WriteText writes the report for a terminal: a header, then one table per
// section (top queries, queries that could not be explained, plan
// findings, each kind of recommendation, skipped candidates, notes). An
// empty section says "none". Recommendations keep their order (their
// rank) and are numbered across all kinds, as MigrationSQL numbers them.
func (r *Report) WriteText(w io.Writer) error {
	ew := &repErrWriter{w: w}
	r.writeHeader(ew)
	r.writeQueries(ew)
	r.writeUnexplained(ew)
	r.writeFindings(ew)
	r.writeIndexes(ew)
	r.writeDrops(ew)
	r.writeRewrites(ew)
	r.writePartitions(ew)
	r.writeOther(ew)
	repWriteList(ew, "Skipped candidates", r.Skipped)
	repWriteList(ew, "Notes", r.Notes)
	if ew.err != nil {
		return fmt.Errorf("advisor: write the report: %w", ew.err)
	}
	return nil
}

// repErrWriter keeps the first write error, so that the report's many writes
// need no check each.
type repErrWriter struct {
	w   io.Writer
	err error
}

func (e *repErrWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (r *Report) writeHeader(w io.Writer) {
	window := "since the server started (statistics never reset)"
	if r.StatsReset != "" {
		window = "since " + repLine(r.StatsReset, repNoteWidth)
	}
	fmt.Fprintf(w, "Query advice for database %s\n", repLine(r.Database, repNoteWidth))
	tw := repTable(w)
	fmt.Fprintf(tw, "  at\t%s\n", r.At.Format(time.RFC3339))
	fmt.Fprintf(tw, "  statistics window\t%s\n", window)
	fmt.Fprintf(tw, "  elapsed\t%s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "  statements read\t%d\n", len(r.Queries))
	fmt.Fprintf(tw, "  recommendations\t%d\n", len(r.Recommendations))
	_ = tw.Flush() // an error stays in w
}

// repSection writes a section's title and returns a table for its rows, or
// nil after writing "none" when it has none.
func repSection(w io.Writer, title string, n int, columns string) *tabwriter.Writer {
	fmt.Fprintf(w, "\n%s\n%s\n", title, strings.Repeat("-", utf8.RuneCountInString(title)))
	if n == 0 {
		fmt.Fprintln(w, "none")
		return nil
	}
	tw := repTable(w)
	fmt.Fprintln(tw, columns)
	return tw
}

func repTable(w io.Writer) *tabwriter.Writer {
	const gap = 2 // spaces between columns
	return tabwriter.NewWriter(w, 0, 0, gap, ' ', 0)
}

func (r *Report) writeQueries(w io.Writer) {
	tw := repSection(w, "Top queries by total time", len(r.Queries),
		"QUERYID\tCALLS\tTOTAL MS\tMEAN MS\tROWS\tBLKS READ\tSLOW\tPARAMETERS\tQUERY")
	if tw == nil {
		return
	}
	for _, q := range r.Queries {
		slow := ""
		if q.Slow {
			slow = "SLOW"
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.2f\t%d\t%d\t%s\t%s\t%s\n", q.ID, q.Calls, q.TotalMs, q.MeanMs,
			q.Rows, q.SharedBlksRead, slow, repDash(repLine(q.ParamSource, repParamWidth)), repLine(q.Text, repQueryWidth))
	}
	_ = tw.Flush()
}

func (r *Report) writeUnexplained(w io.Writer) {
	var qs []*Query
	for _, q := range r.Queries {
		if q.Unexplained != "" {
			qs = append(qs, q)
		}
	}
	tw := repSection(w, "Not explained", len(qs), "QUERYID\tREASON\tQUERY")
	if tw == nil {
		return
	}
	for _, q := range qs {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", q.ID, repLine(q.Unexplained, repNoteWidth), repLine(q.Text, repShortQuery))
	}
	_ = tw.Flush()
}

func (r *Report) writeFindings(w io.Writer) {
	tw := repSection(w, "Plan findings", len(r.Findings), "QUERYID\tKIND\tTABLE\tDETAIL")
	if tw == nil {
		return
	}
	for _, f := range r.Findings {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", f.QueryID, repLine(f.Kind, repWordWidth), repDash(repLine(f.Table, repNameWidth)), repLine(f.Detail, repReasonWidth))
	}
	_ = tw.Flush()
}

// repRanked is a recommendation with its rank, 1 first.
type repRanked struct {
	rank int
	*Recommendation
}

// recsOfKind returns the recommendations of kind, with their ranks.
func (r *Report) recsOfKind(kind string) []repRanked {
	var out []repRanked
	for i := range r.Recommendations {
		if r.Recommendations[i].Kind == kind {
			out = append(out, repRanked{i + 1, &r.Recommendations[i]})
		}
	}
	return out
}

func (r *Report) writeIndexes(w io.Writer) {
	recs := r.recsOfKind(KindIndex)
	measured := false
	for _, x := range recs {
		measured = measured || x.Measured != nil
	}
	cols := "RANK\tTABLE\tCOLUMNS\tINCLUDE\tWHERE\tEST %\t"
	if measured {
		cols += "MEASURED %\t"
	}
	tw := repSection(w, "Indexes to create", len(recs), cols+"SAVED MS\tWRITE MS\tSIZE\tEFFORT\tRISK\tQUERIES")
	if tw == nil {
		return
	}
	var skipped []string
	for _, x := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.1f\t", x.rank, repLine(x.Table, repNameWidth), repDash(repList(x.Columns)),
			repDash(repList(x.Include)), repDash(repLine(x.Where, repNameWidth)), x.EstimatedImprovementPct)
		if measured {
			fmt.Fprintf(tw, "%s\t", repMeasured(x.Measured))
		}
		fmt.Fprintf(tw, "%.1f\t%.1f\t%s\t%s\t%s\t%s\n", x.SavedMs, x.WriteCostMs, repSize(x.SizeBytes),
			repDash(x.Effort), repDash(x.Risk), repIDs(x.Queries))
		if x.Measured != nil {
			for _, id := range repSortedIDs(x.Measured.Skipped) {
				skipped = append(skipped, fmt.Sprintf("rank %d: query %d not measured: %s", x.rank, id, repLine(x.Measured.Skipped[id], repReasonWidth)))
			}
		}
	}
	_ = tw.Flush()
	for _, s := range skipped {
		fmt.Fprintln(w, s)
	}
}

// repMeasured is a verified index's measured gain, with the times behind
// it and its build time.
func repMeasured(m *Measurement) string {
	if m == nil {
		return "-"
	}
	if m.Error != "" {
		return "not built: " + repLine(m.Error, repReasonWidth)
	}
	return fmt.Sprintf("%.1f (%.1f→%.1f ms, built in %.0f ms)", m.ImprovementPct, m.BeforeMs, m.AfterMs, m.BuildMs)
}

func (r *Report) writeDrops(w io.Writer) {
	recs := r.recsOfKind(KindDropIndex)
	tw := repSection(w, "Indexes to drop", len(recs), "RANK\tTABLE\tCOLUMNS\tRULE\tSIZE\tWRITE MS\tEFFORT\tRISK\tSQL\tREASON")
	if tw == nil {
		return
	}
	for _, x := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n", x.rank, repLine(x.Table, repNameWidth), repDash(repList(x.Columns)),
			repDash(repLine(x.Rule, repWordWidth)), repSize(x.SizeBytes), x.WriteCostMs, repDash(x.Effort), repDash(x.Risk),
			repDash(repLine(x.SQL, repSQLWidth)), repLine(x.Reason, repReasonWidth))
	}
	_ = tw.Flush()
}

func (r *Report) writeRewrites(w io.Writer) {
	recs := r.recsOfKind(KindRewrite)
	tw := repSection(w, "Query rewrites", len(recs), "RANK\tRULE\tTABLE\tEST %\tCHECKED COST\tEFFORT\tRISK\tQUERIES\tREASON")
	if tw == nil {
		return
	}
	for _, x := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", x.rank, repDash(repLine(x.Rule, repWordWidth)), repDash(repLine(x.Table, repNameWidth)),
			x.EstimatedImprovementPct, repCheck(x.Checked), repDash(x.Effort), repDash(x.Risk), repIDs(x.Queries),
			repLine(x.Reason, repReasonWidth))
	}
	_ = tw.Flush()
	for _, x := range recs {
		if x.SQL != "" {
			fmt.Fprintf(w, "rank %d, suggested shape: %s\n", x.rank, repLine(x.SQL, repNoteWidth))
		}
	}
}

// repCheck is a checked rewrite's planner cost before and after, and
// whether both forms returned the same rows when that was checked.
func repCheck(c *Check) string {
	if c == nil {
		return "-"
	}
	s := fmt.Sprintf("%.0f→%.0f", c.CostBefore, c.CostAfter)
	switch {
	case c.SameRows == nil:
	case *c.SameRows:
		s += " (same rows)"
	default:
		s += " (ROWS DIFFER)"
	}
	if c.Note != "" {
		s += " " + repLine(c.Note, repNameWidth)
	}
	return s
}

func (r *Report) writePartitions(w io.Writer) {
	recs := r.recsOfKind(KindPartition)
	tw := repSection(w, "Partitioning", len(recs), "RANK\tTABLE\tCOLUMNS\tEST %\tEFFORT\tRISK\tQUERIES\tREASON")
	if tw == nil {
		return
	}
	for _, x := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n", x.rank, repLine(x.Table, repNameWidth), repDash(repList(x.Columns)),
			x.EstimatedImprovementPct, repDash(x.Effort), repDash(x.Risk), repIDs(x.Queries), repLine(x.Reason, repReasonWidth))
	}
	_ = tw.Flush()
}

// writeOther lists recommendations of a kind this report does not know,
// so that none is dropped silently; it writes nothing when there are none.
func (r *Report) writeOther(w io.Writer) {
	var recs []repRanked
	for i := range r.Recommendations {
		if !repKnownKind(r.Recommendations[i].Kind) {
			recs = append(recs, repRanked{i + 1, &r.Recommendations[i]})
		}
	}
	if len(recs) == 0 {
		return
	}
	tw := repSection(w, "Other recommendations", len(recs), "RANK\tKIND\tTABLE\tEST %\tEFFORT\tRISK\tREASON")
	for _, x := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%s\t%s\n", x.rank, repLine(x.Kind, repWordWidth), repDash(repLine(x.Table, repNameWidth)),
			x.EstimatedImprovementPct, repDash(x.Effort), repDash(x.Risk), repLine(x.Reason, repReasonWidth))
	}
	_ = tw.Flush()
}

func repKnownKind(k string) bool {
	return k == KindIndex || k == KindDropIndex || k == KindRewrite || k == KindPartition
}

// repWriteList writes a section of one-line items.
func repWriteList(w io.Writer, title string, items []string) {
	fmt.Fprintf(w, "\n%s\n%s\n", title, strings.Repeat("-", utf8.RuneCountInString(title)))
	if len(items) == 0 {
		fmt.Fprintln(w, "none")
		return
	}
	for _, s := range items {
		fmt.Fprintf(w, "- %s\n", repLine(s, repNoteWidth))
	}
}

// MigrationSQL returns the migration that applies the advice, in rank
// order: for each index to create or drop and each table to partition, a
// comment (rank, kind, table, estimated improvement, reason) and its
// statement; rewrites, which are changes to the application's code, are
// commented out whole. Each statement ends with exactly one ";".
func (r *Report) MigrationSQL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Migration advised by strata advise for database %s at %s.\n",
		repLine(r.Database, repNoteWidth), r.At.Format(time.RFC3339))
	b.WriteString("-- Statements are in rank order; review each before applying it.\n")
	b.WriteString("-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a\n")
	b.WriteString("-- transaction block: run this file statement by statement in autocommit mode\n")
	b.WriteString("-- (psql -f does; not psql --single-transaction, not inside BEGIN ... COMMIT).\n")
	b.WriteString("-- Query rewrites are changes to the application's code: they are commented out.\n")
	if len(r.Recommendations) == 0 {
		b.WriteString("\n-- No changes advised.\n")
		return b.String()
	}
	for i := range r.Recommendations {
		rec := &r.Recommendations[i]
		fmt.Fprintf(&b, "\n-- #%d %s on %s (est. %.1f %%): %s\n", i+1, repLine(rec.Kind, repWordWidth), repDash(repLine(rec.Table, repNameWidth)),
			rec.EstimatedImprovementPct, repLine(rec.Reason, repReasonWidth))
		stmt := repStatement(rec.SQL)
		switch {
		case stmt == "":
			b.WriteString("-- (no statement given)\n")
		case rec.Kind == KindRewrite || !repKnownKind(rec.Kind):
			if rec.Kind == KindRewrite {
				b.WriteString("-- A code change, not applied here; the suggested shape:\n")
			}
			for _, line := range strings.Split(stmt, "\n") {
				b.WriteString("-- " + line + "\n")
			}
		default:
			b.WriteString(stmt + "\n")
		}
	}
	return b.String()
}

// repStatement trims s and ends it with exactly one ";" (on a line of its
// own when the last line holds a comment, which would swallow it). It
// returns "" for an empty statement.
func repStatement(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "; \t\r\n")
	if s == "" {
		return ""
	}
	last := s[strings.LastIndexByte(s, '\n')+1:]
	if strings.Contains(last, "--") {
		return s + "\n;"
	}
	return s + ";"
}

// repLine collapses s's white space (newlines included) to single spaces
// and shortens it to at most width runes (at least 1), ending in "…" when
// cut. It cuts between runes, never inside one. (session.go's clip is not
// the same cut: it keeps n runes and adds the "…", one over the width, and
// keeps a trailing space.)
func repLine(s string, width int) string {
	width = max(width, 1)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	rs := []rune(s)
	return strings.TrimRight(string(rs[:width-1]), " ") + "…"
}

// repDash stands in for an empty cell.
func repDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// repList joins names for a cell.
func repList(names []string) string {
	return repLine(strings.Join(names, ", "), repListWidth)
}

// repIDs lists the first few queryids and counts the rest.
func repIDs(ids []int64) string {
	if len(ids) == 0 {
		return "-"
	}
	var parts []string
	for i, id := range ids {
		if i == repShownIDs {
			parts = append(parts, fmt.Sprintf("+%d more", len(ids)-repShownIDs))
			break
		}
		parts = append(parts, strconv.FormatInt(id, 10))
	}
	return strings.Join(parts, ", ")
}

// repSortedIDs returns a map's queryids in ascending order.
func repSortedIDs(m map[int64]string) []int64 {
	return slices.Sorted(maps.Keys(m))
}

// repSize is a size for a cell: formatBytes, or "-" when unknown (0).
func repSize(n int64) string {
	if n <= 0 {
		return "-"
	}
	return formatBytes(n)
}

// formatBytes prints a byte count in binary units (sqltext.Bytes).
func formatBytes(n int64) string { return sqltext.Bytes(n) }
