package replica

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// unopenedPool returns a pool that never connects (nothing here uses it):
// enough for the pool statistics register adds.
func unopenedPool(t *testing.T) *sql.DB {
	t.Helper()
	pc, err := pgx.ParseConfig("postgres://strata@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*pc)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMetricsStartAtZero: registering creates, at 0, the series of every
// label value the router counts, so that a healthy router exports zeros
// rather than nothing, and creates none it never counts.
func TestMetricsStartAtZero(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas []string
		share    float64
		hedge    bool           // hedging on
		want     map[string]int // series per metric
	}{
		// Two replicas and the default cap: every pool's errors (four
		// kinds, and down on the primary) and acquire timeouts, each
		// replica's ejections and readmissions, six fallback reasons, both
		// key mark operations; no hedge outcome, hedging being off.
		{"replicas", []string{"replica1", "replica2"}, DefaultFallbackShare, false, map[string]int{
			"strata_replica_errors_total": 3*4 + 1, "strata_replica_acquire_timeouts_total": 3,
			"strata_replica_ejections_total": 2, "strata_replica_readmissions_total": 2,
			"strata_replica_fallbacks_total": 6, "strata_replica_key_mark_errors_total": 2,
			"strata_replica_hedges_total": 0,
		}},
		// Hedging on: its five outcomes too.
		{"hedging", []string{"replica1", "replica2"}, DefaultFallbackShare, true, map[string]int{
			"strata_replica_errors_total": 3*4 + 1, "strata_replica_fallbacks_total": 6,
			"strata_replica_hedges_total": 5,
		}},
		// No cap (FallbackShare 1): no read is ever refused as capped.
		{"no cap", []string{"replica1"}, 1, false, map[string]int{
			"strata_replica_errors_total": 2*4 + 1, "strata_replica_acquire_timeouts_total": 2,
			"strata_replica_ejections_total": 1, "strata_replica_readmissions_total": 1,
			"strata_replica_fallbacks_total": 5, "strata_replica_key_mark_errors_total": 2,
		}},
		// No replica: every read goes to the primary, so there is no
		// fallback, ejection or key mark to count.
		{"primary alone", nil, DefaultFallbackShare, false, map[string]int{
			"strata_replica_errors_total": 4 + 1, "strata_replica_acquire_timeouts_total": 1,
			"strata_replica_ejections_total": 0, "strata_replica_readmissions_total": 0,
			"strata_replica_fallbacks_total": 0, "strata_replica_key_mark_errors_total": 0,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			r := &Router{cfg: Config{FallbackShare: tc.share}, primary: &node{idx: -1, name: "primary", db: unopenedPool(t)}}
			for i, name := range tc.replicas {
				r.replicas = append(r.replicas, &node{idx: i, name: name, db: unopenedPool(t)})
			}
			if tc.hedge {
				r.hedge = &hedging{}
			}
			m := newMetrics(reg)
			if err := m.register(r); err != nil {
				t.Fatal(err)
			}
			defer m.unregister()
			for name, want := range tc.want {
				if n := testutil.CollectAndCount(reg, name); n != want {
					t.Errorf("%s: %d series, want %d", name, n, want)
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, s := range mf.GetMetric() {
					if c := s.GetCounter(); c != nil && c.GetValue() != 0 {
						t.Errorf("%s %v = %v, want 0", mf.GetName(), s.GetLabel(), c.GetValue())
					}
				}
			}
			problems, err := testutil.GatherAndLint(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("metric %s: %s", p.Metric, p.Text)
			}
		})
	}
}
