package advisor

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Table is what the advisor knows of one user table: its size, its write
// traffic since the statistics were reset, its columns with their planner
// statistics, and its indexes.
type Table struct {
	Schema, Name string
	// Rows is the planner's row estimate (pg_class.reltuples).
	Rows float64
	// Bytes is the heap size, without indexes and TOAST.
	Bytes int64
	// Inserts, Updates, HotUpdates and Deletes count row writes since the
	// statistics were reset (pg_stat_user_tables).
	Inserts, Updates, HotUpdates, Deletes int64
	// SeqScans and SeqRowsRead count sequential scans and the rows they read.
	SeqScans, SeqRowsRead int64
	Columns               map[string]*Column
	Indexes               []*Index
}

// Column is one column of a table and its pg_stats row, if ANALYZE has run.
type Column struct {
	Name, Type string
	NotNull    bool
	// NDistinct is pg_stats.n_distinct: distinct values, or minus the
	// fraction of rows when negative (-1: unique).
	NDistinct   float64
	NullFrac    float64
	AvgWidth    int
	MostCommon  []string  // most_common_vals, as text
	MostFreqs   []float64 // most_common_freqs
	Histogram   []string  // histogram_bounds, as text
	Correlation float64
	HasStats    bool
}

// Distinct is the estimated number of distinct values in a table of rows.
func (c *Column) Distinct(rows float64) float64 {
	switch {
	case !c.HasStats:
		return 0
	case c.NDistinct < 0:
		return -c.NDistinct * rows
	default:
		return c.NDistinct
	}
}

// Index is one existing index.
type Index struct {
	Name string
	// Schema is the index's schema (its table's).
	Schema  string
	Table   string
	Method  string   // btree, gin, …
	Columns []string // key columns; an expression key is "(expr)"
	Include []string
	// Desc marks the key columns sorted descending.
	Desc      []bool
	Predicate string // the partial index's WHERE, or ""
	Unique    bool
	Primary   bool
	// Constraint names the constraint the index backs, or "".
	Constraint string
	Valid      bool
	Scans      int64
	Bytes      int64
	Def        string
}

// Catalog is the set of user tables of the database.
type Catalog struct {
	Tables map[string]*Table // by name; schema-qualified when not on the search path
	// StatsReset is when the table statistics were last reset, as text
	// ("" when never).
	StatsReset string
}

// Table returns the table named name (as a plan's "Relation Name" or a
// query's text spells it), or nil.
func (c *Catalog) Table(name string) *Table {
	if t, ok := c.Tables[name]; ok {
		return t
	}
	if _, n, ok := strings.Cut(name, "."); ok {
		return c.Tables[n]
	}
	return nil
}

// querier is what the catalog readers need: a *sql.DB or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// loadCatalog reads the user tables visible on the search path, their
// columns, statistics and indexes.
func loadCatalog(ctx context.Context, db querier) (*Catalog, error) {
	c := &Catalog{Tables: map[string]*Table{}}
	const tables = `
SELECT n.nspname, c.relname, GREATEST(c.reltuples, 0)::float8, pg_relation_size(c.oid),
       COALESCE(s.n_tup_ins, 0), COALESCE(s.n_tup_upd, 0), COALESCE(s.n_tup_hot_upd, 0),
       COALESCE(s.n_tup_del, 0), COALESCE(s.seq_scan, 0), COALESCE(s.seq_tup_read, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')`
	rows, err := db.QueryContext(ctx, tables)
	if err != nil {
		return nil, fmt.Errorf("advisor: read tables: %w", err)
	}
	for rows.Next() {
		t := &Table{Columns: map[string]*Column{}}
		if err := rows.Scan(&t.Schema, &t.Name, &t.Rows, &t.Bytes, &t.Inserts, &t.Updates,
			&t.HotUpdates, &t.Deletes, &t.SeqScans, &t.SeqRowsRead); err != nil {
			rows.Close()
			return nil, fmt.Errorf("advisor: read tables: %w", err)
		}
		c.Tables[t.Name] = t
	}
	if err := closeRows(rows, "read tables"); err != nil {
		return nil, err
	}
	if err := loadColumns(ctx, db, c); err != nil {
		return nil, err
	}
	if err := loadIndexes(ctx, db, c); err != nil {
		return nil, err
	}
	var reset sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()`).Scan(&reset); err != nil {
		return nil, fmt.Errorf("advisor: read statistics reset time: %w", err)
	}
	c.StatsReset = reset.String
	return c, nil
}

func closeRows(rows *sql.Rows, what string) error {
	err := rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("advisor: %s: %w", what, err)
	}
	return nil
}

func loadColumns(ctx context.Context, db querier, c *Catalog) error {
	const q = `
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       s.n_distinct IS NOT NULL, COALESCE(s.n_distinct, 0)::float8, COALESCE(s.null_frac, 0)::float8,
       COALESCE(s.avg_width, 0), COALESCE(s.most_common_vals::text, ''),
       COALESCE(s.most_common_freqs, '{}')::float8[]::text, COALESCE(s.histogram_bounds::text, ''),
       COALESCE(s.correlation, 0)::float8
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
WHERE c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid) AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("advisor: read columns: %w", err)
	}
	for rows.Next() {
		var table, mcv, mcf, hist string
		col := &Column{}
		if err := rows.Scan(&table, &col.Name, &col.Type, &col.NotNull, &col.HasStats, &col.NDistinct,
			&col.NullFrac, &col.AvgWidth, &mcv, &mcf, &hist, &col.Correlation); err != nil {
			rows.Close()
			return fmt.Errorf("advisor: read columns: %w", err)
		}
		col.MostCommon = parseArray(mcv)
		col.Histogram = parseArray(hist)
		for _, f := range parseArray(mcf) {
			var v float64
			fmt.Sscan(f, &v) //nolint:errcheck // PostgreSQL prints float8 values
			col.MostFreqs = append(col.MostFreqs, v)
		}
		if t := c.Tables[table]; t != nil {
			t.Columns[col.Name] = col
		}
	}
	return closeRows(rows, "read columns")
}

func loadIndexes(ctx context.Context, db querier, c *Catalog) error {
	const q = `
SELECT n.nspname, t.relname, i.relname, am.amname, x.indnkeyatts,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnatts) k ORDER BY k)::text,
       ARRAY(SELECT (x.indoption[k - 1] & 1) = 1 FROM generate_series(1, x.indnkeyatts) k ORDER BY k)::text,
       COALESCE(pg_get_expr(x.indpred, x.indrelid, true), ''), x.indisunique, x.indisprimary,
       COALESCE((SELECT conname FROM pg_constraint WHERE conindid = x.indexrelid LIMIT 1), ''),
       x.indisvalid, COALESCE(s.idx_scan, 0), pg_relation_size(x.indexrelid), pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
WHERE pg_table_is_visible(t.oid) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  -- a partitioned table's index, and each partition's index attached to
  -- it, are managed through the parent: never advised alone
  AND i.relkind = 'i' AND NOT i.relispartition
ORDER BY t.relname, i.relname`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("advisor: read indexes: %w", err)
	}
	for rows.Next() {
		var table string
		var nkey int
		var colsText, descText string
		ix := &Index{}
		if err := rows.Scan(&ix.Schema, &table, &ix.Name, &ix.Method, &nkey, &colsText, &descText, &ix.Predicate,
			&ix.Unique, &ix.Primary, &ix.Constraint, &ix.Valid, &ix.Scans, &ix.Bytes, &ix.Def); err != nil {
			rows.Close()
			return fmt.Errorf("advisor: read indexes: %w", err)
		}
		ix.Table = table
		cols, desc := parseArray(colsText), parseArray(descText)
		if nkey > len(cols) {
			nkey = len(cols)
		}
		ix.Columns, ix.Include = cols[:nkey], cols[nkey:]
		for _, d := range desc {
			ix.Desc = append(ix.Desc, d == "true" || d == "t")
		}
		if t := c.Tables[table]; t != nil {
			t.Indexes = append(t.Indexes, ix)
		}
	}
	return closeRows(rows, "read indexes")
}

// parseArray splits PostgreSQL's text form of a one-dimensional array
// ({a,"b c",NULL}) into its elements; NULL elements are dropped.
func parseArray(s string) []string {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil
	}
	s = s[1 : len(s)-1]
	var out []string
	var b strings.Builder
	quoted, inQuotes, escaped := false, false, false
	flush := func() {
		v := b.String()
		if quoted || v != "NULL" {
			out = append(out, v)
		}
		b.Reset()
		quoted = false
	}
	if s == "" {
		return nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case escaped:
			b.WriteByte(ch)
			escaped = false
		case ch == '\\':
			escaped = true
		case ch == '"':
			inQuotes = !inQuotes
			quoted = true
		case ch == ',' && !inQuotes:
			flush()
		default:
			b.WriteByte(ch)
		}
	}
	flush()
	return out
}
