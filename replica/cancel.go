package replica

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// hedgeCancelWait is how long the server of a canceled hedge has to abort
// its query, on a cancel request, before its connection is dropped.
const hedgeCancelWait = time.Second // Strata: a live server aborts within milliseconds; a hung one is not waited for longer

// keepConnKey marks the context of a query whose cancellation may take
// its time but should keep the connection: a hedge that lost.
type keepConnKey struct{}

// keepingConn returns ctx marked with keepConnKey.
func keepingConn(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepConnKey{}, true)
}

// cancelHandler is what pgx does when a query's context ends. By default
// (pgx's own default) it sets a deadline on the socket at once: the call
// returns at once, whatever the server does, and pgx sends the server a
// cancel request and drops the connection. For a context marked
// keepingConn (a hedge that lost, which runs on a goroutine of its own and
// that no caller waits for) it sends a cancel request first and keeps the
// connection once the server has aborted the query, dropping it only if
// the server does not answer within hedgeCancelWait: lost hedges, about as
// many as the hedges sent, would otherwise each cost a new connection
// (a backend process to fork on the replica).
type cancelHandler struct {
	now  ctxwatch.Handler // returns at once, drops the connection
	keep ctxwatch.Handler // cancel request, keeps the connection
	used ctxwatch.Handler // the one the last cancellation used
}

func newCancelHandler(c *pgconn.PgConn) ctxwatch.Handler {
	return &cancelHandler{
		now:  &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()},
		keep: &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: hedgeCancelWait},
	}
}

func (h *cancelHandler) HandleCancel(ctx context.Context) {
	h.used = h.now
	if ctx.Value(keepConnKey{}) != nil {
		h.used = h.keep
	}
	h.used.HandleCancel(ctx)
}

func (h *cancelHandler) HandleUnwatchAfterCancel() { h.used.HandleUnwatchAfterCancel() }
