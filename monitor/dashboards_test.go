package monitor

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// parse parses a dashboard query with $__rate_interval set to 1m.
func parse(t *testing.T, q string) parser.Expr {
	t.Helper()
	e, err := parser.ParseExpr(strings.ReplaceAll(q, RateInterval, "1m"))
	if err != nil {
		t.Fatalf("query %q does not parse: %v", q, err)
	}
	return e
}

// selected returns the metric names e's selectors read, as written.
func selected(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names
}

// TestDashboardQueries parses every query as PromQL and requires every
// metric it reads to be catalogued and every label it matches or groups by
// to be one of that metric's (or a target label Prometheus adds).
func TestDashboardQueries(t *testing.T) {
	for _, d := range Dashboards() {
		for _, q := range d.Queries() {
			e := parse(t, q)
			if len(selected(e)) == 0 {
				t.Errorf("%s: %q reads no metric", d.UID, q)
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				var metrics []Metric
				var used []string
				switch n := n.(type) {
				case *parser.VectorSelector:
					for _, m := range n.LabelMatchers {
						if m.Name != labels.MetricName {
							used = append(used, m.Name)
						}
					}
					metrics = lookupAll(t, d.UID, q, selected(n))
				case *parser.AggregateExpr:
					used = n.Grouping
					metrics = lookupAll(t, d.UID, q, selected(n.Expr))
				default:
					return nil
				}
				for _, l := range used {
					if !anyHasLabel(metrics, l) {
						t.Errorf("%s: %q uses label %s, which none of %v has", d.UID, q, l, names(metrics))
					}
				}
				return nil
			})
		}
	}
}

// lookupAll returns the catalogue entries of the series names ns.
func lookupAll(t *testing.T, uid, q string, ns []string) []Metric {
	var ms []Metric
	for _, n := range ns {
		m, ok := Lookup(n)
		if !ok {
			t.Errorf("%s: %q reads %s, which is not in the catalogue", uid, q, n)
			continue
		}
		ms = append(ms, m)
	}
	return ms
}

// anyHasLabel reports whether a series of one of ms may carry label l.
func anyHasLabel(ms []Metric, l string) bool {
	if l == "instance" || l == "job" {
		return true // target labels, on every scraped series
	}
	for _, m := range ms {
		if slices.Contains(m.Labels, l) || slices.Contains(m.OptionalLabels, l) || l == "le" && m.Type == Histogram {
			return true
		}
	}
	return false
}

func names(ms []Metric) []string {
	var ns []string
	for _, m := range ms {
		ns = append(ns, m.Name)
	}
	return ns
}

// TestMetricsIn proves the scanner that writes panel descriptions finds
// exactly the metrics the PromQL parser finds, on every dashboard query
// and on a few tricky ones.
func TestMetricsIn(t *testing.T) {
	queries := []string{
		// A metric name inside a label value is not read.
		`sum(rate(strata_http_requests_total{route="strata_cache_hits_total"}[1m]))`,
		// Nor one inside a backquoted or single-quoted string, with escapes.
		"strata_shard_map_epoch{shard=~`strata_db_waits_total`, pool!='a\\'strata_db_idle_connections'}",
		// A histogram's series name is the histogram's entry; duplicates appear once.
		`strata_replica_query_duration_seconds_bucket / strata_replica_query_duration_seconds_count`,
	}
	for _, d := range Dashboards() {
		queries = append(queries, d.Queries()...)
	}
	for _, q := range queries {
		var want []string
		for _, n := range selected(parse(t, q)) {
			if m, ok := Lookup(n); ok && !slices.Contains(want, m.Name) {
				want = append(want, m.Name)
			}
		}
		if got := newIndex().metricsIn(q); !slices.Equal(got, want) {
			t.Errorf("metricsIn(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestDashboardsShowEveryMetric requires each of Strata's metrics on a
// dashboard, and the expected dashboards to be there, each with panels.
func TestDashboardsShowEveryMetric(t *testing.T) {
	shown := map[string]bool{}
	var uids []string
	for _, d := range Dashboards() {
		uids = append(uids, d.UID)
		if len(d.Panels) == 0 {
			t.Errorf("%s has no panels", d.UID)
		}
		for _, p := range d.Panels {
			if p.Title == "" || p.Unit == "" || p.Description == "" || len(p.Targets) == 0 {
				t.Errorf("%s: incomplete panel %+v", d.UID, p)
			}
		}
		for _, q := range d.Queries() {
			for _, n := range newIndex().metricsIn(q) {
				shown[n] = true
			}
		}
	}
	if want := []string{"strata-overview", "strata-cache", "strata-replicas", "strata-shards", "strata-database", "strata-overload", "strata-search"}; !slices.Equal(uids, want) {
		t.Errorf("dashboards %v, want %v", uids, want)
	}
	for _, m := range Catalogue() {
		if m.Source == SourceStrata && !shown[m.Name] {
			t.Errorf("%s is on no dashboard", m.Name)
		}
	}
	// Each call is fresh.
	ds := Dashboards()
	ds[0].Panels[0].Targets[0].Expr = "changed"
	if Dashboards()[0].Panels[0].Targets[0].Expr == "changed" {
		t.Error("Dashboards shares state between calls")
	}
}

// TestDashboardJSON checks what Grafana's import needs: the JSON decodes,
// with the schema version, the datasource variable, and time-series
// panels with unique ids, grid positions that do not overlap and the
// queries of Queries, in order.
func TestDashboardJSON(t *testing.T) {
	type gpanel struct {
		ID          int
		Type        string
		Title       string
		Description string
		Datasource  struct{ Type, UID string }
		GridPos     struct{ H, W, X, Y int }
		FieldConfig struct{ Defaults struct{ Unit string } }
		Targets     []struct {
			RefID        string
			Expr         string
			LegendFormat string
		}
	}
	var g struct {
		UID, Title    string
		SchemaVersion int
		Templating    struct {
			List []struct{ Name, Type, Query string }
		}
		Panels []gpanel
	}
	for _, d := range Dashboards() {
		b, err := d.JSON()
		if err != nil {
			t.Fatalf("%s: %v", d.UID, err)
		}
		g.Panels = nil
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", d.UID, err)
		}
		if g.UID != d.UID || g.Title != d.Title || g.SchemaVersion < 36 {
			t.Errorf("%s: uid %q title %q schemaVersion %d", d.UID, g.UID, g.Title, g.SchemaVersion)
		}
		if l := g.Templating.List; len(l) != 1 || l[0].Name != "datasource" || l[0].Type != "datasource" || l[0].Query != "prometheus" {
			t.Errorf("%s: templating %+v, want the datasource variable", d.UID, l)
		}
		ids, cells := map[int]bool{}, map[[2]int]bool{}
		var exprs []string
		for i, p := range g.Panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel id %d twice or zero", d.UID, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "timeseries" || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" ||
				p.Title != d.Panels[i].Title || p.Description != d.Panels[i].Description || p.FieldConfig.Defaults.Unit != d.Panels[i].Unit {
				t.Errorf("%s: panel %+v does not match %+v", d.UID, p, d.Panels[i])
			}
			if gp := p.GridPos; !place(cells, gp.X, gp.Y, gp.W, gp.H) {
				t.Errorf("%s: panel %d at %+v is off the 24-column grid or overlaps another", d.UID, p.ID, gp)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("%s: panel %d refId %q twice or empty", d.UID, p.ID, tg.RefID)
				}
				refs[tg.RefID] = true
				exprs = append(exprs, tg.Expr)
			}
		}
		if !slices.Equal(exprs, d.Queries()) {
			t.Errorf("%s: the JSON's queries differ from Queries()", d.UID)
		}
	}
}

// place marks the cells of a w×h panel at x,y as taken, and reports
// whether it fits the grid without overlapping one placed before.
func place(cells map[[2]int]bool, x, y, w, h int) bool {
	if w <= 0 || h <= 0 || x < 0 || y < 0 || x+w > 24 {
		return false
	}
	for i := x; i < x+w; i++ {
		for j := y; j < y+h; j++ {
			if cells[[2]int{i, j}] {
				return false
			}
			cells[[2]int{i, j}] = true
		}
	}
	return true
}

func TestDashboardJSONRefuses(t *testing.T) {
	ok := Panel{Title: "p", Unit: "s", Targets: []Target{{Expr: "up"}}}
	for _, tc := range []struct {
		name string
		d    Dashboard
	}{
		{"a dashboard without a uid", Dashboard{Title: "t", Panels: []Panel{ok}}},
		{"a dashboard without panels", Dashboard{UID: "u", Title: "t"}},
		{"a panel without queries", Dashboard{UID: "u", Title: "t", Panels: []Panel{ok, {Title: "empty"}}}},
	} {
		if _, err := tc.d.JSON(); err == nil || !strings.HasPrefix(err.Error(), "monitor: ") {
			t.Errorf("%s: JSON() error %v, want a monitor: error", tc.name, err)
		}
	}
}

// TestRareQueries: a query may be marked Rare (no series on a healthy
// system) only where no series is honest: network utilisation, which
// needs a device that reports a link speed, and the counter panel of a
// metric no hand-made panel reads. Strata's counters of rare events
// export their label sets at 0, so their queries are not Rare.
func TestRareQueries(t *testing.T) {
	var rare int
	for _, d := range Dashboards() {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				speed := slices.Contains(selected(parse(t, tg.Expr)), "node_network_speed_bytes")
				_, auto := Lookup(p.Title) // metricPanel titles a panel with its metric
				switch {
				case speed && !tg.Rare:
					t.Errorf("%s / %s: divides by the link speed, which virtual devices lack, but is not Rare: %s", d.UID, p.Title, tg.Expr)
				case tg.Rare && !speed && !auto:
					t.Errorf("%s / %s: Rare, but reads metrics exported from the start: %s", d.UID, p.Title, tg.Expr)
				}
				if tg.Rare {
					rare++
				}
			}
		}
	}
	if rare == 0 {
		t.Error("no query is Rare; network utilisation should be")
	}
}
