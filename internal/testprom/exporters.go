package testprom

import (
	"net/url"
	"os"
	"testing"

	"github.com/strata-dev/strata/internal/testdb"
)

// The variables naming the exporters scripts/dev starts (`eval
// "$(scripts/dev up)"`), as base URLs (http://127.0.0.1:PORT).
const (
	EnvNodeExporter     = "STRATA_NODE_EXPORTER_URL"
	EnvPostgresExporter = "STRATA_POSTGRES_EXPORTER_URL"
)

// NodeExporter returns the host:port of the shared
// prometheus-node-exporter, for a Job's Targets. Without it t is skipped
// on a developer's machine and fails when CI is set.
func NodeExporter(t testing.TB) string {
	t.Helper()
	return exporter(t, EnvNodeExporter)
}

// PostgresExporter returns the host:port of the shared
// prometheus-postgres-exporter, which watches the STRATA_PG_URL server.
// Without it t is skipped on a developer's machine and fails when CI is
// set.
func PostgresExporter(t testing.TB) string {
	t.Helper()
	return exporter(t, EnvPostgresExporter)
}

// exporter returns the host:port of the URL in the variable name.
func exporter(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if testdb.Required() {
			t.Fatalf("%s is not set and CI is: monitoring tests must run here (eval \"$(scripts/dev up)\")", name)
		}
		t.Skipf("%s not set; run eval \"$(scripts/dev up)\" to run monitoring tests", name)
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		t.Fatalf("testprom: %s=%q: not a URL http://HOST:PORT", name, v)
	}
	return u.Host
}
