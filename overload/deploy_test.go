package overload_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/strata-dev/strata/loadtest"
	"github.com/strata-dev/strata/overload"
)

// hpa is the part of an autoscaling/v2 HorizontalPodAutoscaler the test
// reads.
type hpa struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
		MinReplicas    int                         `yaml:"minReplicas"`
		MaxReplicas    int                         `yaml:"maxReplicas"`
		Metrics        []struct {
			Type string `yaml:"type"`
			Pods struct {
				Metric struct{ Name string } `yaml:"metric"`
				Target struct {
					Type         string `yaml:"type"`
					AverageValue string `yaml:"averageValue"`
				} `yaml:"target"`
			} `yaml:"pods"`
		} `yaml:"metrics"`
	} `yaml:"spec"`
}

// adapterRules is the Prometheus Adapter's rule file.
type adapterRules struct {
	Rules []struct {
		SeriesQuery string `yaml:"seriesQuery"`
		Resources   struct {
			Overrides map[string]struct{ Resource string } `yaml:"overrides"`
		} `yaml:"resources"`
		Name struct {
			Matches string `yaml:"matches"`
			As      string `yaml:"as"`
		} `yaml:"name"`
		MetricsQuery string `yaml:"metricsQuery"`
	} `yaml:"rules"`
}

func decodeFile(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// quantity reads a Kubernetes quantity of the form the manifest uses:
// a decimal, or thousandths with the suffix m.
func quantity(t *testing.T, q string) float64 {
	t.Helper()
	div := 1.0
	if s, ok := strings.CutSuffix(q, "m"); ok {
		q, div = s, 1000
	}
	v, err := strconv.ParseFloat(q, 64)
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v / div
}

// TestKubernetesManifests: the documented HPA and the Prometheus Adapter
// rule parse, agree with each other and with the metric the limiter
// exports, and scale at the guide's 80 % of the measured capacity.
func TestKubernetesManifests(t *testing.T) {
	var h hpa
	decodeFile(t, "hpa.yaml", &h)
	if h.APIVersion != "autoscaling/v2" || h.Kind != "HorizontalPodAutoscaler" || h.Spec.ScaleTargetRef.Kind != "Deployment" ||
		h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < h.Spec.MinReplicas || len(h.Spec.Metrics) != 1 {
		t.Fatalf("hpa.yaml: %+v", h)
	}
	m := h.Spec.Metrics[0]
	if m.Type != "Pods" || m.Pods.Metric.Name != overload.UtilisationMetric || m.Pods.Target.Type != "AverageValue" {
		t.Errorf("hpa.yaml's metric: %+v, want the pods' %s as an AverageValue", m, overload.UtilisationMetric)
	}
	if got := quantity(t, m.Pods.Target.AverageValue); got != loadtest.EnduranceFraction {
		t.Errorf("hpa.yaml's target %s = %v, want the guide's %v of capacity", m.Pods.Target.AverageValue, got, loadtest.EnduranceFraction)
	}

	var a adapterRules
	decodeFile(t, "prometheus-adapter.yaml", &a)
	if len(a.Rules) != 1 {
		t.Fatalf("prometheus-adapter.yaml: %d rules, want 1", len(a.Rules))
	}
	r := a.Rules[0]
	if !strings.HasPrefix(r.SeriesQuery, overload.UtilisationMetric+"{") || r.Name.As != m.Pods.Metric.Name ||
		!strings.Contains(r.Name.Matches, overload.UtilisationMetric) || r.Resources.Overrides["pod"].Resource != "pod" ||
		r.Resources.Overrides["namespace"].Resource != "namespace" || !strings.Contains(r.MetricsQuery, "<<.Series>>") {
		t.Errorf("prometheus-adapter.yaml's rule does not serve %s per pod as the HPA asks for it: %+v", overload.UtilisationMetric, r)
	}
}
