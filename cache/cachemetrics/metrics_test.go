package cachemetrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-dev/strata/cache"
	"github.com/strata-dev/strata/cache/cachemetrics"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := cachemetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
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

// newCache returns an L1-only cache closed when t ends, and a loader.
func newCache(t *testing.T, m *cachemetrics.Metrics, name string) *cache.Cache[string] {
	t.Helper()
	c, err := cache.New(cache.Config[string]{Recorder: m.Recorder(name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var one = cache.LoaderFunc[string](func(context.Context, string) (string, error) { return "1", nil })

// loads returns how many strata_cache_loads_total series reg exports.
func loads(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	return testutil.CollectAndCount(reg, "strata_cache_loads_total")
}

// TestRegistration: a service can close its caches and open new ones on
// the same registry, with a Metrics of its own or the one it had.
func TestRegistration(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, reg *prometheus.Registry)
	}{
		// A second New on a registry fails, naming what is registered, and
		// does not panic.
		{"second New refused", func(t *testing.T, reg *prometheus.Registry) {
			if _, err := cachemetrics.New(reg); err != nil {
				t.Fatal(err)
			}
			_, err := cachemetrics.New(reg)
			if !errors.Is(err, cachemetrics.ErrAlreadyRegistered) || !strings.Contains(err.Error(), "strata_cache_l2_duration_seconds") {
				t.Fatalf("second New: %v, want ErrAlreadyRegistered naming the metric", err)
			}
		}},
		// After Unregister, New on the same registry works and exports again.
		{"New after Unregister", func(t *testing.T, reg *prometheus.Registry) {
			m, err := cachemetrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			c := newCache(t, m, "users")
			m.Watch("users", c)
			c.Get(ctx, "a", one)
			m.Unwatch("users")
			m.Unregister()
			m.Unregister() // idempotent
			if n := loads(t, reg); n != 0 {
				t.Fatalf("%d series left after Unregister", n)
			}
			m2, err := cachemetrics.New(reg)
			if err != nil {
				t.Fatalf("New after Unregister: %v", err)
			}
			c2 := newCache(t, m2, "users")
			m2.Watch("users", c2)
			c2.Get(ctx, "a", one)
			if n := loads(t, reg); n != 1 {
				t.Fatalf("%d loads series from the new Metrics, want 1", n)
			}
		}},
		// Watch after Unwatch under the same name works, exports the new
		// cache's counters, and Unwatch drops the old latency series.
		{"Watch after Unwatch", func(t *testing.T, reg *prometheus.Registry) {
			m, err := cachemetrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			old := newCache(t, m, "users")
			m.Watch("users", old)
			for range 3 {
				old.Get(ctx, "a", one)
			}
			m.Unwatch("users")
			m.Unwatch("never watched") // nothing to do
			if n := testutil.CollectAndCount(reg, "strata_cache_load_duration_seconds"); n != 0 {
				t.Fatalf("%d load latency series after Unwatch, want 0", n)
			}
			c := newCache(t, m, "users")
			m.Watch("users", c)
			c.Get(ctx, "b", one)
			want := "# HELP strata_cache_hits_total Reads answered by a level.\n# TYPE strata_cache_hits_total counter\n" +
				"strata_cache_hits_total{cache=\"users\",level=\"l1\"} 0\nstrata_cache_hits_total{cache=\"users\",level=\"l2\"} 0\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_cache_hits_total"); err != nil {
				t.Fatalf("the new cache's counters: %v", err)
			}
		}},
		// A New that fails part-way registers nothing: once the conflict
		// is gone, New works.
		{"failed New leaves nothing", func(t *testing.T, reg *prometheus.Registry) {
			// The last histogram New registers, made elsewhere (the registry
			// remembers a name's labels and help even after Unregister, so
			// the squatter has ours).
			squatter := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_cache_bus_lag_seconds",
				Help: "Delay from publishing an invalidation to receiving it."}, []string{"cache"})
			reg.MustRegister(squatter)
			if _, err := cachemetrics.New(reg); !errors.Is(err, cachemetrics.ErrAlreadyRegistered) || !strings.Contains(err.Error(), "strata_cache_bus_lag_seconds") {
				t.Fatalf("New beside a conflicting metric: %v, want ErrAlreadyRegistered naming it", err)
			}
			reg.Unregister(squatter)
			if _, err := cachemetrics.New(reg); err != nil {
				t.Fatalf("New once the conflict is gone: %v", err)
			}
		}},
		// A nil registerer is refused.
		{"nil registerer", func(t *testing.T, _ *prometheus.Registry) {
			if _, err := cachemetrics.New(nil); err == nil {
				t.Fatal("New(nil) succeeded")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, prometheus.NewRegistry()) })
	}
}
