package demo

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"github.com/strata-dev/strata/storefront"
)

// countingConnector counts the statements run through the connections it
// makes, so the demo can show the database queries one request costs at
// each stage. It wraps any driver: every optional interface database/sql
// looks for is implemented and forwarded, and where the wrapped driver
// lacks one the wrapper answers as database/sql's own fallback expects
// (driver.ErrSkip, or success), so the pool behaves exactly as it would
// over the bare driver.
//
// A statement is counted when it is executed: a direct ExecContext or
// QueryContext on a connection, or an Exec or Query of a prepared
// statement. Preparing, beginning, committing and pinging are not counted,
// nor is the storefront's background work (storefront.Background).
type countingConnector struct {
	connect func(context.Context) (driver.Conn, error)
	drv     driver.Driver
	n       *atomic.Int64
}

var _ driver.Connector = (*countingConnector)(nil)

// newCountingConnector counts the statements of the connections c makes
// in n.
func newCountingConnector(c driver.Connector, n *atomic.Int64) *countingConnector {
	return &countingConnector{connect: c.Connect, drv: c.Driver(), n: n}
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: c.n}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.drv }

// countingConn counts the statements run on one connection.
type countingConn struct {
	driver.Conn
	n *atomic.Int64
}

var (
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.NamedValueChecker  = (*countingConn)(nil)
)

// counted adds one to the count unless err says the statement did not run
// here (driver.ErrSkip: database/sql will prepare it instead, and the
// prepared statement counts it).
func (c *countingConn) counted(ctx context.Context, err error) {
	if !errors.Is(err, driver.ErrSkip) {
		c.count(ctx)
	}
}

// count adds one to the count, unless the statement is the storefront's
// background work (cache warming, the popularity refresh): that work
// depends on timing, not on the requests, and counted in would make the
// per-request cost of a stage swing with the machine's load.
func (c *countingConn) count(ctx context.Context) {
	if !storefront.Background(ctx) {
		c.n.Add(1)
	}
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	r, err := e.ExecContext(ctx, query, args)
	c.counted(ctx, err)
	return r, err
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	r, err := q.QueryContext(ctx, query, args)
	c.counted(ctx, err)
	return r, err
}

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var s driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else {
		s, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: s, conn: c}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	// database/sql's own fallback for a driver without BeginTx: only the
	// default isolation and read-write transactions.
	if opts.Isolation != driver.IsolationLevel(0) || opts.ReadOnly {
		return nil, errors.New("demo: the database driver does not support non-default transaction options")
	}
	//lint:ignore SA1019 the fallback for drivers without BeginTx, as database/sql's own
	return c.Conn.Begin()
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's default conversion
}

// countingStmt counts each execution of a prepared statement.
type countingStmt struct {
	driver.Stmt
	conn *countingConn
}

var (
	_ driver.StmtExecContext   = (*countingStmt)(nil)
	_ driver.StmtQueryContext  = (*countingStmt)(nil)
	_ driver.NamedValueChecker = (*countingStmt)(nil)
)

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.conn.count(ctx)
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	v, err := values(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback for drivers without ExecContext, as database/sql's own
	return s.Stmt.Exec(v)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.conn.count(ctx)
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	v, err := values(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback for drivers without QueryContext, as database/sql's own
	return s.Stmt.Query(v)
}

// CheckNamedValue asks the statement, then its connection, as database/sql
// would have asked them without the wrapper.
func (s *countingStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

// values turns named arguments into positional ones, as database/sql does
// for a driver that takes no names.
func values(args []driver.NamedValue) ([]driver.Value, error) {
	v := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("demo: the database driver does not support named arguments")
		}
		v[i] = a.Value
	}
	return v, nil
}
