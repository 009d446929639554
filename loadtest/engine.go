package loadtest

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	secondSigFigs = 2                      // per-second histograms: 1 % precision, a twentieth of the memory
	collectDelay  = 150 * time.Millisecond // a second is collected this long after it ends, for requests still being recorded
	catchUp       = time.Second            // how long past its end a schedule that fell behind may go on sending
	secondsRing   = 4                      // seconds a stripe holds before the collector takes them
)

// engine is one run of a rate profile: the scheduler, the senders, and the
// recorder they share. Attack and the plan's phases are built on it.
type engine struct {
	prof        profile
	max         bool    // as fast as Connections allow for prof's duration, ignoring its rates
	offset      float64 // this generator's place between the others' sends, in [0, 1)
	connections int
	timeout     time.Duration
	// client, when set, sends on net/http; else senders, or fasthttp
	// senders of the run's own (see senders).
	client  *http.Client
	senders *senders
	// source returns sender i's own request maker, which returns the
	// request numbered n; a maker is called from its sender only.
	source func(i int) func(n uint64) Target
	// onSecond, when set, is called from one goroutine with each second
	// as it is collected. series keeps the seconds for the result (a
	// plan's phases do; a plain attack does not, so that its memory stays
	// flat however long it runs).
	onSecond func(Point)
	series   bool
}

// stripe holds tallies that a few senders share under a mutex; the
// senders are spread over several so that they rarely wait on each other.
type stripe struct {
	mu      sync.Mutex
	total   Result // the run's requests so far (no rate, no elapsed time)
	emitted int    // the last second the collector took
	secs    [secondsRing]secondTally
	_       [64]byte // keep stripes off each other's cache lines
}

// secondTally is one second's requests in a stripe: the counts, in a
// Point, and the latencies.
type secondTally struct {
	Point
	lat *hdrhistogram.Histogram
}

func newSecondHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatency.Microseconds(), secondSigFigs)
}

// newStripes returns the stripes of a run with connections senders: one
// for each pair of senders, up to two per CPU.
func newStripes(connections int) []*stripe {
	stripes := make([]*stripe, min(connections, 2*runtime.GOMAXPROCS(0)))
	for i := range stripes {
		s := &stripe{total: *newResult(), emitted: -1}
		for j := range s.secs {
			s.secs[j].lat = newSecondHistogram()
		}
		stripes[i] = s
	}
	return stripes
}

// record adds one request that completed in second sec of the run.
func (s *stripe) record(sec int, intended, sent, done time.Time, kind string) {
	lat := max(done.Sub(intended).Microseconds(), 1)
	s.mu.Lock()
	r := &s.total
	r.Requests++
	_ = r.Latency.RecordValue(lat)
	_ = r.UncorrectedLatency.RecordValue(max(done.Sub(sent).Microseconds(), 1))
	_ = r.ScheduleLag.RecordValue(max(sent.Sub(intended).Microseconds(), 0))
	// A second already collected, or one too far ahead for the ring (the
	// collector is behind), goes into the nearest one still open.
	sec = min(max(sec, s.emitted+1), s.emitted+secondsRing)
	t := &s.secs[sec%secondsRing]
	t.Requests++
	_ = t.lat.RecordValue(lat)
	if kind != "" {
		r.Errors++
		t.Errors++
		countKind(&r.ErrorsByKind, kind)
		countKind(&t.ErrorsByKind, kind)
	}
	s.mu.Unlock()
}

// take removes second sec's tallies from the stripe into p and h.
func (s *stripe) take(sec int, p *Point, h *hdrhistogram.Histogram) {
	s.mu.Lock()
	t := &s.secs[sec%secondsRing]
	p.add(t.Point)
	h.Merge(t.lat)
	t.lat.Reset()
	t.Point = Point{}
	s.emitted = sec
	s.mu.Unlock()
}

// runResult is an engine run's Result plus its per-second series.
type runResult struct {
	*Result
	series []Point
}

// run sends the profile and returns what it measured. It stops at the
// profile's end (plus catchUp for a schedule that fell behind) or when ctx
// ends, waits for requests in flight, and never takes longer than that
// plus the timeout.
func (e *engine) run(ctx context.Context) *runResult {
	senders := e.senders
	if senders == nil {
		senders = newSenders(e.client, e.connections, e.timeout)
		defer senders.close()
	}
	dur := e.prof.duration()
	limit := dur + catchUp
	if e.max {
		limit = dur
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	stripes := newStripes(e.connections)
	start, cpu0 := time.Now(), processCPU()
	var busy atomic.Int64 // senders with a request in flight
	ticks, scheduled := e.startSchedule(ctx, start, &busy)
	col := &collector{e: e, stripes: stripes, h: newSecondHistogram()}
	stopCollect, collected := col.start(start)
	lastSend := e.send(ctx, senders, stripes, start, ticks, &busy)
	sent, late := scheduled()
	elapsed := time.Since(start)
	close(stopCollect)
	<-collected
	col.finish(elapsed, max(int((dur-1)/time.Second), 0))

	res := newResult()
	res.Elapsed, res.Late = elapsed, late
	for _, s := range stripes {
		res.add(&s.total)
	}
	if !e.max {
		res.Skipped = e.prof.total(e.offset) - sent
	}
	// The rate over the time sends were made: the profile's length, or
	// longer if the schedule fell behind and caught up after it; as long
	// as the run lasted if it was stopped before its end, or sent as fast
	// as it could.
	window := max(dur, lastSend)
	if e.max || caller.Err() != nil {
		window = min(window, elapsed)
	}
	if s := window.Seconds(); s > 0 {
		res.AchievedRPS = float64(res.Requests) / s
	}
	if s := elapsed.Seconds(); s > 0 {
		if cpu := processCPU() - cpu0; cpu > 0 {
			res.GeneratorCPU = cpu.Seconds() / s / float64(runtime.GOMAXPROCS(0))
		}
	}
	return &runResult{Result: res, series: col.series}
}

// startSchedule starts the schedule, which sends each send's scheduled
// time on ticks (nil in max mode, where senders send as fast as they
// can). scheduled waits for it to end and returns how many sends it made,
// and how many of them found every sender busy.
func (e *engine) startSchedule(ctx context.Context, start time.Time, busy *atomic.Int64) (ticks chan time.Time, scheduled func() (sent, late int64)) {
	if e.max {
		return nil, func() (int64, int64) { return 0, 0 }
	}
	ticks = make(chan time.Time)
	done := make(chan struct{})
	var sent, late int64
	go func() {
		defer close(done)
		sent, late = e.schedule(ctx, start, ticks, busy)
	}()
	return ticks, func() (int64, int64) {
		<-done
		return sent, late
	}
}

// send runs the senders until the schedule closes ticks (or, in max
// mode, ctx ends) and every request has returned. It returns the time of
// the latest send, from start.
func (e *engine) send(ctx context.Context, senders *senders, stripes []*stripe, start time.Time, ticks <-chan time.Time, busy *atomic.Int64) time.Duration {
	var (
		wg       sync.WaitGroup
		lastSend atomic.Int64  // ns from start of the latest send
		seq      atomic.Uint64 // request numbers
	)
	for i := 0; i < e.connections; i++ {
		st := stripes[i%len(stripes)]
		next := e.source(i)
		snd := senders.new()
		wg.Go(func() {
			for {
				var intended time.Time
				if ticks != nil {
					t, ok := <-ticks
					if !ok {
						return
					}
					intended = t
				} else if ctx.Err() != nil {
					return
				}
				busy.Add(1)
				sent := time.Now()
				if intended.IsZero() {
					intended = sent
				}
				if ns := sent.Sub(start).Nanoseconds(); ns > lastSend.Load() {
					lastSend.Store(ns) // a race between senders only loses a few µs
				}
				kind := snd.send(next(seq.Add(1) - 1))
				done := time.Now()
				busy.Add(-1)
				st.record(int(done.Sub(start)/time.Second), intended, sent, done, kind)
			}
		})
	}
	wg.Wait()
	return time.Duration(lastSend.Load())
}

// collector takes each second of a run from the stripes once it has
// ended, into a Point.
type collector struct {
	e       *engine
	stripes []*stripe
	h       *hdrhistogram.Histogram // reused: a run makes next to no garbage, so its heap stays put
	series  []Point                 // the seconds collected, when the engine keeps them
	next    int                     // the next second to collect; the collector goroutine's until it ends
}

// start collects each second collectDelay after it ends, until stop is
// closed; then it closes collected.
func (c *collector) start(start time.Time) (stop, collected chan struct{}) {
	stop, collected = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(collected)
		tick := time.NewTimer(time.Hour)
		defer tick.Stop()
		for {
			tick.Reset(time.Until(start.Add(time.Duration(c.next+1)*time.Second + collectDelay)))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c.collect(c.next, c.next)
			c.next++
		}
	}()
	return stop, collected
}

// collect makes one Point of seconds sec to through.
func (c *collector) collect(sec, through int) {
	p := Point{Second: sec}
	c.h.Reset()
	for _, s := range c.stripes {
		for k := sec; k <= through; k++ {
			s.take(k, &p, c.h)
		}
	}
	c.e.fillPoint(&p, c.h)
	if c.e.series {
		c.series = append(c.series, p)
	}
	if c.e.onSecond != nil {
		c.e.onSecond(p)
	}
}

// finish collects, once the run has ended, whatever was not collected
// yet: the last seconds, and requests that completed after the run's
// end. Responses that came in a moment after the profile's last second
// (lastSec) go into it rather than into a near-empty second of their
// own; a longer drain (a backlog worked off) keeps its own seconds.
func (c *collector) finish(elapsed time.Duration, lastSec int) {
	end := int(elapsed / time.Second)
	spill := end == lastSec+1 && elapsed-time.Duration(end)*time.Second < collectDelay
	for sec := c.next; sec <= end; sec++ {
		if spill && sec == lastSec {
			c.collect(sec, end)
			return
		}
		c.collect(sec, sec)
	}
}

// fillPoint sets p's percentiles and asked rate.
func (e *engine) fillPoint(p *Point, h *hdrhistogram.Histogram) {
	if !e.max {
		from, to := time.Duration(p.Second)*time.Second, time.Duration(p.Second+1)*time.Second
		if dur := e.prof.duration(); to > dur {
			to = dur
		}
		if to > from {
			p.AskedRPS = (e.prof.count(to) - e.prof.count(from)) / (to - from).Seconds()
		}
	}
	setPercentiles(p, h, e.series)
}

// setPercentiles sets p's latency figures from h, and its encoded
// histogram when keep is set.
func setPercentiles(p *Point, h *hdrhistogram.Histogram, keep bool) {
	if h.TotalCount() == 0 {
		return
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	p.P50MS, p.P90MS, p.P99MS, p.MaxMS = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99)), ms(h.Max())
	if keep {
		p.Histogram = encodeHistogram(h)
	}
}

// schedule sends the scheduled time of each send of the profile (or until
// ctx ends); then it closes ticks and returns how many it sent and how
// many found every sender with a request in flight.
func (e *engine) schedule(ctx context.Context, start time.Time, ticks chan<- time.Time, busy *atomic.Int64) (sent, late int64) {
	defer close(ticks)
	// Go's timers can wake a lightly loaded process up to a millisecond
	// late, which the open model would charge to the target. The schedule
	// sleeps on an OS thread of its own (with nanosleep on Unix, see nap),
	// which wakes within tens of microseconds: a p99 schedule lag of
	// 0.27 ms against 1.2 ms with a timer, at 3,000/s.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	conns := int64(e.connections)
	total := e.prof.total(e.offset)
	for n := int64(0); n < total; n++ {
		off, ok := e.prof.at(n, e.offset)
		if !ok {
			break // exactly the profile's sends, not one more at the end
		}
		at := start.Add(off)
		for d := time.Until(at); d > 0; d = time.Until(at) {
			if ctx.Err() != nil {
				return sent, late
			}
			nap(min(d, maxNap)) // look at ctx now and then
		}
		select {
		case ticks <- at: // a sender was waiting
			sent++
			continue
		default:
		}
		// No sender waiting: either all have a request in flight (the
		// bound is hit: late), or they are only waiting for a CPU, which
		// the schedule lag shows.
		if busy.Load() >= conns {
			late++
		}
		select {
		case <-ctx.Done():
			return sent, late
		case ticks <- at:
			sent++
		}
	}
	return sent, late
}
