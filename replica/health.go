package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// maxSamples bounds the history of primary WAL positions kept to turn a
// replica's byte lag into time: at the default interval, 16 s.
const maxSamples = 32

func (r *Router) checkLoop(ctx context.Context) {
	defer r.wg.Done()
	checks, stopChecks := r.clk.NewTicker(r.cfg.CheckInterval)
	defer stopChecks()
	probes, stopProbes := r.clk.NewTicker(r.cfg.CheckInterval / primaryProbes)
	defer stopProbes()
	for {
		select {
		case <-ctx.Done():
			return
		case <-checks:
			r.check(ctx, r.cfg.CheckInterval*4/5)
		case <-probes:
			if r.down.Load() != nil {
				r.probePrimary(ctx)
			}
		}
	}
}

// primarySample is the primary's answer to the health check.
type primarySample struct {
	lsn     Token     // pg_current_wal_lsn: what replicas can have received
	insert  Token     // pg_current_wal_insert_lsn: everything written so far
	redo    Token     // the latest checkpoint's redo position
	started time.Time // pg_postmaster_start_time: changes when the server restarts
	sysid   int64     // system identifier: one per cluster, shared by its standbys
}

func samplePrimary(ctx context.Context, db *sql.DB) (primarySample, error) {
	var p primarySample
	var lsn, insert, redo string
	err := db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text, pg_current_wal_insert_lsn()::text,
		pg_postmaster_start_time(), (SELECT system_identifier FROM pg_control_system()),
		(SELECT redo_lsn::text FROM pg_control_checkpoint())`).Scan(&lsn, &insert, &p.started, &p.sysid, &redo)
	if err != nil {
		return p, err
	}
	for _, f := range []struct {
		s string
		t *Token
	}{{lsn, &p.lsn}, {insert, &p.insert}, {redo, &p.redo}} {
		if *f.t, err = ParseToken(f.s); err != nil {
			return p, err
		}
	}
	return p, nil
}

// replicaState is one replica's answer to the health check.
type replicaState struct {
	err       error
	standby   bool
	replay    Token
	hasReplay bool
	sysid     int64
}

func checkReplica(ctx context.Context, db *sql.DB) replicaState {
	var st replicaState
	var replay sql.NullString
	st.err = db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		(SELECT system_identifier FROM pg_control_system())`).Scan(&st.standby, &replay, &st.sysid)
	if st.err == nil && replay.Valid {
		lsn, err := ParseToken(replay.String)
		if err != nil {
			st.err = err
			return st
		}
		st.replay, st.hasReplay = lsn, true
	}
	return st
}

// check reads the primary's WAL position, then every replica's replay
// position, and updates the primary's state and each replica's health and
// lag. Each server gets budget to answer (four fifths of CheckInterval in
// the loop; more at Open, whose first connections take longer), its own so
// that a primary that does not answer does not use up the replicas' checks
// (and get them all ejected).
//
// The primary is marked down when its connection fails, or when it does
// not answer within its budget, twice in a row: a server that hangs, or a
// host cut off by a partition, refuses nothing, and without this writes
// would wait on it for their caller's whole deadline. The second try,
// at once and alongside the replicas' checks, is there because one stall
// of a loaded machine (ours or the server's) can make one check time out.
func (r *Router) check(ctx context.Context, budget time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, budget)
	ps, perr := samplePrimary(pctx, r.primary.checkDB)
	// Its own budget ran out, not the router's life.
	silent := perr != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded)
	cancel()
	now := r.clk.Now()
	states := make([]replicaState, len(r.replicas))
	var wg sync.WaitGroup
	var silentAgain bool
	if silent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			silentAgain = r.primarySilent(ctx, budget)
		}()
	}
	for i, n := range r.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, budget)
			defer cancel()
			states[i] = checkReplica(rctx, n.checkDB)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // closing
	}
	switch {
	case perr == nil:
		r.setPrimaryUp()
	case classify(perr) == kindConnection:
		r.setPrimaryDown(perr)
	case silent && silentAgain:
		// %v, not %w: the error must not read as the caller's own deadline.
		r.setPrimaryDown(fmt.Errorf("no answer to the health check within %v, twice in a row (%v)", budget, perr))
	}

	if r.hedge != nil { // samples age out even on a replica that gets no reads
		for _, n := range r.replicas {
			n.est.recompute(now)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if perr == nil {
		r.hist.add(now, ps)
	}
	changed := false
	for i, n := range r.replicas {
		if r.judge(n, states[i], perr == nil, ps.lsn, now) {
			changed = true
		}
	}
	if changed {
		r.rebuildLocked()
	}
	r.unstarveLocked()
}

// unstarveLocked gives a serving replica that got no read since the last
// check, while others did, the latency of the fastest one that did. Its
// moving average moves only when it is picked, and at equal load a
// latency under latencyEdge of another's wins every time: one stall (a
// slow call on a loaded machine) would otherwise keep it out of the
// rotation for as long as load ties hold, with no new sample to show it
// has recovered. Reset, it shares the reads again, and if it really is
// slow, its next calls raise its average and it loses them again. Runs on
// the health loop only; the read path pays one atomic add. Under r.mu.
func (r *Router) unstarveLocked() {
	best, any := math.Inf(1), false
	starved := make([]bool, len(r.replicas))
	for i, n := range r.replicas {
		calls := n.calls.Load()
		fresh := calls != n.callsSeen
		n.callsSeen = calls
		if !n.up {
			continue
		}
		if fresh {
			any = true
			best = min(best, math.Float64frombits(n.latency.Load()))
		} else {
			starved[i] = true
		}
	}
	if !any {
		return // an idle router: nothing to compare
	}
	for i, n := range r.replicas {
		if starved[i] && math.Float64frombits(n.latency.Load()) > best {
			n.latency.Store(math.Float64bits(best))
		}
	}
}

// judge updates replica n from its check; it reports whether n's place in
// the rotation changed. Under r.mu.
func (r *Router) judge(n *node, st replicaState, primaryOK bool, primaryLSN Token, now time.Time) bool {
	switch {
	case st.err != nil:
		return r.setDown(n, fmt.Sprintf("health check failed: %v", st.err))
	case !st.standby:
		return r.setDown(n, "not a standby (promoted?)")
	case r.hist.sysid != 0 && st.sysid != r.hist.sysid:
		return r.setDown(n, fmt.Sprintf("not a standby of the primary: its system identifier is %d, the primary's %d", st.sysid, r.hist.sysid))
	}
	if st.hasReplay {
		// Store, not raise: a standby that crashed restarts from its last
		// restartpoint and may be behind what it had replayed before.
		// A lower mark only makes token reads wait or go elsewhere.
		n.replay.Store(uint64(st.replay))
	}
	if primaryOK {
		n.lagBytes = 0
		if primaryLSN > st.replay {
			n.lagBytes = uint64(primaryLSN - st.replay)
		}
		n.lagSeconds = r.hist.lagSeconds(now, st.replay, r.cfg.LagBound, r.cfg.CheckInterval)
		r.m.lagBytes.WithLabelValues(n.name).Set(float64(n.lagBytes))
		r.m.lagSeconds.WithLabelValues(n.name).Set(n.lagSeconds)
	}
	// Without the primary, lag cannot be measured, and nothing new is
	// being written: a replica keeps its lag state and serves reads.
	// A serving replica leaves past the bound; an ejected one comes
	// back only within half of it, readmitChecks checks in a row.
	limit := r.cfg.LagBound.Seconds()
	if !n.up && n.everChecked {
		limit /= 2
	}
	if n.lagSeconds > limit {
		return r.setDown(n, fmt.Sprintf("lag %.2fs (%d bytes) past the bound %v", n.lagSeconds, n.lagBytes, r.cfg.LagBound))
	}
	changed := false
	if !n.up {
		n.good++
		if n.good >= readmitChecks || !n.everChecked {
			n.up, n.good = true, 0
			changed = true
			if n.everChecked {
				r.m.readmissions.WithLabelValues(n.name).Inc()
				r.cfg.Logger.Info("replica: re-admitted", "replica", n.name, "lag_seconds", n.lagSeconds)
			}
		}
	}
	n.everChecked = true
	return changed
}

// lsnSample is the primary's WAL position at a moment, for lag in time.
type lsnSample struct {
	at  time.Time
	lsn Token
}

// lagHistory is the router's record of the primary's WAL positions, which
// turns a replica's replay position into time behind. Under Router.mu.
type lagHistory struct {
	samples []lsnSample
	started time.Time // the primary's start time at the newest sample
	sysid   int64     // the primary's system identifier; 0 until known
	// After a restart of the primary, a replay at or past floor (the end
	// of the WAL before the restart) counts as base (the primary's insert
	// position when first seen after it): the WAL the restart itself
	// writes reaches a replica only once it reconnects, up to
	// wal_retrieve_retry_interval (5 s) later, and holds no data the
	// replica lacks. base 0: no restart seen.
	floor, base Token
}

// add records a sample. A restart of the primary (its start time changed)
// or another cluster at its URL (its system identifier changed) starts a
// new history: positions from before it must not be read as a rate.
func (h *lagHistory) add(now time.Time, p primarySample) {
	switch {
	case h.sysid != 0 && p.sysid != h.sysid:
		h.samples, h.floor, h.base = h.samples[:0], 0, 0
	case !h.started.IsZero() && !p.started.Equal(h.started):
		floor := p.redo // after a crash: the end-of-recovery checkpoint, at the end of the old WAL
		if n := len(h.samples); n > 0 {
			floor = max(floor, h.samples[n-1].lsn)
		}
		h.floor, h.base = min(floor, p.insert), p.insert
		h.samples = h.samples[:0]
	}
	h.started, h.sysid = p.started, p.sysid
	h.samples = append(h.samples, lsnSample{at: now, lsn: p.lsn})
	if len(h.samples) > maxSamples {
		h.samples = h.samples[1:]
	}
}

// lagSeconds turns a replay position into time behind the primary: how
// long ago the primary was at that position, interpolated between the two
// samples of the primary's position around it; 0 once the replica has
// replayed the newest sample. Across a gap in the sampling (more than two
// intervals, when the primary did not answer) nothing is interpolated:
// the primary was past the position by the later sample, and lag counts
// from there, as measured rather than inferred. A replica behind every
// sample is at least as far behind as the oldest one; with fewer than two
// samples (just after start) there is no verdict and it counts as caught
// up.
func (h *lagHistory) lagSeconds(now time.Time, replay Token, bound, interval time.Duration) float64 {
	if h.base != 0 && replay >= h.floor && replay < h.base {
		replay = h.base
	}
	n := len(h.samples)
	if n == 0 || replay >= h.samples[n-1].lsn {
		return 0
	}
	if n < 2 {
		return 0
	}
	for i := n - 1; i > 0; i-- {
		hi, lo := h.samples[i], h.samples[i-1]
		if replay >= lo.lsn {
			at := hi.at
			if hi.at.Sub(lo.at) <= 2*interval {
				at = lo.at
				if hi.lsn > lo.lsn {
					frac := float64(replay-lo.lsn) / float64(hi.lsn-lo.lsn)
					at = lo.at.Add(time.Duration(frac * float64(hi.at.Sub(lo.at))))
				}
			}
			return now.Sub(at).Seconds()
		}
	}
	return math.Max(now.Sub(h.samples[0].at).Seconds(), bound.Seconds()+interval.Seconds())
}

// primaryDown records why the primary is known to be unreachable.
type primaryDown struct {
	err   error
	since time.Time
}

func (d *primaryDown) error() error {
	return fmt.Errorf("%w: it does not answer (%w); writes fail at once until a background probe reaches it", ErrPrimaryUnavailable, d.err)
}

// setPrimaryDown marks the primary unreachable, after a connection
// failure: writes then fail at once, and the health loop probes it every
// CheckInterval/primaryProbes until it answers.
func (r *Router) setPrimaryDown(err error) {
	if r.down.CompareAndSwap(nil, &primaryDown{err: err, since: r.clk.Now()}) {
		r.cfg.Logger.Warn("replica: primary unreachable; writes fail fast until it answers", "url", r.primary.display, "err", err)
	}
}

// setPrimaryUp clears setPrimaryDown after the primary answered.
func (r *Router) setPrimaryUp() {
	if d := r.down.Swap(nil); d != nil {
		r.cfg.Logger.Info("replica: primary reachable again", "url", r.primary.display, "down_for", r.clk.Now().Sub(d.since))
	}
}

// primarySilent asks the primary, whose health check has just timed out,
// once more within budget; it reports whether the primary again did not
// answer in time, or failed its connection.
func (r *Router) primarySilent(ctx context.Context, budget time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var one int
	err := r.primary.checkDB.QueryRowContext(pctx, "SELECT 1").Scan(&one)
	switch {
	case err == nil || ctx.Err() != nil:
		return false
	case classify(err) == kindConnection:
		return true
	}
	return errors.Is(pctx.Err(), context.DeadlineExceeded)
}

// probePrimary asks the primary known to be down whether it answers now.
func (r *Router) probePrimary(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.CheckInterval/primaryProbes)
	defer cancel()
	var one int
	if err := r.primary.checkDB.QueryRowContext(pctx, "SELECT 1").Scan(&one); err == nil {
		r.setPrimaryUp()
	}
}

// identity is what a server says it is.
type identity struct {
	recovery bool  // pg_is_in_recovery(): a standby
	sysid    int64 // its cluster's system identifier
	err      error
}

func identify(ctx context.Context, db *sql.DB) identity {
	var id identity
	id.err = db.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), (SELECT system_identifier FROM pg_control_system())").Scan(&id.recovery, &id.sysid)
	return id
}

// verify asks every server, at Open, what it is: the primary must not be
// in recovery, and a replica must be a standby (in recovery) of the
// primary's cluster (its system identifier). A server that does not answer
// is reported as a warning; the health check judges it once it answers.
func (r *Router) verify(ctx context.Context) error {
	vctx, cancel := context.WithTimeout(ctx, openCheckTimeout)
	defer cancel()
	nodes := append([]*node{r.primary}, r.replicas...)
	ids := make([]identity, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = identify(vctx, n.checkDB)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("replica: open: %w", err)
	}
	p := ids[0]
	var errs []error
	switch {
	case p.err != nil:
		r.cfg.Logger.Warn("replica: the primary does not answer at Open; writes fail until it does", "url", r.primary.display, "err", p.err)
		if classify(p.err) == kindConnection {
			r.setPrimaryDown(p.err)
		}
	case p.recovery:
		errs = append(errs, fmt.Errorf("%w: Primary (%s) is in recovery: a standby cannot take writes", ErrNotPrimary, r.primary.display))
	}
	for i, n := range r.replicas {
		if err := r.checkIdentity(i, n, ids[i+1], p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkIdentity judges replica i's identity id against the primary's p.
func (r *Router) checkIdentity(i int, n *node, id, p identity) error {
	known := p.err == nil // the primary's system identifier is known
	switch {
	case id.err != nil:
		r.cfg.Logger.Warn("replica: a replica does not answer at Open; it starts ejected and joins once it answers",
			"replica", n.name, "url", n.display, "err", id.err)
	case !id.recovery && known && id.sysid == p.sysid:
		return fmt.Errorf("%w: Replicas[%d] (%s) is the primary itself: not in recovery, with the primary's system identifier %d", ErrNotStandby, i, n.display, id.sysid)
	case !id.recovery && known:
		return fmt.Errorf("%w: Replicas[%d] (%s) is an independent primary: not in recovery, system identifier %d (the primary's is %d)", ErrNotStandby, i, n.display, id.sysid, p.sysid)
	case !id.recovery:
		return fmt.Errorf("%w: Replicas[%d] (%s) is not in recovery: a primary, not a standby", ErrNotStandby, i, n.display)
	case known && id.sysid != p.sysid:
		return fmt.Errorf("%w: Replicas[%d] (%s) is a standby of another cluster: system identifier %d (the primary's is %d)", ErrNotStandby, i, n.display, id.sysid, p.sysid)
	}
	return nil
}

// eject takes n out of the read rotation at once, on a failure seen by a
// read; the active check re-admits it.
func (r *Router) eject(n *node, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.setDown(n, why) {
		r.rebuildLocked()
	}
}

// setDown marks n out; it reports whether that changed anything.
func (r *Router) setDown(n *node, why string) bool {
	n.good = 0
	n.everChecked = true
	n.healthReason = why
	if !n.up {
		return false
	}
	n.up = false
	r.m.ejections.WithLabelValues(n.name).Inc()
	r.cfg.Logger.Warn("replica: ejected", "replica", n.name, "reason", why)
	return true
}

func (r *Router) rebuild() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rebuildLocked()
}

func (r *Router) rebuildLocked() {
	v := &view{}
	for _, n := range r.replicas {
		if n.up {
			v.healthy = append(v.healthy, n)
			if r.cfg.Region != "" && n.region == r.cfg.Region {
				v.local = append(v.local, n)
			}
		}
	}
	r.view.Store(v)
}

// Status describes one replica as the router sees it.
type Status struct {
	// Name and Region are the replica's, from Config.
	Name, Region string
	// Serving is whether it gets reads.
	Serving bool
	// Reason says why not, when it does not.
	Reason string
	// LagSeconds and LagBytes are its distance behind the primary at the
	// last check.
	LagSeconds float64
	LagBytes   uint64
	// Replayed is the newest WAL position it is known to have replayed.
	Replayed Token
	// InFlight is the number of calls holding or waiting for one of its
	// connections.
	InFlight int64
}

// Status returns the state of every replica, in configuration order.
func (r *Router) Status() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, len(r.replicas))
	for i, n := range r.replicas {
		out[i] = Status{Name: n.name, Region: n.region, Serving: n.up, LagSeconds: n.lagSeconds, LagBytes: n.lagBytes,
			Replayed: Token(n.replay.Load()), InFlight: n.inUse.Load()}
		if !n.up {
			out[i].Reason = n.healthReason
			if out[i].Reason == "" {
				out[i].Reason = "not checked yet"
			}
		}
	}
	return out
}

// PrimaryErr returns nil while the primary is reachable as far as the
// router knows, and otherwise the error writes fail with at once (it
// wraps ErrPrimaryUnavailable): for a readiness probe.
func (r *Router) PrimaryErr() error {
	if d := r.down.Load(); d != nil {
		return d.error()
	}
	return nil
}
