package replica

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"
)

// answer is one attempt's answer to a statement, as far as the hedge
// machinery reads it before choosing: the columns and the first row, with
// the rest still on the server (rows), or the whole answer when it has no
// row or failed.
type answer struct {
	cols   []string
	first  []any     // the first row's values, as the driver gave them
	hasRow bool      // first holds a row
	rows   *sql.Rows // open, past the first row: the rest; nil once complete
	err    error
	took   time.Duration // from the statement's start to this answer
	// counted: err was counted and judged where it happened (a hedge's
	// acquire), not to be judged again.
	counted bool
}

// firstAnswer runs query on conn and reads up to its first row.
func firstAnswer(ctx context.Context, conn *sql.Conn, query string, args []any) *answer {
	t0 := time.Now()
	a := &answer{}
	defer func() { a.took = time.Since(t0) }()
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		a.err = err
		return a
	}
	if a.cols, err = rows.Columns(); err != nil {
		_ = rows.Close()
		a.err = err
		return a
	}
	if !rows.Next() {
		a.err = rows.Err() // nil: no rows
		_ = rows.Close()
		return a
	}
	buf := make([]any, 2*len(a.cols)) // the values, then pointers to them
	ptrs := buf[len(a.cols):]
	a.first = buf[:len(a.cols):len(a.cols)]
	for i := range a.first {
		ptrs[i] = &a.first[i]
	}
	// Scanning into *any keeps the driver's own values (byte slices
	// copied), so the caller's Scan converts them exactly as it would
	// have converted the driver's.
	if err := rows.Scan(ptrs...); err != nil {
		_ = rows.Close()
		a.first, a.err = nil, err
		return a
	}
	a.hasRow, a.rows = true, rows
	return a
}

// replayConnector is the driver of a router's replay pool. database/sql
// makes a *sql.Rows only from a driver's rows, and a hedged statement has
// read its winner's first row before choosing it: the replay driver hands
// the read function that row, then the rest of the winner's rows as the
// server sends them, as one *sql.Rows. It does no I/O; its one statement
// takes the *answer as its only argument.
type replayConnector struct{}

func (replayConnector) Connect(context.Context) (driver.Conn, error) { return replayConn{}, nil }
func (replayConnector) Driver() driver.Driver                        { return replayDriver{} }

type replayDriver struct{}

func (replayDriver) Open(string) (driver.Conn, error) { return replayConn{}, nil }

type replayConn struct{}

var errReplayOnly = errors.New("replica: the replay pool only replays hedged answers")

func (replayConn) Prepare(string) (driver.Stmt, error) { return nil, errReplayOnly }
func (replayConn) Close() error                        { return nil }
func (replayConn) Begin() (driver.Tx, error)           { return nil, errReplayOnly }

// CheckNamedValue lets an *answer through as it is.
func (replayConn) CheckNamedValue(nv *driver.NamedValue) error {
	if _, ok := nv.Value.(*answer); ok {
		return nil
	}
	return errReplayOnly
}

func (replayConn) QueryContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) != 1 {
		return nil, errReplayOnly
	}
	a, ok := args[0].Value.(*answer)
	if !ok {
		return nil, errReplayOnly
	}
	if a.err != nil {
		return nil, a.err
	}
	return &replayRows{a: a}, nil
}

var (
	_ driver.QueryerContext                 = replayConn{}
	_ driver.NamedValueChecker              = replayConn{}
	_ driver.RowsColumnTypeScanType         = (*replayRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*replayRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*replayRows)(nil)
	_ driver.RowsColumnTypeLength           = (*replayRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*replayRows)(nil)
)

// replayRows yields an answer's first row, then the rest of its rows.
type replayRows struct {
	a          *answer
	sent       bool  // the first row has been yielded
	vals, ptrs []any // scan buffers for the rows after the first

	typesOnce sync.Once
	types     []*sql.ColumnType // the live rows' column types, nil without
}

func (r *replayRows) Columns() []string { return r.a.cols }

func (r *replayRows) Close() error {
	if r.a.rows != nil {
		return r.a.rows.Close()
	}
	return nil
}

func (r *replayRows) Next(dest []driver.Value) error {
	if !r.sent {
		r.sent = true
		if !r.a.hasRow {
			return io.EOF
		}
		for i, v := range r.a.first {
			dest[i] = v
		}
		return nil
	}
	live := r.a.rows
	if live == nil {
		return io.EOF
	}
	if !live.Next() {
		if err := live.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.vals == nil {
		r.vals, r.ptrs = make([]any, len(r.a.cols)), make([]any, len(r.a.cols))
		for i := range r.vals {
			r.ptrs[i] = &r.vals[i]
		}
	}
	if err := live.Scan(r.ptrs...); err != nil {
		return fmt.Errorf("replica: hedged read: %w", err)
	}
	for i, v := range r.vals {
		dest[i] = v
	}
	return nil
}

// columnType returns the live rows' type of column i, or nil: an answer
// without rows left (none at all, or all read) has no live rows to ask.
func (r *replayRows) columnType(i int) *sql.ColumnType {
	r.typesOnce.Do(func() {
		if r.a.rows != nil {
			r.types, _ = r.a.rows.ColumnTypes()
		}
	})
	if i < len(r.types) {
		return r.types[i]
	}
	return nil
}

func (r *replayRows) ColumnTypeScanType(i int) reflect.Type {
	if ct := r.columnType(i); ct != nil && ct.ScanType() != nil {
		return ct.ScanType()
	}
	return reflect.TypeFor[any]()
}

func (r *replayRows) ColumnTypeDatabaseTypeName(i int) string {
	if ct := r.columnType(i); ct != nil {
		return ct.DatabaseTypeName()
	}
	return ""
}

func (r *replayRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if ct := r.columnType(i); ct != nil {
		return ct.Nullable()
	}
	return false, false
}

func (r *replayRows) ColumnTypeLength(i int) (int64, bool) {
	if ct := r.columnType(i); ct != nil {
		return ct.Length()
	}
	return 0, false
}

func (r *replayRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if ct := r.columnType(i); ct != nil {
		return ct.DecimalSize()
	}
	return 0, 0, false
}
