package shard

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults and limits of Verify.
const (
	// DefaultVerifyChunk is the number of rows Verify reads at a time on
	// each side when VerifyConfig.Chunk is 0.
	DefaultVerifyChunk = 10_000
	// DefaultVerifyRetries is how many times Verify reads differing rows
	// again when VerifyConfig.Retries is 0.
	DefaultVerifyRetries = 3
	// DefaultVerifyRetryWait is the pause before each of those reads when
	// VerifyConfig.RetryWait is 0.
	DefaultVerifyRetryWait = 250 * time.Millisecond
	// MaxVerifyDiffs is the most differing rows a VerifyReport lists; past
	// it the report is Truncated, and only the per-virtual-shard counts of
	// differing rows (VShardCheck.Diffs) go on growing.
	MaxVerifyDiffs = 1000
)

// VerifyConfig holds the optional settings of Verify; its zero value means
// the defaults.
type VerifyConfig struct {
	// Chunk is the number of rows read at a time on each side, in the
	// range or not (DefaultVerifyChunk when 0): a chunk is a span of the
	// shard key, and the rows of other virtual shards in that span are
	// read and skipped. All the rows of one shard key are in the same
	// chunk, so a key with more rows makes a larger chunk.
	Chunk int
	// Retries is how many times rows found different are read again, after
	// RetryWait each time, before they are reported (DefaultVerifyRetries
	// when 0; a negative value means none).
	Retries int
	// RetryWait is the pause before each new read of differing rows
	// (DefaultVerifyRetryWait when 0).
	RetryWait time.Duration
	// From, when not nil, is the report of an interrupted Verify of the
	// same table, range and keyspace (passed to OnChunk, or returned with
	// an error): Verify continues after its Next cursor and adds to its
	// counts and differences, so the final report is the one an
	// uninterrupted run gives. From is not modified.
	From *VerifyReport
	// OnChunk, when not nil, is called after each chunk with a copy of the
	// report so far, the caller's to keep: persisting it is what lets a
	// restarted Verify resume (pass it as From). It runs on Verify's
	// goroutine; cancelling Verify's context from it stops Verify before
	// the next chunk.
	OnChunk func(progress *VerifyReport)

	// sleep waits d or until ctx ends (time seam: tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

// VerifyCursor is the position of a verify in its walk over the shard key.
type VerifyCursor struct {
	// After is the last shard key compared: every row of the range whose
	// key is at most After has been compared, and the walk continues with
	// the keys above it.
	After int64 `json:"after"`
}

// VerifyReport is the result of Verify, or its progress so far. It
// encodes as JSON, so a mover can keep it in its control schema and
// resume from it.
type VerifyReport struct {
	// Table, Range and N (the number of virtual shards of the keyspace)
	// are what was verified.
	Table Table  `json:"table"`
	Range VRange `json:"range"`
	N     int    `json:"n"`
	// Identity names the columns that identify a row (the primary key, or
	// else the replica identity index), in the order of RowDiff.PK.
	Identity []string `json:"identity"`
	// Shards has one entry per virtual shard of Range, in order.
	Shards []VShardCheck `json:"shards"`
	// Diffs lists the differing rows found, by shard key and then primary
	// key, at most MaxVerifyDiffs of them.
	Diffs []RowDiff `json:"diffs"`
	// Truncated is set when more rows differ than Diffs lists.
	Truncated bool `json:"truncated"`
	// Next is where the walk continues: nil before the first chunk and once
	// Done.
	Next *VerifyCursor `json:"next,omitempty"`
	// Done is set once the whole range has been compared.
	Done bool `json:"done"`
	// Chunks is the number of chunks compared.
	Chunks int `json:"chunks"`
	// Rechecks is the number of new reads of differing rows (see
	// VerifyConfig.Retries), a sign of writes in flight.
	Rechecks int `json:"rechecks"`
	// Rows is the number of source rows compared.
	Rows int64 `json:"rows"`
	// Elapsed is the time spent comparing, over every run that resumed.
	Elapsed time.Duration `json:"elapsed"`
	// RowsPerSecond is Rows divided by Elapsed.
	RowsPerSecond float64 `json:"rows_per_second"`
}

// VShardCheck is the comparison of one virtual shard.
type VShardCheck struct {
	VShard int `json:"vshard"`
	// SourceRows and TargetRows count the virtual shard's rows on each
	// side.
	SourceRows int64 `json:"source_rows"`
	TargetRows int64 `json:"target_rows"`
	// Diffs counts its differing rows, listed in VerifyReport.Diffs or not.
	Diffs int64 `json:"diffs"`
	// Match is true when no row differs (and so the counts are equal).
	Match bool `json:"match"`
}

// DiffKind says how a row differs between source and target.
type DiffKind string

// Kinds of difference.
const (
	// DiffMissing is a source row that the target lacks.
	DiffMissing DiffKind = "missing"
	// DiffExtra is a target row that the source lacks.
	DiffExtra DiffKind = "extra"
	// DiffChanged is a row on both sides with different contents.
	DiffChanged DiffKind = "changed"
)

// RowDiff is one row that differs between source and target.
type RowDiff struct {
	VShard int `json:"vshard"`
	// Key is the row's shard key (the source's, for a changed row).
	Key int64 `json:"key"`
	// PK holds the row's identity columns (VerifyReport.Identity) as
	// PostgreSQL prints them.
	PK   []string `json:"pk"`
	Kind DiffKind `json:"kind"`
	// Columns names, for a changed row, the columns that differ.
	Columns []string `json:"columns,omitempty"`
}

// Clean reports whether the verify is complete and found no difference.
func (rep *VerifyReport) Clean() bool {
	if !rep.Done || rep.Truncated || len(rep.Diffs) > 0 {
		return false
	}
	for _, s := range rep.Shards {
		if !s.Match {
			return false
		}
	}
	return true
}

// clone copies rep deeply enough that neither side sees the other's
// changes.
func (rep *VerifyReport) clone() *VerifyReport {
	c := *rep
	c.Identity = slices.Clone(rep.Identity)
	c.Shards = slices.Clone(rep.Shards)
	c.Diffs = make([]RowDiff, len(rep.Diffs))
	for i, d := range rep.Diffs {
		d.PK = slices.Clone(d.PK)
		d.Columns = slices.Clone(d.Columns)
		c.Diffs[i] = d
	}
	if rep.Next != nil {
		n := *rep.Next
		c.Next = &n
	}
	return &c
}

// Verify compares the rows of table t in the virtual shards r (of a
// keyspace of n) on source and target, the last step before a move's
// cutover (Vitess's VDiff is the model). It reports, per virtual shard,
// the row counts on each side and whether they match, and lists every
// differing row by its key: missing on the target, extra on the target,
// or changed (with the columns that differ). Rows outside r are ignored.
//
// # Checksums
//
// The comparison runs inside PostgreSQL. Each row is hashed as
//
//	hashtextextended(ROW(col1, col2, ...)::text COLLATE "C", 0)
//
// over every column of the source table, named (so the target may order
// its columns differently or have more of them). The text form of a
// record keeps every column's value exactly as PostgreSQL prints it: a
// NULL and an empty string differ ((1,) against (1,"")), as do timestamps
// a microsecond apart or numerics of different scale. A chunk's checksum
// is count(*) and bit_xor of its row hashes: xor does not depend on the
// order rows are read in, and unlike a sum of bigints it cannot overflow
// (a numeric sum would be exact too, but allocates per row). A xor misses
// a difference only when the hashes of the differing rows cancel out, a
// chance of about 2^-64 for distinct rows (their identities differ, so
// their texts do); a row duplicated whole, which cancels itself, changes
// the count. Text output depends on session settings, so every
// comparison runs in a read-only transaction that pins them (TimeZone UTC,
// DateStyle ISO, IntervalStyle postgres, extra_float_digits 1,
// bytea_output hex, lc_monetary C). Both servers must use the same
// server encoding and print types alike (the same major version, or
// versions whose output functions agree).
//
// # Chunks
//
// Verify walks the shard key in ascending order, in chunks of cfg.Chunk
// rows. A chunk's upper bound is the key of the Chunk-th row after the
// previous one, read from the key's index (ORDER BY key OFFSET) on both
// sides, the smaller of the two: so a target that owns other virtual
// shards, or holds many extra rows, cannot make a chunk huge. The bound
// counts every row, not only those of r: the planner cannot estimate how
// many rows a virtual-shard filter keeps, and with it would sort the rest
// of the table for every chunk; without an index on the virtual-shard
// expression each chunk reads every row of its key span anyway, so the
// cost of a verify is a scan of the table whatever the range. For each
// chunk Verify compares count and checksum per virtual shard on both
// sides at once; for a virtual shard that differs it reads the chunk's
// rows of that virtual shard (identity and a hash per column) from both
// sides and lists the rows that differ. Every chunk is a few short
// statements, so Verify can run while writes continue.
//
// # Writes in flight
//
// While the target catches up, a row can differ only because its change
// has not been replayed yet. Rows found different are read again
// cfg.Retries times, after cfg.RetryWait each time, and only the rows
// that still differ are reported. That absorbs replication lag, not a
// stream of changes to the same rows: the verify that decides a cutover
// must run with writes to r fenced, or after the target has replayed the
// source's position.
//
// # Resuming
//
// After each chunk Verify calls cfg.OnChunk with the report so far, whose
// Next cursor is where it stands. Passing a saved report as cfg.From
// resumes there, and gives the final report an uninterrupted run would
// (for data that did not change meanwhile). When the context ends or a
// query fails, Verify returns the report as of the last complete chunk
// together with the error; errors name the side (source or target) that
// failed. Errors before the first chunk come with a nil report: invalid
// arguments, a table or column missing on either side, or a table with
// neither a primary key nor a replica identity index, as ErrBadMove.
func Verify(ctx context.Context, source, target *sql.DB, t Table, r VRange, n int, cfg VerifyConfig) (*VerifyReport, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: verify: %d virtual shards, want at least 1", ErrBadMove, n)
	}
	if err := r.Check(n); err != nil {
		return nil, err
	}
	if t.Name == "" || t.Key == "" {
		return nil, fmt.Errorf("%w: verify: table %q with key %q: want both", ErrBadMove, t.Name, t.Key)
	}
	if source == nil || target == nil {
		return nil, fmt.Errorf("%w: verify %s: a nil source or target", ErrBadMove, t.Name)
	}
	if cfg.Chunk < 0 {
		return nil, fmt.Errorf("%w: verify %s: Chunk %d, want 0 (the default) or more", ErrBadMove, t.Name, cfg.Chunk)
	}
	if cfg.Chunk == 0 {
		cfg.Chunk = DefaultVerifyChunk
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultVerifyRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultVerifyRetryWait
	}
	if cfg.sleep == nil {
		cfg.sleep = sleepContext
	}

	v := &verifier{
		src: verifySide{name: "source", db: source},
		tgt: verifySide{name: "target", db: target},
		t:   t, r: r, n: n, cfg: cfg,
	}
	if err := v.plan(ctx); err != nil {
		return nil, err
	}

	var rep *VerifyReport
	if from := cfg.From; from != nil {
		if from.Table != t || from.Range != r || from.N != n || len(from.Shards) != r.Len() {
			return nil, fmt.Errorf("%w: verify %s: From is a report of %s %s of %d, not %s of %d",
				ErrBadMove, t.Name, from.Table.Name, from.Range, from.N, r, n)
		}
		rep = from.clone()
		rep.Identity = slices.Clone(v.identity)
	} else {
		rep = &VerifyReport{Table: t, Range: r, N: n, Identity: slices.Clone(v.identity), Diffs: []RowDiff{}}
		rep.Shards = make([]VShardCheck, r.Len())
		for i := range rep.Shards {
			rep.Shards[i] = VShardCheck{VShard: r.Lo + i, Match: true}
		}
	}

	start, base := time.Now(), rep.Elapsed
	for !rep.Done {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("shard: verify %s: %w", t.Name, err)
		}
		var lo *int64
		if rep.Next != nil {
			lo = &rep.Next.After
		}
		hi, err := v.boundary(ctx, lo)
		if err != nil {
			return rep, err
		}
		res, err := v.chunk(ctx, lo, hi)
		if err != nil {
			return rep, err
		}
		v.apply(rep, res)
		if hi == nil {
			rep.Done, rep.Next = true, nil
		} else {
			rep.Next = &VerifyCursor{After: *hi}
		}
		rep.Chunks++
		rep.Elapsed = base + time.Since(start)
		if s := rep.Elapsed.Seconds(); s > 0 {
			rep.RowsPerSecond = float64(rep.Rows) / s
		}
		if cfg.OnChunk != nil {
			cfg.OnChunk(rep.clone())
		}
	}
	return rep, nil
}

// sleepContext waits d, or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// verifySide is one of the two databases Verify compares.
type verifySide struct {
	name string // "source" or "target", for errors
	db   *sql.DB
}

// pinOutput sets, for the transaction, every setting that changes how
// values are printed as text, so both sides print the same row alike.
const pinOutput = `SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
	set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),
	set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true)`

// query runs q, calling scan for each row.
func (s verifySide) query(ctx context.Context, table, q string, args []any, scan func(*sql.Rows) error) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return s.fail(table, err)
	}
	return s.scan(table, rows, scan)
}

// read runs q in a read-only transaction with pinned output settings,
// calling scan for each row.
func (s verifySide) read(ctx context.Context, table, q string, args []any, scan func(*sql.Rows) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.fail(table, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	if _, err := tx.ExecContext(ctx, pinOutput); err != nil {
		return s.fail(table, err)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return s.fail(table, err)
	}
	return s.scan(table, rows, scan)
}

// scan calls f for each of rows, and closes them.
func (s verifySide) scan(table string, rows *sql.Rows, scan func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return s.fail(table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(table, err)
	}
	return nil
}

// fail wraps err, naming the table and the side.
func (s verifySide) fail(table string, err error) error {
	return fmt.Errorf("shard: verify %s on %s: %w", table, s.name, err)
}

// verifyBoth runs f for source and target at once and returns the first
// error (the source's when both fail).
func verifyBoth(ctx context.Context, src, tgt verifySide, f func(ctx context.Context, s verifySide, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := f(ctx, tgt, 1)
		if err != nil {
			cancel()
		}
		errc <- err
	}()
	err := f(ctx, src, 0)
	if err != nil {
		cancel()
	}
	if terr := <-errc; err == nil {
		err = terr
	}
	return err
}

// verifier holds one Verify's arguments and the SQL it built for them.
type verifier struct {
	src, tgt verifySide
	t        Table
	r        VRange
	n        int
	cfg      VerifyConfig

	cols     []string // the source's columns, compared by name
	identity []string // the identity columns, in index order

	from     string // the quoted table, aliased t
	key      string // the quoted key column, qualified by t
	vshard   string // its virtual shard
	inRange  string // true for rows of r
	rowHash  string // the row's hash
	identTxt string // the identity columns as text, comma-separated
	digest   string // the hash of each column, comma-separated, - for NULL
}

// plan reads the table's columns and identity from the catalog and builds
// the SQL.
func (v *verifier) plan(ctx context.Context) error {
	qname := pgx.Identifier{v.t.Name}.Sanitize()
	srcCols, err := v.src.columns(ctx, v.t.Name, qname)
	if err != nil {
		return err
	}
	tgtCols, err := v.tgt.columns(ctx, v.t.Name, qname)
	if err != nil {
		return err
	}
	if !slices.Contains(srcCols, v.t.Key) {
		return fmt.Errorf("%w: verify %s: no key column %q on source", ErrBadMove, v.t.Name, v.t.Key)
	}
	for _, c := range srcCols {
		if !slices.Contains(tgtCols, c) {
			return fmt.Errorf("%w: verify %s: column %q of the source is missing on target", ErrBadMove, v.t.Name, c)
		}
	}
	v.cols = srcCols
	err = v.src.query(ctx, v.t.Name, `SELECT a.attname
		FROM (SELECT i.indrelid, i.indkey FROM pg_index i
			WHERE i.indrelid = to_regclass($1) AND (i.indisprimary OR i.indisreplident)
			ORDER BY i.indisprimary DESC LIMIT 1) i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		ORDER BY k.ord`, []any{qname}, func(rows *sql.Rows) error {
		var c string
		err := rows.Scan(&c)
		v.identity = append(v.identity, c)
		return err
	})
	if err != nil {
		return err
	}
	if len(v.identity) == 0 {
		return fmt.Errorf("%w: verify %s: no primary key or replica identity index on source to name rows by", ErrBadMove, v.t.Name)
	}

	col := func(c string) string { return "t." + pgx.Identifier{c}.Sanitize() }
	v.from = qname + " AS t"
	v.key = col(v.t.Key)
	v.vshard = VirtualShardSQL(v.key, v.n)
	v.inRange = v.r.SQL(v.key, v.n)
	all := make([]string, len(v.cols))
	hashes := make([]string, len(v.cols))
	for i, c := range v.cols {
		all[i] = col(c)
		hashes[i] = fmt.Sprintf(`hashtextextended(%s::text COLLATE "C", 0)`, col(c))
	}
	v.rowHash = fmt.Sprintf(`hashtextextended(ROW(%s)::text COLLATE "C", 0)`, strings.Join(all, ", "))
	v.digest = fmt.Sprintf(`array_to_string(ARRAY[%s]::bigint[], ',', '-')`, strings.Join(hashes, ", "))
	ids := make([]string, len(v.identity))
	for i, c := range v.identity {
		ids[i] = col(c) + "::text"
	}
	v.identTxt = strings.Join(ids, ", ")
	return nil
}

// columns lists the table's columns on s, in their order.
func (s verifySide) columns(ctx context.Context, table, qname string) ([]string, error) {
	var cols []string
	err := s.query(ctx, table, `SELECT attname FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
		[]any{qname}, func(rows *sql.Rows) error {
			var c string
			err := rows.Scan(&c)
			cols = append(cols, c)
			return err
		})
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, s.fail(table, fmt.Errorf("%w: no table %s in the search path", ErrBadMove, qname))
	}
	return cols, nil
}

// where is the condition for the rows of r with a key in (lo, hi] (an
// absent bound is no bound), in the virtual shards vs and with a key in
// keys when they are given, and its arguments.
func (v *verifier) where(lo, hi *int64, vs []int, keys []int64) (string, []any) {
	conds := []string{v.inRange}
	var args []any
	if lo != nil {
		args = append(args, *lo)
		conds = append(conds, fmt.Sprintf("%s > $%d", v.key, len(args)))
	}
	if hi != nil {
		args = append(args, *hi)
		conds = append(conds, fmt.Sprintf("%s <= $%d", v.key, len(args)))
	}
	if vs != nil {
		list := make([]string, len(vs))
		for i, s := range vs {
			list[i] = strconv.Itoa(s)
		}
		conds = append(conds, fmt.Sprintf("%s IN (%s)", v.vshard, strings.Join(list, ", ")))
	}
	if keys != nil {
		args = append(args, keys)
		conds = append(conds, fmt.Sprintf("%s = ANY($%d::bigint[])", v.key, len(args)))
	}
	return strings.Join(conds, " AND "), args
}

// boundary returns the upper bound of the chunk after lo: the smaller of
// the keys of the Chunk-th row after lo on each side (in r or not), or nil
// when neither side has that many rows left (the last chunk).
func (v *verifier) boundary(ctx context.Context, lo *int64) (*int64, error) {
	q := fmt.Sprintf("SELECT (%s)::bigint FROM %s", v.key, v.from)
	var args []any
	if lo != nil {
		q += fmt.Sprintf(" WHERE %s > $1", v.key)
		args = append(args, *lo)
	} else {
		q += fmt.Sprintf(" WHERE %s IS NOT NULL", v.key)
	}
	q += fmt.Sprintf(" ORDER BY %s OFFSET %d LIMIT 1", v.key, v.cfg.Chunk-1)
	var keys [2]*int64
	err := verifyBoth(ctx, v.src, v.tgt, func(ctx context.Context, s verifySide, i int) error {
		return s.query(ctx, v.t.Name, q, args, func(rows *sql.Rows) error {
			var k int64
			keys[i] = &k
			return rows.Scan(&k)
		})
	})
	if err != nil {
		return nil, err
	}
	switch {
	case keys[0] == nil:
		return keys[1], nil
	case keys[1] == nil || *keys[0] <= *keys[1]:
		return keys[0], nil
	}
	return keys[1], nil
}

// verifyCount is a count and a checksum of rows.
type verifyCount struct {
	rows int64
	xor  int64
}

// chunkResult is what one chunk adds to a report.
type chunkResult struct {
	counts map[int]*[2]int64 // per virtual shard: source rows, target rows
	diffs  []RowDiff         // sorted by key, then identity
	// rechecks counts the new reads of differing rows
	rechecks int
}

// chunk compares the rows with a key in (lo, hi].
func (v *verifier) chunk(ctx context.Context, lo, hi *int64) (*chunkResult, error) {
	cond, args := v.where(lo, hi, nil, nil)
	q := fmt.Sprintf("SELECT vs, count(*), bit_xor(h) FROM (SELECT %s AS vs, %s AS h FROM %s WHERE %s) AS c GROUP BY vs",
		v.vshard, v.rowHash, v.from, cond)
	var sums [2]map[int]verifyCount
	err := verifyBoth(ctx, v.src, v.tgt, func(ctx context.Context, s verifySide, i int) error {
		m := map[int]verifyCount{}
		sums[i] = m
		return s.read(ctx, v.t.Name, q, args, func(rows *sql.Rows) error {
			var vs int
			var c verifyCount
			err := rows.Scan(&vs, &c.rows, &c.xor)
			m[vs] = c
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	res := &chunkResult{counts: map[int]*[2]int64{}}
	var differ []int
	for vs := range unionKeys(sums[0], sums[1]) {
		if sums[0][vs] != sums[1][vs] {
			differ = append(differ, vs)
			continue
		}
		res.counts[vs] = &[2]int64{sums[0][vs].rows, sums[1][vs].rows}
	}
	if len(differ) == 0 {
		return res, nil
	}
	slices.Sort(differ)
	if err := v.drill(ctx, lo, hi, differ, res); err != nil {
		return nil, err
	}
	return res, nil
}

// unionKeys returns the set of keys of a and b.
func unionKeys(a, b map[int]verifyCount) map[int]struct{} {
	u := make(map[int]struct{}, len(a)+len(b))
	for k := range a {
		u[k] = struct{}{}
	}
	for k := range b {
		u[k] = struct{}{}
	}
	return u
}

// verifyRow is one row as the drill-down reads it.
type verifyRow struct {
	vs     int
	key    int64
	pk     []string
	digest string // one hash per column, comma-separated
}

// drill reads the rows of the virtual shards vs with a key in (lo, hi]
// from both sides, reads the ones that differ again up to Retries times,
// and adds their counts and the rows that still differ to res.
func (v *verifier) drill(ctx context.Context, lo, hi *int64, vs []int, res *chunkResult) error {
	src, tgt, err := v.rows(ctx, lo, hi, vs, nil)
	if err != nil {
		return err
	}
	for _, r := range src {
		res.count(r.vs, 0, 1)
	}
	for _, r := range tgt {
		res.count(r.vs, 1, 1)
	}
	diff := differing(src, tgt)
	for range v.cfg.Retries {
		if len(diff) == 0 {
			break
		}
		if err := v.cfg.sleep(ctx, v.cfg.RetryWait); err != nil {
			return fmt.Errorf("shard: verify %s: %w", v.t.Name, err)
		}
		if err := v.recheck(ctx, lo, hi, vs, diff, res); err != nil {
			return err
		}
	}
	v.report(diff, res)
	return nil
}

// count adds d to virtual shard vs's row count on side i (0 source, 1
// target).
func (res *chunkResult) count(vs int, i int, d int64) {
	c := res.counts[vs]
	if c == nil {
		c = &[2]int64{}
		res.counts[vs] = c
	}
	c[i] += d
}

// sameRow reports whether a row reads the same on both sides (or is
// absent from both).
func sameRow(s, t *verifyRow) bool {
	return (s == nil && t == nil) || (s != nil && t != nil && s.digest == t.digest && s.key == t.key)
}

// differing returns the rows that differ, by identity: [0] on the source,
// [1] on the target (nil: absent).
func differing(src, tgt map[string]*verifyRow) map[string]*[2]*verifyRow {
	diff := map[string]*[2]*verifyRow{}
	for id, s := range src {
		if t := tgt[id]; !sameRow(s, t) {
			diff[id] = &[2]*verifyRow{s, t}
		}
	}
	for id, t := range tgt {
		if src[id] == nil {
			diff[id] = &[2]*verifyRow{nil, t}
		}
	}
	return diff
}

// recheck reads the differing rows again, by key, keeps those that still
// differ, and corrects the counts.
func (v *verifier) recheck(ctx context.Context, lo, hi *int64, vs []int, diff map[string]*[2]*verifyRow, res *chunkResult) error {
	keys := map[int64]struct{}{}
	for _, d := range diff {
		for _, r := range d {
			if r != nil {
				keys[r.key] = struct{}{}
			}
		}
	}
	list := make([]int64, 0, len(keys))
	for k := range keys {
		list = append(list, k)
	}
	slices.Sort(list)
	src, tgt, err := v.rows(ctx, lo, hi, vs, list)
	if err != nil {
		return err
	}
	res.rechecks++
	for id, d := range diff {
		now := [2]*verifyRow{src[id], tgt[id]}
		for i := range d {
			if d[i] != nil {
				res.count(d[i].vs, i, -1)
			}
			if now[i] != nil {
				res.count(now[i].vs, i, 1)
			}
		}
		if sameRow(now[0], now[1]) {
			delete(diff, id)
			continue
		}
		*d = now
	}
	return nil
}

// report lists the rows that still differ, by key then primary key.
func (v *verifier) report(diff map[string]*[2]*verifyRow, res *chunkResult) {
	for _, d := range diff {
		s, t := d[0], d[1]
		switch {
		case t == nil:
			res.diffs = append(res.diffs, RowDiff{VShard: s.vs, Key: s.key, PK: s.pk, Kind: DiffMissing})
		case s == nil:
			res.diffs = append(res.diffs, RowDiff{VShard: t.vs, Key: t.key, PK: t.pk, Kind: DiffExtra})
		default:
			res.diffs = append(res.diffs, RowDiff{VShard: s.vs, Key: s.key, PK: s.pk, Kind: DiffChanged,
				Columns: v.changed(s.digest, t.digest)})
		}
	}
	slices.SortFunc(res.diffs, func(a, b RowDiff) int {
		if c := cmp.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return comparePK(a.PK, b.PK)
	})
}

// changed names the columns whose hashes differ between two digests.
func (v *verifier) changed(a, b string) []string {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	var cols []string
	for i, c := range v.cols {
		if i >= len(as) || i >= len(bs) || as[i] != bs[i] {
			cols = append(cols, c)
		}
	}
	return cols
}

// comparePK orders identities column by column, numerically where both
// values are integers and by bytes otherwise.
func comparePK(a, b []string) int {
	for i := range min(len(a), len(b)) {
		x, errX := strconv.ParseInt(a[i], 10, 64)
		y, errY := strconv.ParseInt(b[i], 10, 64)
		if errX == nil && errY == nil {
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// rows reads the rows of the virtual shards vs with a key in (lo, hi]
// (and in keys, when not nil) from both sides, by identity.
func (v *verifier) rows(ctx context.Context, lo, hi *int64, vs []int, keys []int64) (src, tgt map[string]*verifyRow, err error) {
	cond, args := v.where(lo, hi, vs, keys)
	q := fmt.Sprintf("SELECT %s, (%s)::bigint, %s, %s FROM %s WHERE %s",
		v.vshard, v.key, v.digest, v.identTxt, v.from, cond)
	var out [2]map[string]*verifyRow
	err = verifyBoth(ctx, v.src, v.tgt, func(ctx context.Context, s verifySide, i int) error {
		m := map[string]*verifyRow{}
		out[i] = m
		dest := make([]any, 3+len(v.identity))
		return s.read(ctx, v.t.Name, q, args, func(rows *sql.Rows) error {
			r := &verifyRow{pk: make([]string, len(v.identity))}
			dest[0], dest[1], dest[2] = &r.vs, &r.key, &r.digest
			for i := range r.pk {
				dest[3+i] = &r.pk[i]
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			m[strings.Join(r.pk, "\x00")] = r
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return out[0], out[1], nil
}

// apply adds a chunk's result to rep.
func (v *verifier) apply(rep *VerifyReport, res *chunkResult) {
	for vs, c := range res.counts {
		s := &rep.Shards[vs-v.r.Lo]
		s.SourceRows += c[0]
		s.TargetRows += c[1]
		rep.Rows += c[0]
	}
	for _, d := range res.diffs {
		rep.Shards[d.VShard-v.r.Lo].Diffs++
		if len(rep.Diffs) < MaxVerifyDiffs {
			rep.Diffs = append(rep.Diffs, d)
		} else {
			rep.Truncated = true
		}
	}
	for i := range rep.Shards {
		s := &rep.Shards[i]
		s.Match = s.Diffs == 0 && s.SourceRows == s.TargetRows
	}
	rep.Rechecks += res.rechecks
}
