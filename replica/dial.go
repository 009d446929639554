package replica

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-dev/strata/internal/database"
)

// TCP settings of every connection the router opens. They bound how long a
// call can wait on a connection whose peer is gone (a host that died, a
// link cut by a partition) without changing what any query means: a live
// server's kernel answers keepalive probes and acknowledges data at once,
// however long its query runs. A server process that hangs on a live host
// is not seen here (its kernel still answers); the health check sees it.
const (
	tcpKeepIdle     = 5 * time.Second  // silence before the first keepalive probe
	tcpKeepInterval = time.Second      // between probes
	tcpKeepCount    = 5                // unanswered probes before the connection is dropped
	tcpUserTimeout  = 10 * time.Second // Linux TCP_USER_TIMEOUT: data sent and not acknowledged for this long drops the connection
)

// tuneConnConfig sets what the router needs on a server's pgx
// configuration: a connect timeout of at most database.DefaultConnectTimeout
// (5 s), and a dialer with the TCP settings above, so that a call on a
// connection to a server that is cut off fails (as ErrPrimaryUnavailable on
// the primary) within about tcpUserTimeout instead of the kernel's defaults
// (keepalive after two hours; retransmissions for about 15 minutes).
func tuneConnConfig(pc *pgx.ConnConfig) {
	if pc.ConnectTimeout == 0 || pc.ConnectTimeout > database.DefaultConnectTimeout {
		pc.ConnectTimeout = database.DefaultConnectTimeout
	}
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: tcpKeepIdle, Interval: tcpKeepInterval, Count: tcpKeepCount},
		Control:         setUserTimeout,
	}
	pc.DialFunc = d.DialContext
	pc.BuildContextWatcherHandler = newCancelHandler // pgx's default but for lost hedges (cancel.go)
}
