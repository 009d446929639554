package replica

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Cancellation of the attempts of a hedged statement.
const (
	hedgeCancelWait   = time.Second            // Strata: a live server aborts a canceled query within milliseconds; a hung one is not waited for longer
	hedgeCancelSettle = 100 * time.Millisecond // pgx's own wait after a cancel request, before the connection runs another query
)

// How an attempt's query is to end when its context does (its mark).
const (
	endAtOnce int32 = iota // pgx's default: the call returns at once, the connection is dropped
	endLost                // a hedge that lost: runs on for hedgeLoserGrace, then a cancel request; connection kept
	endBeaten              // a first attempt the hedge beat, after its grace: a cancel request at once; connection kept
)

// markKey's value in an attempt's context is its *attemptMark.
type markKey struct{}

// attemptMark says how an attempt's query ends when its context is
// canceled; the router sets it before it cancels. Canceling a query
// costs PostgreSQL: a cancel request is a new connection (a process
// forked on the server), and a connection pgx drops is opened again
// later (another fork, and a read that waits for it, on a loaded machine
// past the replicas' 100 ms acquire timeout). So an attempt that lost
// keeps its connection wherever the read need not wait for it.
type attemptMark struct {
	mode  atomic.Int32
	abort atomic.Int64 // endBeaten: how long the read waits for the server to abort, ns
}

// cancelHandler is what pgx does when a query's context ends, by the
// query's mark: at once, as pgx does by default (a deadline on the socket
// now: the call returns whatever the server does, and pgx sends a cancel
// request and drops the connection); for a hedge that lost, which no read
// waits for, pgx's CancelRequestContextWatcherHandler after
// hedgeLoserGrace (a query that ends meanwhile costs nothing more), with
// the connection dropped only if the server has not aborted it
// hedgeCancelWait later; for a beaten first attempt, which the read does
// wait for, a cancel request at once and the connection dropped only if
// the server has not aborted the query within the mark's abort time. It
// does not wait the 100 ms that keep a late cancel request from
// canceling the connection's next query: the router holds the connection
// that long before it releases it (hedgeCancelSettle).
type cancelHandler struct {
	c    *pgconn.PgConn
	now  ctxwatch.Handler
	lost ctxwatch.Handler
	used ctxwatch.Handler // the one the last cancellation used; nil: the beaten first attempt's
}

func newCancelHandler(c *pgconn.PgConn) ctxwatch.Handler {
	return &cancelHandler{
		c:   c,
		now: &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()},
		lost: &pgconn.CancelRequestContextWatcherHandler{Conn: c,
			CancelRequestDelay: hedgeLoserGrace, DeadlineDelay: hedgeLoserGrace + hedgeCancelWait},
	}
}

func (h *cancelHandler) HandleCancel(ctx context.Context) {
	m, _ := ctx.Value(markKey{}).(*attemptMark)
	mode := endAtOnce
	if m != nil {
		mode = m.mode.Load()
	}
	switch mode {
	case endLost:
		h.used = h.lost
	case endBeaten:
		h.used = nil
		deadline := time.Now().Add(time.Duration(m.abort.Load()))
		_ = h.c.Conn().SetDeadline(deadline)
		go func() { // a connection of its own: it touches nothing of h.c's
			cctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			_ = h.c.CancelRequest(cctx)
		}()
		return
	default:
		h.used = h.now
	}
	h.used.HandleCancel(ctx)
}

func (h *cancelHandler) HandleUnwatchAfterCancel() {
	if h.used == nil {
		_ = h.c.Conn().SetDeadline(time.Time{})
		return
	}
	h.used.HandleUnwatchAfterCancel()
}
