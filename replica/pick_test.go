package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func floatBits(f float64) uint64 { return math.Float64bits(f) }

func testNodes(n int) []*node {
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{idx: i, name: "r", capacity: 40}
	}
	return nodes
}

func TestPick(t *testing.T) {
	nodes := testNodes(3)
	setLat := func(n *node, ns float64) { n.latency.Store(floatBits(ns)) }
	for _, n := range nodes {
		setLat(n, 1e6)
	}
	// Load first: the least loaded wins whatever its latency.
	nodes[0].inUse.Store(5)
	nodes[1].inUse.Store(1)
	nodes[2].inUse.Store(3)
	setLat(nodes[1], 9e6)
	if got := pick(nodes, 0, 0); got != nodes[1] {
		t.Fatalf("picked %d, want the least loaded (1)", got.idx)
	}
	// Equal load: a latency under half of the others' wins; a small
	// difference does not, and ties are shared.
	for _, n := range nodes {
		n.inUse.Store(0)
	}
	setLat(nodes[1], 1e6)
	setLat(nodes[2], 0.4e6)
	if got := pick(nodes, 0, 0); got != nodes[2] {
		t.Fatalf("picked %d, want the much faster (2)", got.idx)
	}
	setLat(nodes[2], 0.8e6)
	seen := map[int]int{}
	for range 3000 {
		seen[pick(nodes, 0, 0).idx]++
	}
	for i := range nodes {
		if seen[i] < 700 {
			t.Errorf("near-equal replicas: picks %v; want each about a third", seen)
		}
	}
	// Tried ones and ones behind the token are skipped.
	if got := pick(nodes, 1<<0|1<<2, 0); got != nodes[1] {
		t.Fatalf("picked %d, want the untried one (1)", got.idx)
	}
	nodes[0].replay.Store(100)
	if got := pick(nodes, 0, 50); got != nodes[0] {
		t.Fatalf("picked %v, want the one that replayed the token (0)", got)
	}
	if got := pick(nodes, 1<<0, 50); got != nil {
		t.Fatalf("picked %d, want none", got.idx)
	}
}

// BenchmarkPick: one replica choice among three, from parallel callers.
func BenchmarkPick(b *testing.B) {
	nodes := testNodes(3)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if pick(nodes, 0, 0) == nil {
				b.Fatal("no pick")
			}
		}
	})
}

func TestFallbackLimiter(t *testing.T) {
	clk := NewFakeClock()
	f := fallbackLimiter{start: clk.Now()}
	allowed := 0
	for range 1000 {
		f.read()
		if f.allow(0.25, clk.Now()) {
			allowed++
		}
		clk.Advance(time.Millisecond) // a second of reads, in one window
	}
	if allowed < 240 || allowed > 260 {
		t.Fatalf("share 0.25 of 1000 reads: %d allowed", allowed)
	}
	// After a quiet spell, the old reads count as a rate, not a heap: an
	// hour of reads does not let the next second's fallbacks through.
	f = fallbackLimiter{start: clk.Now()}
	clk.Advance(time.Hour)
	f.reads.Store(3600) // one read a second for an hour
	allowed = 0
	for range 100 {
		f.read()
		if f.allow(0.5, clk.Now()) {
			allowed++
		}
	}
	if allowed > 55 {
		t.Fatalf("after a quiet hour, %d of 100 reads fell back; want about half", allowed)
	}
}

// pressured returns a router whose primary pool holds 10 connections
// (size + overflow), with inUse of them in use and the given mean call
// time, and the given fallback share.
func pressured(clk *FakeClock, inUse int64, latency time.Duration, share float64) *Router {
	r := &Router{cfg: Config{FallbackShare: share, PrimaryLatencyBound: DefaultPrimaryLatencyBound}, clk: clk,
		primary: &node{idx: -1, name: "primary", capacity: 10}}
	r.primary.inUse.Store(inUse)
	r.primary.latency.Store(floatBits(float64(latency)))
	r.fb.start = clk.Now()
	return r
}

// TestAdmitFallback: a primary with headroom takes every read no replica
// served; under pressure, by its pool or by its latency with a quarter of
// its pool in use, the share caps them and the refusal names the cause.
func TestAdmitFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inUse   int64
		latency time.Duration
		share   float64
		min     int    // fallbacks admitted of 200 reads, at least
		max     int    // and at most
		cause   string // in the refusals' message
	}{
		// The case: replicas gone, primary idle: no read refused.
		{"headroom", 0, time.Millisecond, 0.5, 200, 200, ""},
		// Just under 75 % of the pool in use is still headroom.
		{"pool at 70%", 7, time.Millisecond, 0.5, 200, 200, ""},
		// 75 % of the pool in use: the cap bites, about half get through.
		{"pool at 80%", 8, time.Millisecond, 0.5, 90, 110, "8 of its 10 connections"},
		// A slow primary with an idle pool is not under pressure: latency
		// alone (one stall of a loaded machine) refuses no read.
		{"slow, pool idle", 0, 300 * time.Millisecond, 0.5, 200, 200, ""},
		// Nor with a fifth of its pool in use, under the quarter that counts.
		{"slow, pool at 20%", 2, 300 * time.Millisecond, 0.5, 200, 200, ""},
		// Slow with 30 % of its pool in use: the cap bites, naming both.
		{"slow, pool at 30%", 3, 300 * time.Millisecond, 0.5, 90, 110, "mean call time 300ms, past its bound 100ms, with 3 of its 10 connections in use"},
		// Share 1 admits every fallback, pressure or not.
		{"share 1 under pressure", 10, time.Second, 1, 200, 200, ""},
		// A negative share admits none, even to an idle primary.
		{"negative share", 0, time.Millisecond, -1, 0, 0, "FallbackShare is negative"},
	} {
		clk := NewFakeClock()
		r := pressured(clk, tc.inUse, tc.latency, tc.share)
		admitted := 0
		for range 200 {
			r.fb.read()
			err := r.admitFallback(clk.Now())
			switch {
			case err == nil:
				admitted++
			case !errors.Is(err, ErrFallbackCapped) || !strings.Contains(err.Error(), tc.cause):
				t.Fatalf("%s: err = %v, want ErrFallbackCapped naming %q", tc.name, err, tc.cause)
			}
			clk.Advance(time.Millisecond)
		}
		if admitted < tc.min || admitted > tc.max {
			t.Errorf("%s: %d of 200 fallbacks admitted, want %d to %d", tc.name, admitted, tc.min, tc.max)
		}
	}
}

func TestLagSeconds(t *testing.T) {
	const bound, interval = time.Second, 500 * time.Millisecond
	var h lagHistory
	t0 := time.Now()
	if got := h.lagSeconds(t0, 5, bound, interval); got != 0 {
		t.Fatalf("no samples: %v, want no verdict (0)", got)
	}
	h.samples = []lsnSample{{t0, 1000}}
	if got := h.lagSeconds(t0, 10, bound, interval); got != 0 {
		t.Fatalf("one sample: %v, want no verdict (0)", got)
	}
	h.samples = []lsnSample{{t0, 1000}, {t0.Add(time.Second), 2000}, {t0.Add(2 * time.Second), 3000}}
	now := t0.Add(2 * time.Second)
	for _, tc := range []struct {
		replay Token
		want   float64
	}{
		{3000, 0},   // caught up with the newest sample
		{3500, 0},   // ahead of it
		{2500, 0.5}, // the primary passed 2500 half-way between the last two samples
		{2000, 1},
		{1500, 1.5},
		{500, 2}, // behind every sample: at least the history, which is past the bound
	} {
		if got := h.lagSeconds(now, tc.replay, bound, interval); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("replay %d: lag %.3fs, want %.3fs", tc.replay, got, tc.want)
		}
	}
}

// TestLagAcrossAGap: samples 10 s apart (the primary did not answer in
// between) are not interpolated: a replica between them is as far behind
// as the later one, which is what is known.
func TestLagAcrossAGap(t *testing.T) {
	const bound, interval = time.Second, 500 * time.Millisecond
	t0 := time.Now()
	h := lagHistory{samples: []lsnSample{{t0, 1000}, {t0.Add(10 * time.Second), 2000}, {t0.Add(10*time.Second + interval), 2000}}}
	now := t0.Add(10*time.Second + interval)
	if got := h.lagSeconds(now, 1000, bound, interval); math.Abs(got-0.5) > 0.01 {
		t.Fatalf("a replica at the sample before the gap: lag %.3fs, want 0.5 s (since the sample after it), not 10.5 s", got)
	}
}

// TestLagAfterARestart: when the primary's start time changes, a replica
// that has replayed the WAL from before the restart counts as caught up
// with where the restarted primary began, and lag counts only from what it
// writes next; a replica behind the old WAL still lags.
func TestLagAfterARestart(t *testing.T) {
	const bound, interval = time.Second, 500 * time.Millisecond
	t0 := time.Now()
	boot1, boot2 := t0.Add(-time.Hour), t0.Add(5*time.Second)
	var h lagHistory
	h.add(t0, primarySample{lsn: 1000, insert: 1000, redo: 500, started: boot1, sysid: 7})
	h.add(t0.Add(interval), primarySample{lsn: 2000, insert: 2000, redo: 500, started: boot1, sysid: 7})
	// Down for 5 s; the restart writes its own WAL (2000 to 2400) that the
	// replicas get only when they reconnect.
	at := t0.Add(6 * time.Second)
	for i := range 10 {
		h.add(at.Add(time.Duration(i)*interval), primarySample{lsn: 2400, insert: 2400, redo: 2000, started: boot2, sysid: 7})
	}
	now := at.Add(9 * interval)
	for _, tc := range []struct {
		name   string
		replay Token
		want   float64
	}{
		// Replayed all the old WAL: no lag, though 400 bytes behind.
		{"caught up before the restart", 2000, 0},
		// Missed old WAL: behind every sample of the new history (4.5 s).
		{"behind the old WAL", 1500, (9 * interval).Seconds()},
	} {
		if got := h.lagSeconds(now, tc.replay, bound, interval); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("%s: lag %.3fs, want %.3fs", tc.name, got, tc.want)
		}
	}
	// The restarted primary writes: lag counts from then.
	h.add(now.Add(interval), primarySample{lsn: 3000, insert: 3000, redo: 2000, started: boot2, sysid: 7})
	if got := h.lagSeconds(now.Add(2*interval), 2000, bound, interval); math.Abs(got-1.0) > 0.01 {
		t.Errorf("after a new write: lag %.3fs, want 1 s (since the last sample before it)", got)
	}
}

// TestMemMarks: the highest token wins, marks expire, the entry count is
// bounded, and a key dropped early answers conservatively.
func TestMemMarks(t *testing.T) {
	ctx := context.Background()
	clk := NewFakeClock()
	m := newMemMarks(3, clk)
	get := func(k string) Token {
		t.Helper()
		tok, err := m.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ttl := 3 * time.Second
	_ = m.Mark(ctx, "a", 10, ttl)
	_ = m.Mark(ctx, "a", 5, ttl) // older: kept at 10
	if got := get("a"); got != 10 {
		t.Fatalf("a = %v, want the higher mark 10", got)
	}
	if got := get("b"); got != 0 {
		t.Fatalf("unmarked b = %v, want 0", got)
	}
	clk.Advance(ttl)
	if got := get("a"); got != 0 {
		t.Fatalf("a after its TTL = %v, want 0", got)
	}
	_ = m.Mark(ctx, "a", 1, ttl) // an expired mark does not hold a new one up
	if got := get("a"); got != 1 {
		t.Fatalf("a re-marked after expiry = %v, want 1", got)
	}
	clk.Advance(time.Second)
	_ = m.Mark(ctx, "b", 20, ttl)
	_ = m.Mark(ctx, "c", 30, ttl)
	_ = m.Mark(ctx, "d", 40, ttl) // a fourth key: a (the oldest) is dropped unexpired
	if n := m.Len(); n != 3 {
		t.Fatalf("%d entries, want the bound 3", n)
	}
	if got := get("a"); got != 1 {
		t.Fatalf("dropped a = %v, want the newest dropped token (1)", got)
	}
	if got := get("z"); got != 1 {
		t.Fatalf("unknown z while a drop is fresh = %v, want 1 (conservative)", got)
	}
	clk.Advance(2 * time.Second) // a would have expired by now
	if got := get("z"); got != 0 {
		t.Fatalf("unknown z after the drop would have expired = %v, want 0", got)
	}
	if got := get("d"); got != 40 {
		t.Fatalf("d = %v, want 40", got)
	}
	clk.Advance(ttl)
	_ = m.Mark(ctx, "e", 50, ttl) // expired b, c, d are removed
	if n := m.Len(); n != 1 {
		t.Fatalf("%d entries after the others expired, want 1", n)
	}
}

// BenchmarkMemMarks: one mark and one read of a key, from parallel callers.
func BenchmarkMemMarks(b *testing.B) {
	ctx := context.Background()
	m := NewMemMarks(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := strconv.Itoa(i % 1000)
			_ = m.Mark(ctx, k, Token(i), time.Second)
			if _, err := m.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestPrimaryError: every failure of the primary's connection, whether at
// connect or in the middle of a call, is ErrPrimaryUnavailable; the
// query's own errors and the caller's deadline are returned as they are.
func TestPrimaryError(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		// The server is gone: refused, reset, or the stream ends.
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"EOF", io.EOF, true},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true},
		// The server says it is shutting down or the link failed.
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		// Too many connections: overloaded, try again.
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		// The connection was closed by an earlier failure.
		{"conn closed", pgconn.ErrConnClosed, true},
		{"sql conn done", sql.ErrConnDone, true},
		// The query's own errors and the caller's limits are not the primary's.
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"caller's deadline", context.DeadlineExceeded, false},
		{"caller's cancel", context.Canceled, false},
	} {
		got := primaryError(tc.err, "the write")
		if errors.Is(got, ErrPrimaryUnavailable) != tc.unavailable {
			t.Errorf("%s: %v; want unavailable %v", tc.name, got, tc.unavailable)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%s: %v does not wrap the cause", tc.name, got)
		}
	}
}

// TestMarkTTLDefault: the default MarkTTL is 3 × LagBound, or LagBound +
// CheckInterval + FreshWait when that is longer, and a MarkTTL of exactly
// that sum is accepted.
func TestMarkTTLDefault(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name                             string
		bound, interval, wait, ttl, want time.Duration
	}{
		// The defaults: 3 s, well past 1 s + 500 ms + 100 ms.
		{"defaults", 0, 0, 0, 0, 3 * s},
		// A long FreshWait lifts the default past 3 × LagBound.
		{"long fresh wait", 0, 0, 5 * s, 0, 6500 * time.Millisecond},
		// A check nearly as long as the bound, and a long wait: the sum.
		{"long check and wait", 2 * s, 1900 * time.Millisecond, 3 * s, 0, 6900 * time.Millisecond},
		// Exactly the sum is enough.
		{"ttl at the sum", 0, 0, 0, 1600 * time.Millisecond, 1600 * time.Millisecond},
	} {
		cfg := Config{Primary: "postgres://a@127.0.0.1/x", LagBound: tc.bound, CheckInterval: tc.interval, FreshWait: tc.wait, MarkTTL: tc.ttl}
		if err := cfg.resolveTimes(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if cfg.MarkTTL != tc.want {
			t.Errorf("%s: MarkTTL %v, want %v", tc.name, cfg.MarkTTL, tc.want)
		}
		if min := cfg.LagBound + cfg.CheckInterval + cfg.FreshWait; cfg.MarkTTL < min {
			t.Errorf("%s: MarkTTL %v under LagBound + CheckInterval + FreshWait %v", tc.name, cfg.MarkTTL, min)
		}
	}
}
