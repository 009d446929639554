package replica_test

import (
	"context"
	"database/sql"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/replica"
)

// stallQuery reads kv, sleeping $3 seconds first when it runs on the
// server listening on port $1 and $2 is true: one replica slowed for the
// reads the caller picks, through a test-only query. The sleep comes
// before the first row, and a canceled query stops it.
const stallQuery = `SELECT kv.v FROM kv, pg_sleep(CASE WHEN inet_server_port() = $1 AND $2 THEN $3::float8 ELSE 0 END) WHERE kv.k = 1`

// slowReplica is a private cluster whose replica1 is the near one (the
// routers' region, so every read starts there) and the one the stall
// query slows; replica2 is the far one.
type slowReplica struct {
	c        *testdb.PGCluster
	slowPort int
}

func startSlowReplica(t testing.TB) *slowReplica {
	t.Helper()
	c := testdb.StartPostgresCluster(t)
	u, err := url.Parse(c.ReplicaURLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(u.Port())
	return &slowReplica{c: c, slowPort: p}
}

// router opens a router over the cluster with hedge, reading in the slow
// replica's region; no lag ejection (a loaded machine's replay lag is
// not what is measured here).
func (s *slowReplica) router(t testing.TB, hedge replica.Hedge, reg prometheus.Registerer) *replica.Router {
	t.Helper()
	urls := s.c.ReplicaURLs()
	cfg := replica.Config{Primary: s.c.PrimaryURL(), Region: "near", LagBound: time.Hour, Hedge: hedge, Registerer: reg,
		Replicas: []replica.Replica{{URL: urls[0], Region: "near"}, {URL: urls[1], Region: "far"}}}
	r, err := replica.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// read runs the stall query once, stalling for stall when asked to.
func (s *slowReplica) read(ctx context.Context, r *replica.Router, stall bool, d time.Duration) error {
	return r.Read(ctx, func(ctx context.Context, q replica.Querier) error {
		var v int
		return q.QueryRowContext(ctx, stallQuery, s.slowPort, stall, d.Seconds()).Scan(&v)
	})
}

// run makes n reads from workers goroutines, every every-th of them
// (counting from 1) stalling for stall on the slow replica, and returns
// each read's time, sorted.
func (s *slowReplica) run(t testing.TB, r *replica.Router, n, workers, every int, stall time.Duration) []time.Duration {
	t.Helper()
	times := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				err := s.read(ctx, r, every > 0 && i%every == 0, stall)
				times[i-1] = time.Since(t0)
				cancel()
				if err != nil && failed.Add(1) == 1 {
					t.Errorf("read %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(times)
	return times
}

// quantile returns the q-quantile of sorted times (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// hedgeCounts sums strata_replica_hedges_total by outcome.
func hedgeCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "strata_replica_hedges_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// Issue 16's hedging test. Every read starts on replica1 (the routers'
// region), which stalls 1 read in 50 for half a second: without hedging
// the p99 is the stall; with the default hedging (5 % budget) the stalled
// reads are sent to replica2 after replica1's recent p95, so the p99 falls
// under half the stall, and the hedges sent stay within 5 % of the reads.
const (
	hedgeStall       = 500 * time.Millisecond
	hedgeStallEvery  = 50 // 2 % of reads: the p99 of an unhedged run is a stall
	hedgeReads       = 800
	hedgeWarmupReads = 100 // unmeasured: replica1 gets a p95, the budget some tokens
	hedgeWorkers     = 4
)

// TestHedgingLowersP99: with one replica slowed, hedging lowers the p99
// of reads below the slow replica's delay, where without it the p99 is
// past it, and the extra reads stay within the budget; a hedge that wins
// cancels the slow query on its server, and every connection is
// released.
func TestHedgingLowersP99(t *testing.T) {
	s := startSlowReplica(t)
	plain := s.router(t, replica.Hedge{}, nil)
	reg := prometheus.NewRegistry()
	hedged := s.router(t, replica.Hedge{Enabled: true}, reg)
	tok := setup(t, plain)
	waitServing(t, s.c, plain, tok)
	waitServing(t, s.c, hedged, tok)

	s.run(t, plain, hedgeWarmupReads, hedgeWorkers, 0, 0)
	without := s.run(t, plain, hedgeReads, hedgeWorkers, hedgeStallEvery, hedgeStall)
	s.run(t, hedged, hedgeWarmupReads, hedgeWorkers, 0, 0)
	with := s.run(t, hedged, hedgeReads, hedgeWorkers, hedgeStallEvery, hedgeStall)
	counts := hedgeCounts(t, reg)
	p99without, p99with := quantile(without, 0.99), quantile(with, 0.99)
	t.Logf("p50/p99/max without hedging: %v / %v / %v", quantile(without, 0.5), p99without, without[len(without)-1])
	t.Logf("p50/p99/max with hedging:    %v / %v / %v", quantile(with, 0.5), p99with, with[len(with)-1])
	t.Logf("hedges by outcome: %v", counts)

	// A stalled read cannot answer before its sleep: 2 % of them hold up
	// the p99.
	if p99without < hedgeStall {
		t.Errorf("without hedging the p99 is %v, under the stall %v: the test's premise is gone", p99without, hedgeStall)
	}
	if p99with >= hedgeStall/2 {
		t.Errorf("with hedging the p99 is %v; want under half the stall (%v)", p99with, hedgeStall/2)
	}
	reads := float64(hedgeWarmupReads + hedgeReads)
	sent := counts["won"] + counts["lost"] + counts["failed"]
	if limit := replica.DefaultHedgeBudget*reads + 1; sent > limit {
		t.Errorf("%v hedges sent for %v reads; the budget allows %v", sent, reads, limit)
	}
	if counts["won"] == 0 {
		t.Error("no hedge won")
	}
	testHedgeCancels(t, s)
}

// testHedgeCancels: a read stalled for 30 s on replica1 is answered by
// its hedge, and the stalled query is gone from replica1's
// pg_stat_activity long before its sleep would end (canceled, not
// finished); the router's connections are all released. The router's
// budget is every read (the 5 % one is TestHedgingLowersP99's), so that
// the one stalled read surely has a hedge.
func testHedgeCancels(t *testing.T, s *slowReplica) {
	r := s.router(t, replica.Hedge{Enabled: true, Budget: 1}, nil)
	s.run(t, r, 50, 1, 0, 0) // replica1's p95
	const long = 30 * time.Second
	t0 := time.Now()
	if err := s.read(context.Background(), r, true, long); err != nil {
		t.Fatal(err)
	}
	answered := time.Since(t0)
	if answered > long/3 {
		t.Fatalf("the stalled read took %v: not hedged", answered)
	}
	db, err := sql.Open("pgx", s.c.ReplicaURLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, 10*time.Second, "the stalled query canceled on replica1", func() bool {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`).Scan(&n)
		return err == nil && n == 0
	})
	t.Logf("answered in %v; the stalled query left pg_stat_activity %v after the read began", answered, time.Since(t0))
	waitFor(t, 10*time.Second, "every replica connection released", func() bool {
		for _, st := range r.Status() {
			if st.InFlight != 0 {
				return false
			}
		}
		return true
	})
}
