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
// Every confirmed subscription (the first, and each one rueidis makes
// again after a reconnection) flushes L1 too, since messages may have been
// published while there was none, and puts the bus up; a subscription
// that ends puts it down at once, without waiting for the silence.
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
	r         *redisLevel
	channel   string
	origin    string
	bound     time.Duration
	now       func() int64
	ts        timeSource
	l         listener
	seq       atomic.Uint64
	published atomic.Uint64 // sequence number of the last message Redis accepted
	lastOwn   atomic.Int64  // unix ns when our own last heartbeat came back
	healthMu  sync.Mutex    // makes each health transition and its flush one step
	healthy   atomic.Bool
	received  atomic.Uint64 // messages received from other instances
	deaf      atomic.Bool   // test seam: drop every incoming message

	beatTimeout time.Duration // bound on one heartbeat's publish: bound/4 (tests give more)
	beatMark    tickMark      // the heartbeat loop's ticks (tests)
	listening   atomic.Bool   // a subscription is confirmed and not yet ended
	subSeq      atomic.Uint64 // our sequence number when it was confirmed: earlier messages may never come back
	ownArrived  atomic.Uint64 // sequence number of our own last message to come back, even to a deaf bus (tests)

	pubMu sync.Mutex // serialises numbering and sending

	mu      sync.Mutex
	lastSeq map[string]originSeq // per origin
}

// originSeq is the last sequence number heard from an origin, and when.
type originSeq struct {
	seq  uint64
	seen int64
}

// busRetryMin is the first wait before subscribing again; it doubles up
// to half the staleness bound.
const busRetryMin = 50 * time.Millisecond

func newBus(r *redisLevel, ns, origin string, bound time.Duration, ts timeSource, l listener) *bus {
	now := func() int64 { return ts.Now().UnixNano() }
	return &bus{r: r, channel: ns + ":invalidate", origin: origin, bound: bound, now: now, ts: ts, l: l, lastSeq: map[string]originSeq{},
		beatTimeout: bound / 4}
}

// publish broadcasts m to every instance, this one included. Numbering and
// sending happen under one lock, so messages leave in sequence order and a
// receiver's gap is a real loss, not a reordering.
func (b *bus) publish(ctx context.Context, m busMsg) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	data, seq, err := b.encode(m)
	if err != nil {
		return err
	}
	if err := b.r.publish(ctx, b.channel, data); err != nil {
		return err
	}
	b.published.Store(seq)
	return nil
}

// encode numbers m and marshals it; pubMu is held.
func (b *bus) encode(m busMsg) ([]byte, uint64, error) {
	m.Origin, m.Seq, m.Sent = b.origin, b.seq.Add(1), b.now()
	data, err := json.Marshal(m)
	return data, m.Seq, err
}

// run subscribes and keeps subscribing until ctx ends. Before the
// connection is made it waits for it.
func (b *bus) run(ctx context.Context) {
	backoff := busRetryMin
	for ctx.Err() == nil {
		var wake <-chan struct{}
		if cl := b.r.client(); cl == nil {
			wake = b.r.conn.Ready()
		} else if b.receive(ctx, cl) {
			backoff = busRetryMin
		}
		if ctx.Err() != nil {
			return
		}
		b.lost("bus subscription ended")
		if !sleepOn(ctx, b.ts, backoff, wake) {
			return
		}
		backoff = min(2*backoff, b.bound/2)
	}
}

// receive holds one subscription until it ends, and reports whether it
// was confirmed.
func (b *bus) receive(ctx context.Context, cl rueidis.Client) bool {
	var confirmed atomic.Bool
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		switch s.Kind {
		case "subscribe", "ssubscribe":
			confirmed.Store(true)
			b.subscribed()
		default:
			b.lost("bus unsubscribed")
		}
	})
	_ = cl.Receive(hooked, cl.B().Subscribe().Channel(b.channel).Build(), func(msg rueidis.PubSubMessage) {
		b.deliver([]byte(msg.Message))
	})
	return confirmed.Load()
}

// subscribed handles a confirmed subscription: messages published while
// there was none are lost, so L1 is flushed, and the bus is up. It runs on
// rueidis's pipeline goroutine, so it does nothing that waits on Redis.
func (b *bus) subscribed() {
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	b.subSeq.Store(b.seq.Load())
	b.listening.Store(true)
	b.lastOwn.Store(b.now())
	b.l.flushLocal("bus subscribed")
	if !b.healthy.Load() {
		b.healthy.Store(true)
		b.l.setBusHealthy(true)
	}
}

// lost puts the bus down, if it was up, and flushes L1.
func (b *bus) lost(reason string) {
	b.listening.Store(false)
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	if b.healthy.Load() {
		b.healthy.Store(false)
		b.l.setBusHealthy(false) // first: fills after the flush get short lives
		b.l.flushLocal(reason)
	}
}

// heartbeat publishes a heartbeat every bound/4 and checks every bound/8
// that our own keep coming back.
func (b *bus) heartbeat(ctx context.Context) {
	tick, stop := b.ts.NewTicker(b.bound / 8)
	defer stop()
	b.beatMark.started(tick)
	b.lastOwn.Store(b.now())
	var lastSent int64
	for {
		var at time.Time
		select {
		case <-ctx.Done():
			return
		case at = <-tick:
		}
		now := b.now()
		if cl := b.r.client(); cl != nil && now-lastSent >= int64(b.bound/4) {
			lastSent = now
			b.beat(ctx, cl)
		}
		b.healthMu.Lock()
		if b.healthy.Load() && now-b.lastOwn.Load() > int64(b.bound/2) {
			b.healthy.Store(false)
			b.l.setBusHealthy(false) // first: fills after the flush get short lives
			b.l.flushLocal("bus silent")
		}
		b.healthMu.Unlock()
		b.beatMark.handled(at)
	}
}

// beat publishes one heartbeat. Heartbeats bypass the L2 breaker and its
// short timeout: a busy process may answer slowly without the bus being
// down, and a heartbeat has bound/4 (beatTimeout) to arrive anyway. A
// failure shows as silence, and as a sequence gap to every receiver, which
// flushes its L1: on a fake clock, where bound/4 of real time means
// nothing, tests give beatTimeout far more.
func (b *bus) beat(ctx context.Context, cl rueidis.Client) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	data, seq, err := b.encode(busMsg{})
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, b.beatTimeout)
	defer cancel()
	if cl.Do(pctx, cl.B().Publish().Channel(b.channel).Message(rueidis.BinaryString(data)).Build()).Error() == nil {
		b.published.Store(seq)
	}
}

// deliver handles one message from the channel.
func (b *bus) deliver(data []byte) {
	m, err := decodeBusMsg(data)
	if err != nil {
		return // not ours, or corrupt: ignore it
	}
	if m.Origin == b.origin {
		b.ownArrived.Store(m.Seq) // one receiving goroutine, in publishing order
	}
	if b.deaf.Load() {
		return
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
			b.healthy.Store(true)
			b.l.setBusHealthy(true)
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
