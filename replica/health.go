package replica

import (
	"context"
	"database/sql"
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
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check(ctx)
		}
	}
}

// replicaState is one replica's answer to the health check.
type replicaState struct {
	err       error
	standby   bool
	replay    Token
	hasReplay bool
}

// check reads the primary's WAL position, then every replica's replay
// position, and updates each replica's health and lag.
func (r *Router) check(ctx context.Context) {
	// Each server gets its own time budget: a primary that does not answer
	// must not use up the replicas' checks (and get them all ejected).
	budget := r.cfg.CheckInterval * 4 / 5
	var primaryLSN Token
	primaryOK := false
	pctx, cancel := context.WithTimeout(ctx, budget)
	var s string
	if err := r.primary.checkDB.QueryRowContext(pctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err == nil {
		if lsn, err := ParseToken(s); err == nil {
			primaryLSN, primaryOK = lsn, true
		}
	}
	cancel()
	now := time.Now()
	states := make([]replicaState, len(r.replicas))
	var wg sync.WaitGroup
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

	r.mu.Lock()
	defer r.mu.Unlock()
	if primaryOK {
		r.samples = append(r.samples, lsnSample{at: now, lsn: primaryLSN})
		if len(r.samples) > maxSamples {
			r.samples = r.samples[1:]
		}
	}
	changed := false
	for i, n := range r.replicas {
		st := states[i]
		switch {
		case st.err != nil:
			changed = r.setDown(n, fmt.Sprintf("health check failed: %v", st.err)) || changed
			continue
		case !st.standby:
			changed = r.setDown(n, "not a standby (promoted?)") || changed
			continue
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
			n.lagSeconds = r.lagSeconds(now, st.replay)
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
			changed = r.setDown(n, fmt.Sprintf("lag %.2fs (%d bytes) past the bound %v", n.lagSeconds, n.lagBytes, r.cfg.LagBound)) || changed
			continue
		}
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
	}
	if changed {
		r.rebuildLocked()
	}
}

func checkReplica(ctx context.Context, db *sql.DB) replicaState {
	var st replicaState
	var replay sql.NullString
	st.err = db.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").Scan(&st.standby, &replay)
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

// lagSeconds turns a replay position into time behind the primary: how
// long ago the primary was at that position, interpolated between the two
// samples of the primary's position around it; 0 once the replica has
// replayed the newest sample. A replica behind every sample is at least
// as far behind as the oldest one; with fewer than two samples (just
// after start) there is no verdict and it counts as caught up.
func (r *Router) lagSeconds(now time.Time, replay Token) float64 {
	n := len(r.samples)
	if n == 0 || replay >= r.samples[n-1].lsn {
		return 0
	}
	if n < 2 {
		return 0
	}
	for i := n - 1; i > 0; i-- {
		hi, lo := r.samples[i], r.samples[i-1]
		if replay >= lo.lsn {
			at := lo.at
			if hi.lsn > lo.lsn {
				frac := float64(replay-lo.lsn) / float64(hi.lsn-lo.lsn)
				at = lo.at.Add(time.Duration(frac * float64(hi.at.Sub(lo.at))))
			}
			return now.Sub(at).Seconds()
		}
	}
	return math.Max(now.Sub(r.samples[0].at).Seconds(), r.cfg.LagBound.Seconds()+r.cfg.CheckInterval.Seconds())
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
