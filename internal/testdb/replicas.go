package testdb

import (
	"strings"
	"testing"
)

// EnvReplicas names the variable holding the shared primary's streaming
// replicas, comma-separated.
const EnvReplicas = "STRATA_PG_REPLICA_URLS"

// PostgresReplicas returns the URLs of the shared streaming replicas of
// the STRATA_PG_URL server, with the same search_path as primary (a URL
// from Postgres), so that they read the test's own schema. Without them the
// test is skipped on a developer's machine and fails when CI is set.
func PostgresReplicas(t testing.TB, primary string) []string {
	t.Helper()
	urls := env(t, EnvReplicas, "replica")
	var path string
	if _, query, ok := strings.Cut(primary, "?"); ok {
		for _, kv := range strings.Split(query, "&") {
			if strings.HasPrefix(kv, "search_path=") {
				path = kv
			}
		}
	}
	var out []string
	for _, u := range strings.Split(urls, ",") {
		if path != "" {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + path
		}
		out = append(out, u)
	}
	return out
}
