package monitor_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-dev/strata/internal/sqlstats"
	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/monitor"
	"github.com/strata-dev/strata/overload"
	"github.com/strata-dev/strata/storefront"
	"github.com/strata-dev/strata/tracing"
	"github.com/strata-dev/strata/upstream"
)

// served is one configuration of strata serve, wired as cmd/strata/serve.go
// wires it, with its registry and the collectors registered on it.
type served struct {
	name       string
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

// serve builds the service strata serve runs for url and cfg (with an L1
// cache when cached, then wrapped by each of wrap), registering through a
// monitor.Recorder, and answers one request on each of a few routes so
// that the HTTP series exist.
func serve(t *testing.T, name, url string, cfg storefront.Config, cached bool, wrap ...func(*testing.T, prometheus.Registerer, storefront.Service) storefront.Service) served {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	rec := monitor.NewRecorder(reg)
	// storefront.NewRegistry's collectors, registered here so that the
	// recorder sees them.
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// serve.go's tracing metrics, registered whether tracing is on or off.
	off, err := tracing.New(ctx, tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec.MustRegister(off.Collector())
	cfg.Registerer = rec
	store, err := storefront.Open(ctx, url, cfg)
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	t.Cleanup(func() { store.Close() })
	// serve.go's registerPoolStats: the primary's pool alone, none with
	// replicas (the replica router registers every pool), the main
	// database's labelled shard="main" when sharded.
	stats := sqlstats.New(map[string]*sql.DB{"primary": store.DB()})
	switch {
	case store.Shards() != nil:
		prometheus.WrapRegistererWith(prometheus.Labels{"shard": "main"}, rec).MustRegister(stats)
	case len(cfg.Replicas) == 0:
		rec.MustRegister(stats)
	}
	var svc storefront.Service = store
	if cached {
		c, err := storefront.NewCached(store, storefront.CacheConfig{Registerer: rec})
		if err != nil {
			t.Fatalf("%s: cache: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		svc = c
	}
	for _, w := range wrap {
		svc = w(t, rec, svc)
	}
	hcfg := storefront.HandlerConfig{Registerer: rec, Gatherer: reg}
	if cached { // strata serve --overload --capacity-rps, here with the cache
		lim, err := overload.New(overload.Config{Registerer: rec, CapacityRPS: 1000})
		if err != nil {
			t.Fatalf("%s: overload: %v", name, err)
		}
		hcfg.Overload = lim
	}
	srv := httptest.NewServer(storefront.NewHandler(svc, hcfg))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/healthz", "/products/1", "/search?q=x", "/nowhere", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", name, path, err)
		}
		resp.Body.Close()
	}
	return served{name: name, reg: reg, collectors: rec.Collectors()}
}

// embedded returns the configurations of strata serve that need no
// server: SQLite alone, SQLite with the cache, and SQLite with its
// recommendations from a recommendation service (--recommendations-url).
func embedded(t *testing.T) []served {
	t.Helper()
	return []served{
		serve(t, "sqlite", testdb.SQLite(t), storefront.Config{}, false),
		serve(t, "sqlite+cache", testdb.SQLite(t), storefront.Config{}, true),
		serve(t, "sqlite+remote recommendations", testdb.SQLite(t), storefront.Config{}, false, remoteRecommendations),
	}
}

// remoteRecommendations wires svc as strata serve --recommendations-url
// does, to a recommendation service (strata serve --only recommendations)
// over the same store, whose own metrics are not this configuration's.
func remoteRecommendations(t *testing.T, reg prometheus.Registerer, svc storefront.Service) storefront.Service {
	t.Helper()
	recs := httptest.NewServer(storefront.NewRecommendationHandler(svc, storefront.HandlerConfig{Registerer: prometheus.NewRegistry()}))
	t.Cleanup(recs.Close)
	c, err := upstream.New("recommendations", recs.URL, upstream.Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return storefront.NewRemoteRecommender(svc, c)
}

// routed returns the configurations of strata serve with the replica
// router: PostgreSQL with streaming replicas, and PostgreSQL sharded.
// They need scripts/dev's servers (skipped without them, failing when CI
// is set).
func routed(t *testing.T) []served {
	t.Helper()
	primary := testdb.Postgres(t)
	return []served{
		serve(t, "replicas", primary, storefront.Config{Replicas: testdb.PostgresReplicas(t, primary)}, false),
		serve(t, "sharded", testdb.PostgresDatabase(t), storefront.Config{Shards: testdb.ShardDatabases(t)}, true),
	}
}

// configurations returns every configuration of strata serve that
// registers something the others do not: embedded's, then routed's.
func configurations(t *testing.T) []served {
	t.Helper()
	return append(embedded(t), routed(t)...)
}

// unregistered returns the catalogued metrics of Strata that c's
// collectors do not register, among those keep says.
func unregistered(t *testing.T, c served, keep func(monitor.Metric) bool) []string {
	t.Helper()
	var cat []monitor.Metric
	for _, m := range monitor.Catalogue() {
		if m.Source == monitor.SourceStrata && keep(m) {
			cat = append(cat, m)
		}
	}
	var ce *monitor.CheckError
	if err := monitor.Check(cat, c.collectors...); err != nil && !errors.As(err, &ce) {
		t.Fatalf("%s: %v", c.name, err)
	}
	if ce == nil {
		return nil
	}
	return ce.Unregistered
}

// absentMetrics returns the metrics of the absent alerts of cfg.
func absentMetrics(t *testing.T, cfg monitor.Config) []string {
	t.Helper()
	out, err := monitor.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ms []string
	for _, g := range out.Groups {
		for _, r := range g.Rules {
			if m, ok := strings.CutPrefix(r.Expr, "absent("); ok && r.Alert != "" {
				ms = append(ms, strings.TrimSuffix(m, ")"))
			}
		}
	}
	return ms
}

// TestAbsentAlertsRegistered: every metric marked Everywhere is registered
// by every configuration of strata serve, SQLite first (they need no
// server); the default rules have absent alerts only on those (and on
// the exporters' metrics, which Config.Exporters switches); with
// Config.Replicas, the replica router's configurations register every
// metric of the absent alerts too.
func TestAbsentAlertsRegistered(t *testing.T) {
	everywhere := func(m monitor.Metric) bool { return m.Everywhere }
	for _, m := range absentMetrics(t, monitor.Config{}) {
		if c, _ := monitor.Lookup(m); c.Source == monitor.SourceStrata && !c.Everywhere {
			t.Errorf("the default rules have an absent alert on %s, which not every configuration registers", m)
		}
	}
	if ms := absentMetrics(t, monitor.Config{Exporters: []string{}}); slices.ContainsFunc(ms, func(m string) bool {
		c, _ := monitor.Lookup(m)
		return c.Source != monitor.SourceStrata
	}) {
		t.Errorf("Exporters [] has absent alerts on exporter metrics: %v", ms)
	}
	check := func(cs []served) {
		for _, c := range cs {
			if missing := unregistered(t, c, everywhere); len(missing) > 0 {
				t.Errorf("%s does not register %v, marked Everywhere", c.name, missing)
			}
		}
	}
	check(embedded(t))
	cs := routed(t)
	check(cs)
	replicaAbsent := absentMetrics(t, monitor.Config{Replicas: true})
	for _, c := range cs {
		missing := unregistered(t, c, func(m monitor.Metric) bool {
			return slices.ContainsFunc(replicaAbsent, func(n string) bool { l, _ := monitor.Lookup(n); return l.Name == m.Name })
		})
		if len(missing) > 0 {
			t.Errorf("%s does not register %v, which Config.Replicas has absent alerts on", c.name, missing)
		}
	}
}

// TestRegisteredMetricsCatalogued requires the catalogue to hold exactly
// what strata serve registers in any configuration, with the same labels,
// help and types, and proves on the same collectors that the check fails
// when a metric is added without an entry, or an entry loses its metric.
func TestRegisteredMetricsCatalogued(t *testing.T) {
	configs := configurations(t)
	var all []prometheus.Collector
	for _, c := range configs {
		all = append(all, c.collectors...)
	}
	if err := monitor.CheckCollectors(all...); err != nil {
		t.Fatal(err)
	}

	t.Run("types", func(t *testing.T) {
		for _, c := range configs {
			mfs, err := c.reg.Gather() // pedantic: help and labels consistent too
			if err != nil {
				t.Fatalf("%s: gather: %v", c.name, err)
			}
			for _, mf := range mfs {
				m, ok := monitor.Lookup(mf.GetName())
				if !ok {
					t.Errorf("%s: %s gathered, not catalogued", c.name, mf.GetName())
					continue
				}
				if want := dtoType(m.Type); mf.GetType() != want {
					t.Errorf("%s: %s is a %s, the catalogue says %s", c.name, mf.GetName(), mf.GetType(), m.Type)
				}
			}
		}
	})

	t.Run("unlisted", func(t *testing.T) {
		extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_test_unlisted_total", Help: "A metric no one catalogued."})
		scratch := monitor.NewRecorder(nil)
		scratch.MustRegister(extra)
		err := monitor.CheckCollectors(append(slices.Clone(all), scratch.Collectors()...)...)
		var ce *monitor.CheckError
		if !errors.As(err, &ce) || !slices.Equal(ce.Unlisted, []string{"strata_test_unlisted_total"}) ||
			len(ce.Unregistered)+len(ce.Mismatched)+len(ce.Duplicated) > 0 {
			t.Fatalf("CheckCollectors with an uncatalogued metric = %v, want it named alone", err)
		}
		if !strings.Contains(err.Error(), "strata_test_unlisted_total") {
			t.Fatalf("the error %q does not name the metric", err)
		}
	})

	t.Run("unregistered", func(t *testing.T) {
		cat := append(monitor.Catalogue(), monitor.Metric{
			Name: "strata_test_gone_total", Type: monitor.Counter, Help: "A metric the code no longer registers.",
			Subsystem: monitor.SubsystemHTTP, Source: monitor.SourceStrata,
		})
		err := monitor.Check(cat, all...)
		var ce *monitor.CheckError
		if !errors.As(err, &ce) || !slices.Equal(ce.Unregistered, []string{"strata_test_gone_total"}) ||
			len(ce.Unlisted)+len(ce.Mismatched)+len(ce.Duplicated) > 0 {
			t.Fatalf("Check with an entry nothing registers = %v, want it named alone", err)
		}
	})
}

// TestRegisteredEmbeddedCatalogued runs without servers: what strata serve
// registers on SQLite, with and without the cache, is catalogued with the
// same labels and help; only the replica and shard routers' metrics may be
// missing, as they need PostgreSQL.
func TestRegisteredEmbeddedCatalogued(t *testing.T) {
	var all []prometheus.Collector
	for _, c := range embedded(t) {
		all = append(all, c.collectors...)
	}
	err := monitor.CheckCollectors(all...)
	var ce *monitor.CheckError
	if err == nil || !errors.As(err, &ce) {
		t.Fatalf("CheckCollectors = %v, want the routers' metrics reported unregistered", err)
	}
	if len(ce.Unlisted)+len(ce.Mismatched)+len(ce.Duplicated) > 0 {
		t.Fatal(err)
	}
	for _, name := range ce.Unregistered {
		if m, _ := monitor.Lookup(name); m.Subsystem != monitor.SubsystemReplica && m.Subsystem != monitor.SubsystemShard {
			t.Errorf("%s is catalogued but not registered on SQLite", name)
		}
	}
}

// dtoType is the exposition type of a catalogue type.
func dtoType(t monitor.Type) dto.MetricType {
	switch t {
	case monitor.Counter:
		return dto.MetricType_COUNTER
	case monitor.Histogram:
		return dto.MetricType_HISTOGRAM
	case monitor.Summary:
		return dto.MetricType_SUMMARY
	}
	return dto.MetricType_GAUGE
}
