package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The invalidation bus is Redis pub/sub on one channel per namespace.
//
// Why pub/sub: it is the one mechanism that works the same on a single
// Redis and on Redis Cluster, costs one PUBLISH per write, and needs no
// per-key server state. Its weakness is that a subscriber that drops its
// connection silently misses messages. Two mechanisms bound the damage:
//
//   - every message carries its publisher's sequence number, so a receiver
//     that sees a gap knows it missed something and flushes its L1;
//   - every instance publishes a heartbeat every StalenessBound/4 and
//     listens for its own; when none has arrived for StalenessBound/2 the
//     bus is down for this instance, which flushes its L1 and keeps values
//     there at most StalenessBound/2 until its heartbeats come back (then
//     it flushes once more).
//
// Streams would survive a reconnect but need trimming and a consumer
// position per instance; RESP3 client tracking invalidates per connection
// and cannot carry tag epochs. Neither bounds staleness more tightly.

// busMsg is one message on the bus.
type busMsg struct {
	Origin string   `json:"o"`           // the publishing instance
	Seq    uint64   `json:"s"`           // publisher's sequence number, from 1
	Sent   int64    `json:"at"`          // unix ns at the publisher, for lag
	Keys   []string `json:"k,omitempty"` // keys to drop
	Tags   []string `json:"t,omitempty"` // tags bumped ...
	Epochs []uint64 `json:"e,omitempty"` // ... to these epochs
	Flush  bool     `json:"f,omitempty"` // drop everything
}

// maxBusMsg bounds a message the bus accepts.
const maxBusMsg = 1 << 20

func decodeBusMsg(data []byte) (busMsg, error) {
	var m busMsg
	if len(data) > maxBusMsg {
		return m, errors.New("cache: bus message too large")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("cache: bus message: %w", err)
	}
	if m.Origin == "" || m.Seq == 0 || len(m.Tags) != len(m.Epochs) {
		return m, errors.New("cache: bus message: missing origin or sequence, or tags without epochs")
	}
	return m, nil
}

// listener is what the bus delivers to: the cache.
type listener interface {
	dropLocal(keys []string)
	setEpochs(tags []string, epochs []uint64)
	flushLocal(reason string)
	setBusHealthy(ok bool)
	observeBusLag(d time.Duration)
}

type bus struct {
	r        *redisLevel
	channel  string
	origin   string
	bound    time.Duration
	now      func() int64
	l        listener
	seq      atomic.Uint64
	lastOwn  atomic.Int64 // unix ns when our own last heartbeat came back
	healthMu sync.Mutex   // makes each health transition and its flush one step
	healthy  atomic.Bool
	received atomic.Uint64 // messages received from other instances
	deaf     atomic.Bool   // test seam: drop every incoming message

	pubMu sync.Mutex // serialises numbering and sending

	mu      sync.Mutex
	lastSeq map[string]originSeq // per origin
}

// originSeq is the last sequence number heard from an origin, and when.
type originSeq struct {
	seq  uint64
	seen int64
}

func newBus(r *redisLevel, ns, origin string, bound time.Duration, now func() int64, l listener) *bus {
	return &bus{r: r, channel: ns + ":invalidate", origin: origin, bound: bound, now: now, l: l, lastSeq: map[string]originSeq{}}
}

// publish broadcasts m to every instance, this one included. Numbering and
// sending happen under one lock, so messages leave in sequence order and a
// receiver's gap is a real loss, not a reordering.
func (b *bus) publish(ctx context.Context, m busMsg) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	data, err := b.encode(m)
	if err != nil {
		return err
	}
	return b.r.publish(ctx, b.channel, data)
}

func (b *bus) encode(m busMsg) ([]byte, error) {
	m.Origin, m.Seq, m.Sent = b.origin, b.seq.Add(1), b.now()
	return json.Marshal(m)
}

// run subscribes and keeps subscribing until ctx ends.
func (b *bus) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := b.r.c.Receive(ctx, b.r.c.B().Subscribe().Channel(b.channel).Build(), func(msg rueidis.PubSubMessage) {
			backoff = 50 * time.Millisecond
			b.deliver([]byte(msg.Message))
		})
		if ctx.Err() != nil {
			return
		}
		_ = err // the watchdog notices the silence and flushes
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, b.bound/2)
	}
}

// heartbeat publishes a heartbeat every bound/4 and checks every bound/8
// that our own keep coming back.
func (b *bus) heartbeat(ctx context.Context) {
	tick := time.NewTicker(b.bound / 8)
	defer tick.Stop()
	b.lastOwn.Store(b.now())
	var lastSent int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := b.now()
		if now-lastSent >= int64(b.bound/4) {
			lastSent = now
			// Heartbeats bypass the L2 breaker and its short timeout: a
			// busy process may answer slowly without the bus being down,
			// and a heartbeat has bound/4 to arrive anyway.
			b.pubMu.Lock()
			if data, err := b.encode(busMsg{}); err == nil {
				pctx, cancel := context.WithTimeout(ctx, b.bound/4)
				_ = b.r.c.Do(pctx, b.r.c.B().Publish().Channel(b.channel).Message(rueidis.BinaryString(data)).Build()).Error()
				cancel() // a failure shows as silence
			}
			b.pubMu.Unlock()
		}
		b.healthMu.Lock()
		if b.healthy.Load() && now-b.lastOwn.Load() > int64(b.bound/2) {
			b.healthy.Store(false)
			b.l.setBusHealthy(false)
			b.l.flushLocal("bus silent")
		}
		b.healthMu.Unlock()
	}
}

// deliver handles one message from the channel.
func (b *bus) deliver(data []byte) {
	if b.deaf.Load() {
		return
	}
	m, err := decodeBusMsg(data)
	if err != nil {
		return // not ours, or corrupt: ignore it
	}
	now := b.now()
	b.mu.Lock()
	last, known := b.lastSeq[m.Origin]
	b.lastSeq[m.Origin] = originSeq{seq: max(last.seq, m.Seq), seen: now}
	if len(b.lastSeq) > 64 { // forget origins silent for 10 bounds: stopped instances
		for o, s := range b.lastSeq {
			if now-s.seen > 10*int64(b.bound) {
				delete(b.lastSeq, o)
			}
		}
	}
	b.mu.Unlock()
	gap := known && m.Seq > last.seq+1

	if m.Origin == b.origin {
		b.healthMu.Lock()
		b.lastOwn.Store(b.now())
		if gap { // we missed some of our own messages: others' may be lost too
			b.l.flushLocal("bus gap")
		}
		if !b.healthy.Load() {
			b.l.flushLocal("bus back")
			b.l.setBusHealthy(true)
			b.healthy.Store(true)
		}
		b.healthMu.Unlock()
		return
	}
	b.received.Add(1)
	b.l.observeBusLag(time.Duration(b.now() - m.Sent))
	if gap {
		b.l.flushLocal("bus gap")
	}
	if m.Flush {
		b.l.flushLocal("remote flush")
	}
	if len(m.Keys) > 0 {
		b.l.dropLocal(m.Keys)
	}
	if len(m.Tags) > 0 {
		b.l.setEpochs(m.Tags, m.Epochs)
	}
}
