package overload_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/overload"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t *testing.T, cfg overload.Config) *overload.Limiter {
	t.Helper()
	l, err := overload.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return l
}

// acquireN admits n pieces of work of class c, failing the test on a
// refusal.
func acquireN(t *testing.T, l *overload.Limiter, c overload.Class, n int) []*overload.Token {
	t.Helper()
	toks := make([]*overload.Token, n)
	for i := range toks {
		tok, err := l.Acquire(context.Background(), c)
		if err != nil {
			t.Fatalf("%s #%d: %v (stats %+v)", c, i+1, err, l.Stats())
		}
		toks[i] = tok
	}
	return toks
}

func doneAll(toks []*overload.Token) {
	for _, tok := range toks {
		tok.Done()
	}
}

// TestLimitFollowsLatency: each window's p99 against the 100 ms target
// moves the limit as the package documentation says, on a fake clock.
func TestLimitFollowsLatency(t *testing.T) {
	for _, tc := range []struct {
		name      string
		initial   int
		inFlight  int           // work admitted at once, then released together
		latency   time.Duration // of every piece
		wantLimit int
	}{
		// Under 80 % of the target with the limit in use: + √20 = 24.47.
		{"fast grows", 20, 20, 50 * time.Millisecond, 24},
		// Between 80 % and 100 % of the target: held.
		{"near the target holds", 20, 20, 90 * time.Millisecond, 20},
		// At the target exactly: not over it, held.
		{"at the target holds", 20, 20, 100 * time.Millisecond, 20},
		// 125 ms: the gradient 100/125 cuts to 16.
		{"over cuts in proportion", 20, 20, 125 * time.Millisecond, 16},
		// 200 ms: halved.
		{"twice the target halves", 20, 20, 200 * time.Millisecond, 10},
		// 1 s: still only halved (the gradient is at least 0.5).
		{"far over halves at most", 20, 20, time.Second, 10},
		// Fast, but only 20 of 100 in flight: app-limited, held.
		{"app-limited holds", 100, 20, 10 * time.Millisecond, 100},
		// Slow, but only 20 of 100 in flight: the latency is not the
		// limit's doing, held too.
		{"app-limited slow holds", 100, 20, time.Second, 100},
		// Halving 20 would go under MinLimit 15.
		{"min limit", 20, 20, time.Second, 15},
		// Growing 30 by √30 would pass MaxLimit 32.
		{"max limit", 30, 30, time.Millisecond, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			minLimit := 4
			if tc.name == "min limit" {
				minLimit = 15
			}
			l := newLimiter(t, overload.Config{InitialLimit: tc.initial, MinLimit: minLimit, MaxLimit: max(32, tc.initial), Window: time.Nanosecond, QueueSize: -1, Now: clock.Now})
			// 20 samples close a window: the minimum.
			toks := acquireN(t, l, overload.Critical, tc.inFlight)
			clock.Advance(tc.latency)
			doneAll(toks)
			if got := l.Stats(); got.Limit != tc.wantLimit || got.Latency != tc.latency {
				t.Errorf("after a window of %d at %v: limit %d, window latency %v; want limit %d", tc.inFlight, tc.latency, got.Limit, got.Latency, tc.wantLimit)
			}
		})
	}
}

// TestWindowQuantile: the limit follows the window's p99, not its
// slowest request: one slow request in 200 does not cut it, five do.
func TestWindowQuantile(t *testing.T) {
	for _, tc := range []struct {
		slow      int
		wantShrug bool // the limit grew, as for a fast window
	}{
		{slow: 1, wantShrug: true},   // 1 in 201 is past the p99: the p99 is fast
		{slow: 5, wantShrug: false},  // 5 in 201: the p99 is slow
		{slow: 0, wantShrug: true},   // none: fast
		{slow: 20, wantShrug: false}, // a tenth
	} {
		clock := newFakeClock()
		l := newLimiter(t, overload.Config{InitialLimit: 200, MaxLimit: 400, Window: 2 * time.Second, QueueSize: -1, Now: clock.Now})
		toks := acquireN(t, l, overload.Critical, 200)
		clock.Advance(10 * time.Millisecond)
		doneAll(toks[tc.slow:])
		clock.Advance(time.Second)
		doneAll(toks[:tc.slow])
		if got := l.Stats(); got.Limit != 200 || got.Latency != 0 {
			t.Fatalf("slow %d: the window closed early: %+v", tc.slow, got)
		}
		clock.Advance(time.Second) // past the window: one more sample closes it
		doneAll(acquireN(t, l, overload.Critical, 1))
		got := l.Stats()
		if grew := got.Limit > 200; grew != tc.wantShrug {
			t.Errorf("%d slow of 200: limit %d (window latency %v); want growth %v", tc.slow, got.Limit, got.Latency, tc.wantShrug)
		}
	}
}

// TestLimitRecovers: slow windows bring the limit down, fast ones (with
// the limit in use) bring it back up. A window closes at 20 samples here.
func TestLimitRecovers(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(t, overload.Config{InitialLimit: 200, MinLimit: 4, Window: time.Nanosecond, QueueSize: -1, Now: clock.Now})
	window := func(lat time.Duration) int {
		n := max(l.Stats().Limit, 20) // fill the limit: not app-limited
		var toks []*overload.Token
		for range n {
			tok, err := l.Acquire(context.Background(), overload.Critical)
			if err != nil {
				break
			}
			toks = append(toks, tok)
		}
		clock.Advance(lat)
		doneAll(toks)
		return l.Stats().Limit
	}
	// 200 slow samples are ten windows of 20: each halves the limit, down
	// to MinLimit.
	if got := window(300 * time.Millisecond); got != 4 {
		t.Fatalf("after 200 samples at 300 ms: limit %d, want MinLimit 4", got)
	}
	prev := 4
	for range 30 {
		got := window(20 * time.Millisecond)
		if got < prev {
			t.Fatalf("a fast window cut the limit from %d to %d", prev, got)
		}
		prev = got
	}
	if prev < 100 {
		t.Errorf("30 rounds of fast windows took the limit from 4 to %d only", prev)
	}
}

// TestPriorities: with a fixed limit of 10, sheddable work is refused
// once 5 are in flight, normal work at 8, critical work at 10: as load
// grows, the sheddable is shed first, then the normal, the critical
// last of all.
func TestPriorities(t *testing.T) {
	l := newLimiter(t, overload.Config{InitialLimit: 10, MinLimit: 10, MaxLimit: 10, QueueSize: -1})
	ctx := context.Background()
	steps := []struct {
		class overload.Class
		ok    bool
	}{
		{overload.Sheddable, true}, {overload.Sheddable, true}, {overload.Sheddable, true}, {overload.Sheddable, true}, {overload.Sheddable, true},
		{overload.Sheddable, false}, // 5 in flight: half the limit
		{overload.Normal, true}, {overload.Normal, true}, {overload.Normal, true},
		{overload.Normal, false}, {overload.Sheddable, false}, // 8: 80 %
		{overload.Critical, true}, {overload.Critical, true},
		{overload.Critical, false}, {overload.Normal, false}, {overload.Sheddable, false}, // 10: the limit
	}
	var held []*overload.Token
	for i, s := range steps {
		tok, err := l.Acquire(ctx, s.class)
		if (err == nil) != s.ok {
			t.Fatalf("step %d, %s: err %v, want admitted %v (stats %+v)", i+1, s.class, err, s.ok, l.Stats())
		}
		if err != nil {
			var re *overload.RejectedError
			if !errors.As(err, &re) || !errors.Is(err, overload.ErrOverloaded) || re.Class != s.class || re.Limit != 10 {
				t.Fatalf("step %d: refusal %v (%#v), want a *RejectedError for %s wrapping ErrOverloaded", i+1, err, err, s.class)
			}
			continue
		}
		held = append(held, tok)
	}
	st := l.Stats()
	if st.InFlight != [3]int{2, 3, 5} || st.Rejected != [3]uint64{1, 2, 3} || st.Admitted != [3]uint64{2, 3, 5} {
		t.Errorf("stats %+v: want in flight [2 3 5], rejected [1 2 3], admitted [2 3 5]", st)
	}
	// One critical slot freed: critical work gets it, normal work still
	// does not (9 in flight is over its 8).
	held[len(held)-1].Done()
	if _, err := l.Acquire(ctx, overload.Normal); err == nil {
		t.Error("normal work admitted with 9 of 10 in flight")
	}
	if _, err := l.Acquire(ctx, overload.Critical); err != nil {
		t.Errorf("critical work refused with 9 of 10 in flight: %v", err)
	}
}

// TestCriticalReserve: after the limit is cut below the normal work
// already in flight, critical work still gets the fifth of the new limit
// reserved for it, and normal work waits for the rest to drain. (The
// critical floor is below the limit here: the limit governs.)
func TestCriticalReserve(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(t, overload.Config{InitialLimit: 20, MinLimit: 4, CriticalFloor: 4, Window: time.Nanosecond, QueueSize: -1, Now: clock.Now})
	normal := acquireN(t, l, overload.Normal, 16) // 80 % of 20
	for range 20 {                                // a slow window: the limit halves
		tok := acquireN(t, l, overload.Critical, 1)
		clock.Advance(time.Second)
		doneAll(tok)
	}
	if st := l.Stats(); st.Limit != 10 || st.InFlight != [3]int{0, 16, 0} {
		t.Fatalf("after the slow window: %+v, want limit 10 with 16 normal in flight", st)
	}
	crit := acquireN(t, l, overload.Critical, 2) // a fifth of 10
	if _, err := l.Acquire(context.Background(), overload.Critical); !errors.Is(err, overload.ErrOverloaded) {
		t.Errorf("a third critical past its reserve with 18 of 10 in flight: %v, want a refusal", err)
	}
	if _, err := l.Acquire(context.Background(), overload.Normal); !errors.Is(err, overload.ErrOverloaded) {
		t.Errorf("normal work with 18 of 10 in flight: %v, want a refusal", err)
	}
	doneAll(crit)
	doneAll(normal)
}

// TestCriticalFloor: a latency no limit cures cuts the limit to MinLimit,
// which sheds normal work (three in flight at a limit of 4) while
// critical work is still admitted up to CriticalFloor in flight.
func TestCriticalFloor(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(t, overload.Config{Window: time.Nanosecond, QueueSize: -1, Now: clock.Now}) // the defaults: MinLimit 4, CriticalFloor 20
	for range 200 {                                                                             // slow windows at the whole limit: it falls to its minimum
		toks := acquireN(t, l, overload.Normal, max(1, l.Stats().Limit*8/10))
		clock.Advance(time.Second)
		doneAll(toks)
	}
	if st := l.Stats(); st.Limit != overload.DefaultMinLimit {
		t.Fatalf("after slow windows: limit %d, want MinLimit %d", st.Limit, overload.DefaultMinLimit)
	}
	normal := acquireN(t, l, overload.Normal, 3) // 80 % of 4
	if _, err := l.Acquire(context.Background(), overload.Normal); !errors.Is(err, overload.ErrOverloaded) {
		t.Errorf("a fourth normal at a limit of 4: %v, want a refusal", err)
	}
	crit := acquireN(t, l, overload.Critical, overload.DefaultCriticalFloor-3)
	if _, err := l.Acquire(context.Background(), overload.Critical); !errors.Is(err, overload.ErrOverloaded) {
		t.Errorf("critical work past the floor of %d in flight: %v, want a refusal", overload.DefaultCriticalFloor, err)
	}
	doneAll(crit)
	doneAll(normal)
}

// waitFor polls cond (the queue's state, which no channel announces)
// until it holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type result struct {
	tok *overload.Token
	err error
}

func acquireAsync(l *overload.Limiter, ctx context.Context, c overload.Class) <-chan result {
	ch := make(chan result, 1)
	go func() {
		tok, err := l.Acquire(ctx, c)
		ch <- result{tok, err}
	}()
	return ch
}

// TestQueue: the queue is bounded (work past it is refused at once, but
// critical work takes the place of the newest normal work), hands freed
// room to critical work before normal work queued earlier, and never
// holds sheddable work.
func TestQueue(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueSize: 2, QueueTimeout: time.Minute})
	held := acquireN(t, l, overload.Critical, 4)

	normal := acquireAsync(l, ctx, overload.Normal)
	waitFor(t, "the normal work to queue", func() bool { return l.Stats().Queued == 1 })
	critical := acquireAsync(l, ctx, overload.Critical)
	waitFor(t, "the critical work to queue", func() bool { return l.Stats().Queued == 2 })

	// The queue is full: normal and sheddable work is refused at once
	// (critical work would take the normal work's place: below).
	for _, c := range []overload.Class{overload.Normal, overload.Sheddable} {
		if _, err := l.Acquire(ctx, c); !errors.Is(err, overload.ErrOverloaded) {
			t.Fatalf("%s with the queue full: %v, want a refusal", c, err)
		}
	}
	if _, err := l.Acquire(ctx, overload.Normal); err == nil || !strings.Contains(err.Error(), "queue full") {
		t.Errorf("refusal %v does not say the queue is full", err)
	}

	// One slot freed: the critical work gets it, though it came second.
	held[0].Done()
	r := <-critical
	if r.err != nil {
		t.Fatalf("queued critical work: %v", r.err)
	}
	select {
	case r := <-normal:
		t.Fatalf("normal work admitted (%v) with 4 of 4 in flight", r.err)
	default:
	}
	// Normal work needs 4 × 0.8 = 3 in flight at most: two more freed.
	held[1].Done()
	held[2].Done()
	if r := <-normal; r.err != nil {
		t.Fatalf("queued normal work: %v", r.err)
	}

	// A full queue of normal work: critical work takes the newest one's
	// place, which is refused.
	l3 := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueSize: 2, QueueTimeout: time.Minute})
	held3 := acquireN(t, l3, overload.Critical, 4)
	first := acquireAsync(l3, ctx, overload.Normal)
	waitFor(t, "the first normal work to queue", func() bool { return l3.Stats().Queued == 1 })
	second := acquireAsync(l3, ctx, overload.Normal)
	waitFor(t, "the second normal work to queue", func() bool { return l3.Stats().Queued == 2 })
	crit := acquireAsync(l3, ctx, overload.Critical)
	if r := <-second; !errors.Is(r.err, overload.ErrOverloaded) || !strings.Contains(r.err.Error(), "critical") {
		t.Fatalf("the newest normal work in a full queue, when critical work came: %v, want it refused", r.err)
	}
	waitFor(t, "the critical work to queue", func() bool { return l3.Stats().Queued == 2 })
	held3[0].Done()
	if r := <-crit; r.err != nil {
		t.Fatalf("critical work that took a queued place: %v", r.err)
	}
	doneAll(held3[1:])
	if r := <-first; r.err != nil {
		t.Fatalf("the older normal work: %v", r.err)
	}

	// Sheddable work never waits, even with room in the queue.
	l2 := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueSize: 8, QueueTimeout: time.Minute})
	acquireN(t, l2, overload.Critical, 4)
	if _, err := l2.Acquire(ctx, overload.Sheddable); !errors.Is(err, overload.ErrOverloaded) || l2.Stats().Queued != 0 {
		t.Errorf("sheddable work with no room: %v, queued %d; want refused at once", err, l2.Stats().Queued)
	}
}

// TestQueueTimeout: queued work gives up after QueueTimeout (refused, as
// overload) or when its context is canceled (its context's error, not
// counted as a refusal), leaving nothing queued.
func TestQueueTimeout(t *testing.T) {
	l := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueTimeout: 5 * time.Millisecond})
	acquireN(t, l, overload.Critical, 4)
	start := time.Now()
	_, err := l.Acquire(context.Background(), overload.Critical)
	waited := time.Since(start)
	if !errors.Is(err, overload.ErrOverloaded) || !strings.Contains(err.Error(), "queue timeout") {
		t.Fatalf("after the queue timeout: %v, want a refusal naming it", err)
	}
	if waited < 5*time.Millisecond || waited > 5*time.Second {
		t.Errorf("waited %v for a 5ms queue timeout", waited)
	}

	long := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueTimeout: time.Hour})
	acquireN(t, long, overload.Critical, 4)
	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(long, ctx, overload.Normal)
	waitFor(t, "the work to queue", func() bool { return long.Stats().Queued == 1 })
	cancel()
	r := <-ch
	if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, overload.ErrOverloaded) {
		t.Errorf("canceled while queued: %v, want context.Canceled", r.err)
	}
	if st := long.Stats(); st.Queued != 0 || st.Rejected != [3]uint64{} {
		t.Errorf("after the cancel: %+v, want nothing queued or refused", st)
	}
	if _, err := long.Acquire(ctx, overload.Critical); !errors.Is(err, overload.ErrOverloaded) {
		t.Errorf("Acquire with a canceled context and no room: %v, want a refusal at once", err)
	}
}

// TestNoLeak: many goroutines acquiring and releasing at random classes,
// with a small queue and limit, leave nothing in flight or queued, every
// offer counted once, and no goroutine behind.
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	l := newLimiter(t, overload.Config{InitialLimit: 8, MinLimit: 8, MaxLimit: 8, QueueSize: 4, QueueTimeout: time.Millisecond})
	const workers, each = 32, 200
	var wg sync.WaitGroup
	var gaveUp sync.Map
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range each {
				c := overload.Class(r.IntN(3))
				tok, err := l.Acquire(context.Background(), c)
				if err != nil {
					if !errors.Is(err, overload.ErrOverloaded) {
						gaveUp.Store(w*each+i, err)
					}
					continue
				}
				runtime.Gosched()
				if i%7 == 0 {
					tok.Ignore()
				} else {
					tok.Done()
				}
				tok.Done() // a second call does nothing
			}
		})
	}
	wg.Wait()
	gaveUp.Range(func(k, v any) bool {
		t.Errorf("acquire %v: %v, want admitted or refused", k, v)
		return true
	})
	st := l.Stats()
	var offered uint64
	for k := range 3 {
		offered += st.Admitted[k] + st.Rejected[k]
	}
	if st.InFlight != [3]int{} || st.Queued != 0 || offered != workers*each {
		t.Errorf("after the run: %+v (offered %d), want nothing in flight or queued and %d offered", st, offered, workers*each)
	}
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestOfferedRate: utilisation is the work offered per second over the
// last ten whole seconds, admitted or refused, over CapacityRPS.
func TestOfferedRate(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(t, overload.Config{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, QueueSize: -1, CapacityRPS: 100, Now: clock.Now})
	for range 10 {
		for range 150 { // 4 admitted, 146 refused, each second
			if tok, err := l.Acquire(context.Background(), overload.Critical); err == nil {
				defer tok.Done()
			}
		}
		clock.Advance(time.Second)
	}
	st := l.Stats()
	if st.OfferedRPS != 150 || st.Utilisation != 1.5 {
		t.Errorf("150 offered a second for 10 s at a capacity of 100: offered %v/s, utilisation %v; want 150 and 1.5", st.OfferedRPS, st.Utilisation)
	}
	clock.Advance(5 * time.Second) // half the window idle
	if st := l.Stats(); st.OfferedRPS > 75 || st.OfferedRPS < 50 {
		t.Errorf("5 s idle: offered %v/s, want about half of 150", st.OfferedRPS)
	}
	clock.Advance(time.Minute)
	if st := l.Stats(); st.OfferedRPS != 0 || st.Utilisation != 0 {
		t.Errorf("a minute idle: %+v, want nothing offered", st)
	}
}

// TestConfigErrors: a Config New cannot use is refused, naming the field.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   overload.Config
		field string
	}{
		{overload.Config{Target: -time.Second}, "Target"},
		{overload.Config{Quantile: 1}, "Quantile"},
		{overload.Config{Quantile: -0.5}, "Quantile"},
		{overload.Config{MinLimit: -1}, "MinLimit"},
		{overload.Config{MinLimit: 50, MaxLimit: 10}, "MinLimit"},
		{overload.Config{InitialLimit: 5, MinLimit: 10}, "InitialLimit"},
		{overload.Config{NormalShare: 1.5}, "NormalShare"},
		{overload.Config{NormalShare: 0.4, SheddableShare: 0.6}, "SheddableShare"},
		{overload.Config{QueueTimeout: -1}, "QueueTimeout"},
		{overload.Config{CapacityRPS: -3}, "CapacityRPS"},
	} {
		_, err := overload.New(tc.cfg)
		if !errors.Is(err, overload.ErrBadConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig naming %s", tc.cfg, err, tc.field)
		}
	}
	// A MinLimit above the default maximum raises the maximum with it.
	if l, err := overload.New(overload.Config{MinLimit: 2000}); err != nil || l.Stats().Limit != 2000 {
		t.Errorf("New with MinLimit 2000: %v", err)
	}
	if _, err := newLimiter(t, overload.Config{}).Acquire(context.Background(), overload.Class(9)); err == nil {
		t.Error("Acquire of an unknown class succeeded")
	}
}

// TestMetrics: the series pass client_golang's lint, every class's
// counters exist at 0 from the start, and utilisation is registered only
// with a capacity.
func TestMetrics(t *testing.T) {
	for _, capacity := range []float64{0, 250} {
		reg := prometheus.NewPedanticRegistry()
		l := newLimiter(t, overload.Config{Registerer: reg, CapacityRPS: capacity})
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Fatalf("lint: %v %v", problems, err)
		}
		want := 3 * 3 // inflight, admitted and rejected by class
		if n, err := testutil.GatherAndCount(reg, "strata_overload_inflight", "strata_overload_admitted_total", "strata_overload_rejected_total"); err != nil || n != want {
			t.Errorf("class series: %d (%v), want %d", n, err, want)
		}
		n, err := testutil.GatherAndCount(reg, overload.UtilisationMetric)
		if err != nil || (n == 1) != (capacity > 0) {
			t.Errorf("capacity %v: %d utilisation series (%v)", capacity, n, err)
		}
		if _, err := l.Acquire(context.Background(), overload.Normal); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(collectorOf(reg, "strata_overload_limit")); got != overload.DefaultInitialLimit {
			t.Errorf("strata_overload_limit = %v, want %d", got, overload.DefaultInitialLimit)
		}
	}
	if _, err := overload.New(overload.Config{Registerer: registerFails{}}); err == nil {
		t.Error("New with a failing registerer succeeded")
	}
}

// collectorOf is a gauge from reg's gathered series, for ToFloat64.
func collectorOf(reg *prometheus.Registry, name string) prometheus.Collector {
	mfs, _ := reg.Gather()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "copy"})
	for _, mf := range mfs {
		if mf.GetName() == name {
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return g
}

// registerFails is a Registerer whose Register always fails.
type registerFails struct{ prometheus.Registerer }

func (registerFails) Register(prometheus.Collector) error { return errors.New("no") }
