package cachemetrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/cache/cachemetrics"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := cachemetrics.New(reg)
	c, err := cache.New(cache.Config[string]{Recorder: m.Recorder("users")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m.Watch("users", c)
	load := cache.LoaderFunc[string](func(context.Context, string) (string, error) { return "1", nil })
	for range 3 {
		if _, _, err := c.Get(context.Background(), "a", load); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP strata_cache_hits_total Reads answered by a level.
# TYPE strata_cache_hits_total counter
strata_cache_hits_total{cache="users",level="l1"} 2
strata_cache_hits_total{cache="users",level="l2"} 0
# HELP strata_cache_loads_total Loader calls.
# TYPE strata_cache_loads_total counter
strata_cache_loads_total{cache="users"} 1
# HELP strata_cache_misses_total Reads a level could not answer.
# TYPE strata_cache_misses_total counter
strata_cache_misses_total{cache="users",level="l1"} 1
strata_cache_misses_total{cache="users",level="l2"} 0
`
	// One miss for the one read L1 could not answer, though the cache
	// looks at L1 twice for it (again before it starts the load).
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_cache_hits_total", "strata_cache_loads_total", "strata_cache_misses_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "strata_cache_load_duration_seconds"); n != 1 {
		t.Fatalf("load histogram series: %d", n)
	}
}
