package advisor

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"
)

// randomSuffix makes the names of the indexes Verify builds unique, so it
// never builds over, or drops, an index of the user's.
func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// verify builds each advised index for real, in the order the greedy choice
// kept them (so each measured gain is marginal, like its estimate), and
// measures the queries it helps before and after: the median of up to
// Config.VerifyRuns runs of EXPLAIN ANALYZE each, after one warm-up run,
// bounded by verifyQueryBudget and verifyQueryTimeout.
// The indexes are dropped at the end unless Config.KeepVerified.
func (s *session) verify(ctx context.Context, r *Report) error {
	conn := s.conn
	if s.cfg.VerifyDB != nil {
		c, err := s.cfg.VerifyDB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("advisor: verify: connect to the verify database: %w", err)
		}
		defer c.Close()
		conn = c
	}
	if _, err := s.conn.ExecContext(ctx, "SELECT "+s.hypopg+".hypopg_reset()"); err != nil {
		return fmt.Errorf("advisor: verify: clear hypothetical indexes: %w", err)
	}
	var recs []*Recommendation
	for i := range r.Recommendations {
		if r.Recommendations[i].Kind == KindIndex && r.Recommendations[i].hypo != nil {
			recs = append(recs, &r.Recommendations[i])
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
	byID := map[int64]*Query{}
	for _, q := range s.all {
		byID[q.ID] = q
	}
	var built []string
	defer func() {
		if s.cfg.KeepVerified {
			return
		}
		for _, name := range built {
			// A fresh context: the run's may be what ended.
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, _ = conn.ExecContext(dctx, "DROP INDEX CONCURRENTLY IF EXISTS "+quoteIdent(name))
			cancel()
		}
	}()
	for _, rec := range recs {
		m := &Measurement{Skipped: map[int64]string{}}
		var qs []*Query
		for _, id := range rec.Queries {
			q := byID[id]
			if q.bound == "" {
				m.Skipped[id] = "no parameter values (planned generically), so it cannot be run"
				continue
			}
			qs = append(qs, q)
		}
		before, err := s.measure(ctx, conn, qs, m.Skipped)
		if err != nil {
			return err
		}
		// A name of its own (the proposed one could be taken): a failed or
		// cancelled CONCURRENTLY build leaves an invalid index behind, so
		// it is recorded for the drop before the build starts.
		name := fmt.Sprintf("strata_verify_%d_%s", len(built), randomSuffix())
		built = append(built, name)
		start := time.Now()
		if _, err := conn.ExecContext(ctx, rec.hypo.ddl(name, true)); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("advisor: verify: build %s: %w", name, err)
			}
			m.Error = "build failed: " + firstLine(err.Error())
			rec.Measured = m
			continue
		}
		m.BuildMs = round1(float64(time.Since(start).Microseconds()) / 1000)
		after, err := s.measure(ctx, conn, qs, m.Skipped)
		if err != nil {
			return err
		}
		weighted := 0.0
		weights := 0.0
		for i, q := range qs {
			if before[i] < 0 || after[i] < 0 {
				continue
			}
			m.BeforeMs += before[i]
			m.AfterMs += after[i]
			if before[i] > 0 && after[i] >= 0 {
				weighted += q.TotalMs * after[i] / before[i]
				weights += q.TotalMs
			}
		}
		if weights > 0 {
			m.ImprovementPct = round1(100 * (1 - weighted/weights))
		}
		m.BeforeMs, m.AfterMs = round3(m.BeforeMs), round3(m.AfterMs)
		if len(m.Skipped) == 0 {
			m.Skipped = nil
		}
		rec.Measured = m
	}
	if s.cfg.KeepVerified && len(built) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("kept %d verified indexes (named strata_verify_*)", len(built)))
	}
	return nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// verifyQueryTimeout bounds one run of a query while verifying: a query
// slower than this before the index is reported as not measured rather
// than holding the run for minutes.
const verifyQueryTimeout = 5 * time.Second

// verifyQueryBudget is the time each query may take per measurement, warm-up
// included: a slow query is run fewer times (at least once), a fast one
// Config.VerifyRuns times.
const verifyQueryBudget = 2 * time.Second

// measure returns each query's median execution time in ms, or -1 for a
// query that ran past verifyQueryTimeout (its reason goes into skipped).
func (s *session) measure(ctx context.Context, conn *sql.Conn, qs []*Query, skipped map[int64]string) ([]float64, error) {
	out := make([]float64, len(qs))
	for i, q := range qs {
		if _, ok := skipped[q.ID]; ok {
			out[i] = -1
			continue
		}
		warm, err := runTimed(ctx, conn, q)
		if err != nil {
			if errors.Is(err, errTimedOut) {
				skipped[q.ID] = fmt.Sprintf("ran over %s; measure it by hand", verifyQueryTimeout)
				out[i] = -1
				continue
			}
			return nil, err
		}
		n := s.cfg.VerifyRuns
		if warm > 0 {
			n = min(n, int(float64(verifyQueryBudget.Milliseconds())/warm))
		}
		if n < 1 { // the warm-up run alone took the budget: it is the measurement
			out[i] = warm
			continue
		}
		runs := make([]float64, 0, n)
		for range n {
			ms, err := runTimed(ctx, conn, q)
			if err != nil {
				return nil, err
			}
			runs = append(runs, ms)
		}
		sort.Float64s(runs)
		out[i] = runs[len(runs)/2]
	}
	return out, nil
}

// runTimed runs q once under EXPLAIN ANALYZE (rolled back, stopped at
// verifyQueryTimeout) and returns the server's execution time in ms.
func runTimed(ctx context.Context, conn *sql.Conn, q *Query) (float64, error) {
	p, err := analyzeOn(ctx, conn, q.bound, verifyQueryTimeout)
	if err != nil {
		if errors.Is(err, errTimedOut) {
			return 0, err
		}
		return 0, fmt.Errorf("advisor: verify: run query %d: %w", q.ID, err)
	}
	return p.ExecutionMs, nil
}
