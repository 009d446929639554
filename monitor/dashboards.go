package monitor

import "encoding/json"

// Dashboard is one Grafana dashboard built from the catalogue.
type Dashboard struct {
	UID    string  // stable Grafana uid, e.g. strata-overview
	Title  string  // shown in Grafana's dashboard list
	Panels []Panel // in display order
}

// Panel is one time-series panel of a [Dashboard].
type Panel struct {
	Title       string
	Unit        string // Grafana unit id: s, reqps, percentunit, bytes, short, ...
	Description string
	Targets     []Target
}

// Target is one PromQL query of a [Panel]. Its Expr may use Grafana's
// $__rate_interval.
type Target struct {
	Expr   string
	Legend string // Grafana legend format, e.g. {{route}}
}

// Dashboards returns Strata's dashboards: the overview and one per
// subsystem. Each call builds them afresh.
func Dashboards() []Dashboard {
	return []Dashboard{{
		UID: "strata-overview", Title: "Strata / Overview",
		Panels: []Panel{{
			Title: "Request rate by route", Unit: "reqps",
			Targets: []Target{{Expr: `sum by (route) (rate(strata_http_requests_total[$__rate_interval]))`, Legend: "{{route}}"}},
		}},
	}}
}

// JSON returns d as Grafana dashboard JSON, ready to import.
func (d Dashboard) JSON() ([]byte, error) {
	return json.MarshalIndent(map[string]any{"uid": d.UID, "title": d.Title}, "", "  ")
}

// Queries returns the Expr of every target of d, in panel order.
func (d Dashboard) Queries() []string {
	var qs []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			qs = append(qs, t.Expr)
		}
	}
	return qs
}
