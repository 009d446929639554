package storefront

import (
	"log/slog"
	"sync"
	"time"
)

// logEvery is how often one kind of warning about a condition that lasts
// (a server down, a cache level unreachable) may be logged: the first
// occurrence at once, then one line per interval with the count of those
// left out, instead of one line per request.
const logEvery = 30 * time.Second

// throttle logs a warning at most once per logEvery for each message. Its
// zero value is ready to use; now is the clock (nil means time.Now).
type throttle struct {
	now func() time.Time

	mu   sync.Mutex
	seen map[string]*throttled
}

type throttled struct {
	last       time.Time
	suppressed int
}

// warn logs msg with args on log unless msg was logged less than logEvery
// ago, in which case it only counts it; the next line logged for msg says
// how many were left out.
func (t *throttle) warn(log *slog.Logger, msg string, args ...any) {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	at := now()
	t.mu.Lock()
	if t.seen == nil {
		t.seen = map[string]*throttled{}
	}
	e, ok := t.seen[msg]
	if !ok {
		if len(t.seen) >= maxThrottled {
			clear(t.seen) // messages are few and fixed; this only bounds memory
		}
		e = &throttled{}
		t.seen[msg] = e
	}
	if ok && at.Sub(e.last) < logEvery {
		e.suppressed++
		t.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.last, e.suppressed = at, 0
	t.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed, "suppressed_over", logEvery.String())
	}
	log.Warn(msg, args...)
}

// maxThrottled bounds the messages a throttle remembers.
const maxThrottled = 256
