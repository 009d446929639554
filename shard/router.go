package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/spans"
	"github.com/strata-dev/strata/replica"
)

// DefaultEachTimeout is the deadline of a fan-out over every shard when
// Config.EachTimeout is zero (seed: stage 3, non-critical calls get
// 500 ms, then fall back).
const DefaultEachTimeout = 500 * time.Millisecond

// DefaultFenceWait is how long a write to a fenced virtual shard (a move
// cutting over) waits for the map that lifts the fence, when
// Config.FenceWait is zero: a cutover's DefaultPause plus the time the
// next map takes to reach an instance (a poll, or a NOTIFY). Past it the
// write fails with ErrFenced; a cutover that keeps to its pause never
// makes it.
const DefaultFenceWait = DefaultPause + 500*time.Millisecond

// DefaultEachConcurrency caps the shards a fan-out queries at once when
// Config.EachConcurrency is zero.
const DefaultEachConcurrency = 16

// Errors a caller can tell apart.
var (
	// ErrCrossShard: a transaction named keys on more than one shard.
	// Strata does not run distributed transactions.
	ErrCrossShard = errors.New("shard: a transaction cannot span shards")
	// ErrPartial: a fan-out did not hear from every shard; the Result
	// says which answered and why the others did not.
	ErrPartial = errors.New("shard: not every shard answered")
	// ErrStaleMap: Apply was given a map older than the one in use.
	ErrStaleMap = errors.New("shard: map is older than the one in use")
	// ErrClosed: the router is closed.
	ErrClosed = errors.New("shard: router closed")
	// ErrFenced: a write's virtual shard stayed fenced (a move cutting
	// over) for longer than Config.FenceWait. Retrying soon succeeds.
	ErrFenced = errors.New("shard: virtual shard fenced by a move cutting over")
)

// Error is a failure on one shard; it names the shard.
type Error struct {
	Shard string
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("shard %s: %v", e.Shard, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Config tunes a Router. The zero value means the defaults.
type Config struct {
	// Replica is the template of each shard's replica.Router: pool sizes,
	// lag bound, and so on. Primary and Replicas come from the map.
	Replica replica.Config
	// EachTimeout is a fan-out's deadline (default DefaultEachTimeout).
	EachTimeout time.Duration
	// EachConcurrency caps the shards a fan-out queries at once (default
	// DefaultEachConcurrency).
	EachConcurrency int
	// FenceWait bounds how long a write to a fenced virtual shard waits
	// for the fence to lift (default DefaultFenceWait).
	FenceWait time.Duration
	// Registerer receives the strata_shard_* metrics and each shard's
	// replica metrics (labelled shard="name"); nil means none.
	Registerer prometheus.Registerer
	// Logger receives map changes; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, makes spans under a caller's span (see
	// trace.go), and is each shard's Replica.TracerProvider unless that
	// is set. Nil means off.
	TracerProvider trace.TracerProvider
}

// Target is one shard as a key's owner: its name and the replica.Router
// over its primary and replicas.
type Target struct {
	Name string
	DB   *replica.Router
	spec Shard // what it was opened from
	// calls counts the calls routed to it (strata_shard_calls_total).
	calls prometheus.Counter
}

// state is what a routing decision reads, swapped whole by Apply.
type state struct {
	m       *Map
	targets []*Target // by the map's shard index
	// moving holds, per virtual shard, the index in m.Moves of the move
	// that covers it, or -1; nil when nothing moves.
	moving []int
	// changed is closed when a newer state replaces this one, which is
	// what a write held by a fence waits for.
	changed chan struct{}
	// writes counts the writes routed by this state and still running
	// (see Router.Apply).
	writes atomic.Int64
}

// newState indexes m's moves by virtual shard.
func newState(m *Map, targets []*Target) *state {
	st := &state{m: m, targets: targets, changed: make(chan struct{})}
	if len(m.Moves) > 0 {
		st.moving = make([]int, len(m.Owners))
		for v := range st.moving {
			st.moving[v] = -1
		}
		for i, mv := range m.Moves {
			for v := mv.VShards.Lo; v <= mv.VShards.Hi; v++ {
				st.moving[v] = i
			}
		}
	}
	return st
}

// move returns the move covering key, or nil.
func (st *state) move(key int64) *MapMove {
	if st.moving == nil {
		return nil
	}
	if i := st.moving[VirtualShard(key, len(st.m.Owners))]; i >= 0 {
		return &st.m.Moves[i]
	}
	return nil
}

// reader returns where a read of key goes: the owner, or, for ReadShare
// percent of the reads of a moving virtual shard, the move's target.
func (st *state) reader(key int64) *Target {
	if mv := st.move(key); mv != nil && mv.ReadShare > 0 && (mv.ReadShare >= MaxReadShare || mrand.IntN(MaxReadShare) < mv.ReadShare) {
		return st.targets[mv.To]
	}
	return st.targets[st.m.Owner(key)]
}

// Router routes keys to shards by the current map. It is safe for
// concurrent use; Apply swaps the map while calls run.
type Router struct {
	cfg      Config
	cur      atomic.Pointer[state]
	applyMu  sync.Mutex              // one Apply at a time; guards draining
	draining []*state                // replaced states whose writes may still run
	mu       sync.Mutex              // open, retiring, closed
	open     map[string]*Target      // the shards of the map in use, by name
	retiring map[*Target]*time.Timer // dropped shards, closed when their timer fires
	metrics  *metrics
	closed   bool
	isClosed atomic.Bool // closed, for the calls' fast check
	tr       spans.Tracer
}

// New opens a replica.Router for each shard of m and returns a Router
// that routes by m.
func New(ctx context.Context, m *Map, cfg Config) (*Router, error) {
	if cfg.EachTimeout < 0 || cfg.EachConcurrency < 0 {
		return nil, fmt.Errorf("shard: EachTimeout (%v) and EachConcurrency (%d) must not be negative", cfg.EachTimeout, cfg.EachConcurrency)
	}
	if cfg.EachTimeout == 0 {
		cfg.EachTimeout = DefaultEachTimeout
	}
	if cfg.EachConcurrency == 0 {
		cfg.EachConcurrency = DefaultEachConcurrency
	}
	if cfg.FenceWait < 0 {
		return nil, fmt.Errorf("shard: FenceWait (%v) must not be negative", cfg.FenceWait)
	}
	if cfg.FenceWait == 0 {
		cfg.FenceWait = DefaultFenceWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	if cfg.Replica.TracerProvider == nil {
		cfg.Replica.TracerProvider = cfg.TracerProvider
	}
	r := &Router{cfg: cfg, open: map[string]*Target{}, retiring: map[*Target]*time.Timer{}, metrics: met, tr: spans.New(cfg.TracerProvider, tracerScope)}
	if err := r.apply(ctx, m); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// retireAfter is how long a shard a new map dropped stays open, so that
// calls that chose it under the old map finish there.
const retireAfter = 30 * time.Second

// Apply routes by m from now on, if it is newer than the map in use:
// shards it adds are opened first (a failure leaves the map in use and
// everything as it was), shards it drops are closed retireAfter after the
// swap, so calls already running finish on the shard they chose.
//
// The epoch in use again is a no-op (a Follower's first OnChange hands the
// router the map it was built from); an older one is ErrStaleMap. A shard
// keeps its URLs for as long as it keeps its name: a map that gives a
// shard in use other URLs is ErrBadMap (name the new server anew).
//
// Apply returns only once no write routed by an older map is still
// running, or fails when ctx ends first: an instance that reports a map
// applied (a Follower's heartbeat) promises that every write it makes from
// then on follows it, which a cutover's fence relies on. A later Apply
// waits for those writes again.
func (r *Router) Apply(ctx context.Context, m *Map) error {
	if err := r.apply(ctx, m); err != nil {
		return err
	}
	return r.drain(ctx)
}

// drain waits until the writes of every replaced state have finished.
func (r *Router) drain(ctx context.Context) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	for len(r.draining) > 0 {
		st := r.draining[0]
		if st.writes.Load() == 0 {
			r.draining = r.draining[1:]
			continue
		}
		if err := pause(ctx, time.Millisecond); err != nil {
			return fmt.Errorf("shard: %d writes routed by map epoch %d are still running: %w", st.writes.Load(), st.m.Epoch, err)
		}
	}
	return nil
}

func (r *Router) apply(ctx context.Context, m *Map) error {
	if err := m.Validate(); err != nil {
		return err
	}
	// One Apply at a time, so the epoch checked below is still the one in
	// use at the swap. r.mu is held only around the bookkeeping, not while
	// new shards are opened (a server that does not answer can take
	// seconds), so Close and the retire timers never wait on a connect.
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	if err := r.applicable(m); err != nil || r.cur.Load() != nil && m.Epoch == r.cur.Load().m.Epoch {
		r.mu.Unlock()
		return err
	}
	open := maps.Clone(r.open)
	r.mu.Unlock()

	st := newState(m, make([]*Target, len(m.Shards)))
	opened := map[string]*Target{} // by this Apply, closed again if it fails
	fail := func(err error) error {
		for _, t := range opened {
			_ = t.DB.Close()
		}
		return err
	}
	for i, s := range m.Shards {
		t, err := r.target(ctx, s, open, opened)
		if err != nil {
			return fail(err)
		}
		st.targets[i] = t
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fail(ErrClosed)
	}
	for name, t := range opened {
		r.open[name] = t
	}
	old := r.cur.Swap(st)
	if old != nil {
		close(old.changed) // writes held by a fence look again
		r.draining = append(r.draining, old)
	}
	r.metrics.epoch.Set(float64(m.Epoch))
	if old != nil {
		r.cfg.Logger.Info("shard: map applied", "epoch", m.Epoch, "was", old.m.Epoch, "shards", len(m.Shards))
	}
	for name, t := range r.open {
		if !st.has(name) {
			delete(r.open, name)
			r.retire(t)
		}
	}
	return nil
}

// applicable checks, under r.mu, that m may replace the map in use: the
// router is open and m is not older (the same epoch is a no-op, which the
// caller tells apart).
func (r *Router) applicable(m *Map) error {
	if r.closed {
		return ErrClosed
	}
	if cur := r.cur.Load(); cur != nil && m.Epoch < cur.m.Epoch {
		return fmt.Errorf("%w: epoch %d, in use %d", ErrStaleMap, m.Epoch, cur.m.Epoch)
	}
	return nil
}

// retire closes t after retireAfter (or at Close, if that comes first).
func (r *Router) retire(t *Target) {
	r.retiring[t] = time.AfterFunc(retireAfter, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.retiring[t]; ok {
			delete(r.retiring, t)
			_ = t.DB.Close()
		}
	})
}

func (st *state) has(name string) bool {
	for _, t := range st.targets {
		if t.Name == name {
			return true
		}
	}
	return false
}

// target returns the router of shard s from open (the shards in use), or
// opens one and records it in opened.
func (r *Router) target(ctx context.Context, s Shard, open, opened map[string]*Target) (*Target, error) {
	if t, ok := open[s.Name]; ok {
		if t.spec.URL != s.URL || !slices.Equal(t.spec.Replicas, s.Replicas) {
			return nil, fmt.Errorf("%w: shard %s is in use with other URLs; a new server needs a new name", ErrBadMap, s.Name)
		}
		return t, nil
	}
	cfg := r.cfg.Replica
	cfg.Primary = s.URL
	cfg.Replicas = nil
	for i, u := range s.Replicas {
		cfg.Replicas = append(cfg.Replicas, replica.Replica{URL: u, Name: fmt.Sprintf("replica%d", i+1)})
	}
	if r.cfg.Registerer != nil {
		cfg.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"shard": s.Name}, r.cfg.Registerer)
	}
	if cfg.Logger == nil {
		cfg.Logger = r.cfg.Logger.With("shard", s.Name)
	}
	db, err := replica.Open(ctx, cfg)
	if err != nil {
		return nil, &Error{Shard: s.Name, Err: err}
	}
	t := &Target{Name: s.Name, DB: db, spec: s, calls: r.metrics.calls.WithLabelValues(s.Name)}
	opened[s.Name] = t
	return t, nil
}

// For returns the shard that owns key. It does not allocate.
func (r *Router) For(key int64) *Target {
	st := r.cur.Load()
	return st.targets[st.m.Owner(key)]
}

// Map returns the map in use.
func (r *Router) Map() *Map { return r.cur.Load().m }

// Shards returns every shard of the map in use, in map order.
func (r *Router) Shards() []*Target {
	return append([]*Target(nil), r.cur.Load().targets...)
}

// Read runs fn where reads of key go: a replica of its shard or its
// primary (see replica.Router.Read); while key's virtual shard is moving,
// the move's read share of the reads go to its target, and one the
// target fails (down, or missing a row it has not received yet) runs
// again on the owner. A failure names the shard.
func (r *Router) Read(ctx context.Context, key int64, fn func(ctx context.Context, q replica.Querier) error) error {
	if r.isClosed.Load() {
		return ErrClosed
	}
	st := r.cur.Load()
	t := st.reader(key)
	ctx, end := r.traceCall(ctx, spanRead, st, key, t)
	t.calls.Inc()
	err := t.wrap(t.DB.Read(ctx, fn))
	if owner := st.targets[st.m.Owner(key)]; err != nil && t != owner && ctx.Err() == nil {
		// A move's target failed the read (it may be down, or lag behind
		// a write the caller made): the owner has the rows and answers.
		r.traceRetry(ctx, err)
		owner.calls.Inc()
		err = owner.wrap(owner.DB.Read(ctx, fn))
	}
	end(err)
	return err
}

// Write runs fn on the primary of key's shard and returns the write's
// read-your-writes token (valid on that shard only). A write to a virtual
// shard that a move has fenced waits for the map that lifts the fence, up
// to Config.FenceWait, then goes to the owner that map names; past the
// wait it fails with ErrFenced.
func (r *Router) Write(ctx context.Context, key int64, fn func(ctx context.Context, q replica.Querier) error) (replica.Token, error) {
	if r.isClosed.Load() {
		return 0, ErrClosed
	}
	st, err := r.unfenced(ctx, key)
	if err != nil {
		return 0, err
	}
	defer st.writes.Add(-1)
	t := st.targets[st.m.Owner(key)]
	ctx, end := r.traceCall(ctx, spanWrite, st, key, t)
	t.calls.Inc()
	tok, err := t.DB.Write(ctx, fn)
	end(err)
	return tok, t.wrap(err)
}

// Tx runs fn in one transaction on the primary of the shard that owns
// every key in keys. Keys on more than one shard are ErrCrossShard, before
// anything runs: Strata does not run distributed transactions.
func (r *Router) Tx(ctx context.Context, keys []int64, fn func(ctx context.Context, tx *sql.Tx) error) (replica.Token, error) {
	if len(keys) == 0 {
		return 0, fmt.Errorf("shard: Tx needs the keys it writes")
	}
	if r.isClosed.Load() {
		return 0, ErrClosed
	}
	st, err := r.unfenced(ctx, keys...)
	if err != nil {
		return 0, err
	}
	defer st.writes.Add(-1)
	owner := st.m.Owner(keys[0])
	for _, k := range keys[1:] {
		if o := st.m.Owner(k); o != owner {
			return 0, fmt.Errorf("%w: key %d is on %s, key %d on %s", ErrCrossShard, keys[0], st.targets[owner].Name, k, st.targets[o].Name)
		}
	}
	t := st.targets[owner]
	ctx, end := r.traceCall(ctx, spanTx, st, keys[0], t)
	t.calls.Inc()
	tok, err := t.DB.WriteTx(ctx, fn)
	end(err)
	return tok, t.wrap(err)
}

// unfenced returns the state to route a write of keys by: the current one
// once none of their virtual shards is fenced, waiting for newer maps up
// to Config.FenceWait. The write is counted in the state's writes (the
// caller releases it when done), and only while the state is current, so
// that Apply's drain cannot miss it.
func (r *Router) unfenced(ctx context.Context, keys ...int64) (*state, error) {
	var timer <-chan time.Time
	for {
		st := r.cur.Load()
		st.writes.Add(1)
		if r.cur.Load() != st { // replaced meanwhile: route by the new one
			st.writes.Add(-1)
			continue
		}
		var fenced *MapMove
		for _, k := range keys {
			if mv := st.move(k); mv != nil && mv.Fenced {
				fenced = mv
				break
			}
		}
		if fenced == nil {
			return st, nil
		}
		st.writes.Add(-1) // held, not writing
		if timer == nil {
			t := time.NewTimer(r.cfg.FenceWait)
			defer t.Stop()
			timer = t.C
			r.metrics.fenced.Inc()
		}
		select {
		case <-st.changed:
		case <-timer:
			return nil, &Error{Shard: st.m.Shards[st.m.Owner(keys[0])].Name, Err: fmt.Errorf("%w: virtual shards %s still fenced after %v (epoch %d)", ErrFenced, fenced.VShards, r.cfg.FenceWait, st.m.Epoch)}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (t *Target) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Shard: t.Name, Err: err}
}

// Result is what a fan-out heard: the shards that answered, and why each
// of the others did not.
type Result struct {
	Answered []string
	Failed   map[string]error
}

// eachAnswer is one leg's outcome.
type eachAnswer struct {
	name string
	err  error
}

// add records one leg's outcome.
func (r *Result) add(a eachAnswer) {
	if a.err != nil {
		r.Failed[a.name] = a.err
	} else {
		r.Answered = append(r.Answered, a.name)
	}
}

// drain records the outcomes already sent, without waiting for more.
func (r *Result) drain(answers <-chan eachAnswer) {
	for {
		select {
		case a := <-answers:
			r.add(a)
		default:
			return
		}
	}
}

// Complete reports whether every shard answered.
func (r Result) Complete() bool { return len(r.Failed) == 0 }

// Each runs fn on every shard at once (at most Config.EachConcurrency at a
// time) under Config.EachTimeout, and reports which answered. When some
// did not, the error is ErrPartial (with the Result still filled), so a
// partial answer is never taken for a whole one: the caller decides
// whether it will do. fn must return when its context ends.
func (r *Router) Each(ctx context.Context, fn func(ctx context.Context, t *Target) error) (Result, error) {
	return r.EachWithin(ctx, r.cfg.EachTimeout, fn)
}

// EachWithin is Each with a deadline of its own instead of
// Config.EachTimeout: for background work (an aggregate over every shard)
// that may take longer than a request's budget. A timeout <= 0 is an error.
func (r *Router) EachWithin(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, t *Target) error) (Result, error) {
	if !r.tr.On() {
		return r.eachWithin(ctx, timeout, fn)
	}
	st := r.cur.Load()
	ctx, span := r.startEach(ctx, st.m.Epoch, len(st.targets))
	res, err := r.eachWithin(ctx, timeout, fn)
	endEach(span, res, err)
	return res, err
}

// eachWithin is EachWithin without its span.
func (r *Router) eachWithin(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, t *Target) error) (Result, error) {
	if timeout <= 0 {
		return Result{}, fmt.Errorf("shard: EachWithin needs a positive timeout, got %v", timeout)
	}
	if r.isClosed.Load() {
		return Result{}, ErrClosed
	}
	parent := ctx
	targets := r.cur.Load().targets
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.metrics.fanouts.Inc()
	answers := make(chan eachAnswer, len(targets))
	sem := make(chan struct{}, r.cfg.EachConcurrency)
	for _, t := range targets {
		go func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				answers <- eachAnswer{t.Name, ctx.Err()}
				return
			}
			defer func() { <-sem }()
			t.calls.Inc()
			err := r.call(ctx, t, fn)
			if err != nil && ctx.Err() != nil && parent.Err() == nil {
				// fn gave up because the deadline passed: say so.
				err = fmt.Errorf("no answer within %v: %w", timeout, err)
			}
			answers <- eachAnswer{t.Name, err}
		}()
	}
	res := Result{Failed: map[string]error{}}
	for range targets {
		var a eachAnswer
		select {
		case a = <-answers:
		case <-ctx.Done():
			// The deadline passed (or the caller gave up): the answers
			// already in are kept, whoever else has not answered is
			// missing. Their goroutines end on their own (fn honours ctx).
			res.drain(answers)
			why := fmt.Errorf("no answer within %v: %w", timeout, ctx.Err())
			if parent.Err() != nil {
				why = fmt.Errorf("the caller gave up: %w", parent.Err())
			}
			for _, t := range targets {
				if !slices.Contains(res.Answered, t.Name) && res.Failed[t.Name] == nil {
					res.Failed[t.Name] = why
				}
			}
			return r.finish(res)
		}
		res.add(a)
	}
	return r.finish(res)
}

func (r *Router) finish(res Result) (Result, error) {
	sort.Strings(res.Answered)
	if res.Complete() {
		return res, nil
	}
	r.metrics.partial.Inc()
	names := make([]string, 0, len(res.Failed))
	for n := range res.Failed {
		names = append(names, n)
	}
	sort.Strings(names)
	return res, fmt.Errorf("%w: %d of %d missing (%s)", ErrPartial, len(names), len(names)+len(res.Answered), strings.Join(names, ", "))
}

// Close closes every shard's router, the retiring ones too. Calls after
// it fail with ErrClosed. It is idempotent.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.isClosed.Store(true)
	var errs []error
	for _, t := range r.open {
		errs = append(errs, t.DB.Close())
	}
	for t, timer := range r.retiring {
		timer.Stop()
		errs = append(errs, t.DB.Close())
	}
	r.open, r.retiring = nil, nil
	r.metrics.unregister()
	return errors.Join(errs...)
}
