package monitor

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseDesc(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  desc
		error bool
	}{
		// The plain case: no labels, the unit field of client_golang ≥ 1.21.
		{in: `Desc{fqName: "a_total", help: "A.", unit: "", constLabels: {}, variableLabels: {}}`,
			want: desc{name: "a_total", help: "A.", constLabels: map[string]string{}}},
		// Without the unit field, as older client_golang writes it.
		{in: `Desc{fqName: "a", help: "", constLabels: {}, variableLabels: {x}}`,
			want: desc{name: "a", constLabels: map[string]string{}, variableLabels: []string{"x"}}},
		// Constant label values are Go-quoted and may hold commas, braces, quotes and "=".
		{in: `Desc{fqName: "a", help: "h \"q\" {}", unit: "s", constLabels: {shard="x,}\"y=",z="é"}, variableLabels: {pool,c(kind)}}`,
			want: desc{name: "a", help: `h "q" {}`, constLabels: map[string]string{"shard": `x,}"y=`, "z": "é"}, variableLabels: []string{"pool", "kind"}}},
		// A help full of the format's own punctuation does not confuse it.
		{in: `Desc{fqName: "a", help: ", constLabels: {}, variableLabels: {}}", unit: "", constLabels: {}, variableLabels: {}}`,
			want: desc{name: "a", help: ", constLabels: {}, variableLabels: {}}", constLabels: map[string]string{}}},
		// Something else entirely is refused.
		{in: `Counter{name: "a"}`, error: true},
		// A truncated description is refused.
		{in: `Desc{fqName: "a", help: "h", unit: "", constLabels: {}, variableLabels: {x`, error: true},
		// Trailing bytes are refused.
		{in: `Desc{fqName: "a", help: "h", unit: "", constLabels: {}, variableLabels: {}}}`, error: true},
		// A constant label without a value is refused.
		{in: `Desc{fqName: "a", help: "h", unit: "", constLabels: {x}, variableLabels: {}}`, error: true},
		// An unclosed constrained label is refused.
		{in: `Desc{fqName: "a", help: "h", unit: "", constLabels: {}, variableLabels: {c(x}}`, error: true},
		// A bad quoted string is refused.
		{in: `Desc{fqName: "a, help: "h", unit: "", constLabels: {}, variableLabels: {}}`, error: true},
	} {
		got, err := parseDesc(tc.in)
		if tc.error {
			if err == nil || !strings.HasPrefix(err.Error(), "monitor: ") {
				t.Errorf("parseDesc(%q) = %+v, %v; want a monitor: error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.name != tc.want.name || got.help != tc.want.help ||
			!maps.Equal(got.constLabels, tc.want.constLabels) || !slices.Equal(got.variableLabels, tc.want.variableLabels) {
			t.Errorf("parseDesc(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestParseDescReal reads what client_golang itself writes, wrapped and not.
func TestParseDescReal(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: `odd "help", {}`, ConstLabels: prometheus.Labels{"k": `v"}`}}, []string{"b", "a"})
	reg := NewRecorder(nil)
	prometheus.WrapRegistererWith(prometheus.Labels{"shard": "main"}, reg).MustRegister(c)
	ds := describe(reg.Collectors()[0])
	if len(ds) != 1 {
		t.Fatalf("described %v", ds)
	}
	d, err := parseDesc(ds[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.name != "x_total" || d.help != `odd "help", {}` || !slices.Equal(d.labels(), []string{"a", "b", "k", "shard"}) || d.constLabels["k"] != `v"}` {
		t.Fatalf("parseDesc(%s) = %+v", ds[0], d)
	}
}

func FuzzParseDesc(f *testing.F) {
	f.Add("x_total", "help", "k", "v", "pool")
	f.Add("a", `q"{},=`, "shard", "main,}", "c(x)")
	f.Fuzz(func(t *testing.T, name, help, constName, constValue, label string) {
		// Whatever the input, parseDesc returns an error or a value, never panics.
		_, _ = parseDesc(name)
		_, _ = parseDesc(`Desc{fqName: "` + name + `", help: "` + help + `", unit: "", constLabels: {` + constName + `="` + constValue + `"}, variableLabels: {` + label + `}}`)
		// What client_golang writes for a valid description with label
		// names of the classic form (all Strata uses; UTF-8 names would
		// make the format ambiguous) reads back exactly.
		if !classic(constName) || !classic(label) {
			return
		}
		var consts prometheus.Labels
		if constName != "" && constName != label {
			consts = prometheus.Labels{constName: constValue}
		}
		var vars []string
		if label != "" {
			vars = []string{label}
		}
		d := prometheus.NewDesc(name, help, vars, consts)
		if descErr(d) {
			return // invalid descriptions are not registered, so never read
		}
		got, err := parseDesc(d.String())
		if err != nil {
			t.Fatalf("parseDesc(%s): %v", d, err)
		}
		if got.name != name || got.help != help || !slices.Equal(got.variableLabels, vars) || !maps.Equal(got.constLabels, map[string]string(consts)) {
			t.Fatalf("parseDesc(%s) = %+v", d, got)
		}
	})
}

// classic reports whether s is "" or a label name of the classic form,
// [a-zA-Z_][a-zA-Z0-9_]*.
func classic(s string) bool {
	for i, r := range s {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// descErr reports whether d is invalid, as registering it would.
func descErr(d *prometheus.Desc) bool {
	err := prometheus.NewRegistry().Register(fixed{d})
	return err != nil
}

// fixed describes one Desc and collects nothing.
type fixed []*prometheus.Desc

func (f fixed) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f {
		ch <- d
	}
}
func (fixed) Collect(chan<- prometheus.Metric) {}

func TestCheck(t *testing.T) {
	cat := []Metric{
		{Name: "strata_x_total", Type: Counter, Help: "X.", Labels: []string{"pool"}, OptionalLabels: []string{"shard"}, Source: SourceStrata},
		{Name: "strata_y", Type: Gauge, Help: "Y.", Source: SourceStrata},
		{Name: "node_z", Type: Gauge, Help: "anything", Labels: []string{"device"}, Source: SourceNode},
	}
	x := func(help string, consts prometheus.Labels, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("strata_x_total", help, labels, consts)
	}
	y := prometheus.NewDesc("strata_y", "Y.", nil, nil)
	for _, tc := range []struct {
		name string
		cat  []Metric
		cs   []prometheus.Collector
		want CheckError // zero: no error
	}{
		{"all described alike pass; an exporter metric need not be described",
			cat, []prometheus.Collector{fixed{x("X.", nil, "pool"), y}}, CheckError{}},
		{"an optional label added as a constant label passes",
			cat, []prometheus.Collector{fixed{x("X.", prometheus.Labels{"shard": "a"}, "pool"), y}}, CheckError{}},
		{"an optional label as a variable label passes too",
			cat, []prometheus.Collector{fixed{x("X.", nil, "pool", "shard"), y}}, CheckError{}},
		{"a described metric with no entry is unlisted",
			cat, []prometheus.Collector{fixed{x("X.", nil, "pool"), y, prometheus.NewDesc("strata_new_total", "N.", nil, nil)}},
			CheckError{Unlisted: []string{"strata_new_total"}}},
		{"a strata entry nothing describes is unregistered",
			cat, []prometheus.Collector{fixed{y}}, CheckError{Unregistered: []string{"strata_x_total"}}},
		{"a missing label is a mismatch",
			cat, []prometheus.Collector{fixed{x("X.", nil), y}}, CheckError{Mismatched: []string{"strata_x_total has labels [], the catalogue [pool]"}}},
		{"an extra label, even a constant one, is a mismatch",
			cat, []prometheus.Collector{fixed{x("X.", prometheus.Labels{"region": "eu"}, "pool"), y}},
			CheckError{Mismatched: []string{"strata_x_total has labels [pool region], the catalogue [pool] (optional [shard])"}}},
		{"a strata metric's help must match",
			cat, []prometheus.Collector{fixed{x("Other.", nil, "pool"), y}}, CheckError{Mismatched: []string{`strata_x_total has help "Other.", the catalogue "X."`}}},
		{"an exporter metric's help need not, its labels must",
			cat, []prometheus.Collector{fixed{x("X.", nil, "pool"), y, prometheus.NewDesc("node_z", "other", []string{"dev"}, nil)}},
			CheckError{Mismatched: []string{"node_z has labels [dev], the catalogue [device]"}}},
		{"the same mismatch from two collectors is reported once",
			cat, []prometheus.Collector{fixed{x("X.", nil), y}, fixed{x("X.", nil)}}, CheckError{Mismatched: []string{"strata_x_total has labels [], the catalogue [pool]"}}},
		{"a name catalogued twice is reported",
			append(slices.Clone(cat), cat[1]), []prometheus.Collector{fixed{x("X.", nil, "pool"), y}}, CheckError{Duplicated: []string{"strata_y"}}},
	} {
		err := Check(tc.cat, tc.cs...)
		var got CheckError
		if ce := (*CheckError)(nil); errors.As(err, &ce) {
			got = *ce
		} else if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got.Unlisted, tc.want.Unlisted) || !slices.Equal(got.Unregistered, tc.want.Unregistered) ||
			!slices.Equal(got.Mismatched, tc.want.Mismatched) || !slices.Equal(got.Duplicated, tc.want.Duplicated) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "monitor: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
	}
}

func TestRecorder(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewRecorder(reg)
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "A."})
	b := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b", Help: "B."})
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"shard": "s1"}, r)
	r.MustRegister(a)
	wrapped.MustRegister(b)
	// A collector the next registerer refuses is not remembered.
	if err := r.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "A."})); err == nil {
		t.Fatal("registered a_total twice")
	}
	cs := r.Collectors()
	if len(cs) != 2 {
		t.Fatalf("Collectors() = %d collectors, want 2", len(cs))
	}
	// The wrapped collector describes itself with the wrapping labels.
	if ds := describe(cs[1]); len(ds) != 1 || !strings.Contains(ds[0], `shard="s1"`) {
		t.Fatalf("wrapped describes %v", ds)
	}
	// Registration reached the next registerer.
	if mfs, _ := reg.Gather(); len(mfs) != 2 {
		t.Fatalf("the registry gathers %d families, want 2", len(mfs))
	}
	// Unregistering through the wrapper forgets the wrapped collector.
	if !wrapped.Unregister(b) {
		t.Fatal("Unregister(b) = false")
	}
	if cs := r.Collectors(); len(cs) != 1 || cs[0] != prometheus.Collector(a) {
		t.Fatalf("after Unregister, Collectors() = %v", cs)
	}
	// Unregistering what is not registered changes nothing.
	if r.Unregister(b) || len(r.Collectors()) != 1 {
		t.Fatal("Unregister of an unknown collector changed something")
	}
}

func TestCatalogue(t *testing.T) {
	cat := Catalogue()
	subsystems := []string{SubsystemHTTP, SubsystemDB, SubsystemCache, SubsystemReplica, SubsystemShard, SubsystemUpstream, SubsystemOverload, SubsystemSearch, SubsystemTracing, SubsystemRuntime, SubsystemNode, SubsystemPostgres}
	if !slices.IsSortedFunc(cat, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("the catalogue is not sorted by name")
	}
	for i, m := range cat {
		if i > 0 && cat[i-1].Name == m.Name {
			t.Errorf("%s is catalogued twice", m.Name)
		}
		if m.Help == "" || !slices.Contains(subsystems, m.Subsystem) || m.Type == "" || m.Source == "" {
			t.Errorf("%s: incomplete entry %+v", m.Name, m)
		}
		if !slices.IsSorted(m.Labels) || !slices.IsSorted(m.OptionalLabels) {
			t.Errorf("%s: labels not sorted", m.Name)
		}
		// Strata's names follow strata_<subsystem>_<name>_<unit>, _total on counters.
		if m.Source == SourceStrata {
			if !strings.HasPrefix(m.Name, "strata_"+m.Subsystem+"_") {
				t.Errorf("%s is not strata_%s_*", m.Name, m.Subsystem)
			}
			if (m.Type == Counter) != strings.HasSuffix(m.Name, "_total") {
				t.Errorf("%s: a %s, _total suffix %v", m.Name, m.Type, strings.HasSuffix(m.Name, "_total"))
			}
		}
		if m.Unit != "" && !strings.Contains(m.Name+"_", "_"+m.Unit+"_") {
			t.Errorf("%s: unit %s not in the name", m.Name, m.Unit)
		}
	}
	// Each call is fresh: changing one result does not change the next.
	cat[0].Name, cat[0].Labels = "changed", append(cat[0].Labels, "x")
	if again := Catalogue(); again[0].Name == "changed" || slices.Contains(again[0].Labels, "x") {
		t.Error("Catalogue shares state between calls")
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"strata_http_requests_total", "strata_http_requests_total"},                            // a plain name
		{"strata_http_request_duration_seconds_bucket", "strata_http_request_duration_seconds"}, // a histogram's bucket series
		{"strata_http_request_duration_seconds_count", "strata_http_request_duration_seconds"},  // and its count
		{"go_gc_duration_seconds_sum", "go_gc_duration_seconds"},                                // a summary's sum
		{"go_gc_duration_seconds_bucket", ""},                                                   // a summary has no buckets
		{"strata_http_requests_total_count", ""},                                                // a counter has no count series
		{"strata_nothing", ""},                                                                  // unknown
	} {
		m, ok := Lookup(tc.name)
		if ok != (tc.want != "") || m.Name != tc.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.name, m.Name, ok, tc.want)
		}
	}
}
