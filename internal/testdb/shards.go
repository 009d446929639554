package testdb

import (
	"strings"
	"testing"
)

// EnvShards names the variable holding the URLs of the independent
// PostgreSQL primaries (scripts/dev's shard1 and shard2), comma-separated.
const EnvShards = "STRATA_PG_SHARD_URLS"

// ShardURLs returns the URLs of the independent PostgreSQL primaries that
// scripts/dev starts. Without them the test is skipped on a developer's
// machine and fails when CI is set.
func ShardURLs(t testing.TB) []string {
	t.Helper()
	v := env(t, EnvShards, "shard")
	return strings.Split(v, ",")
}

// ShardDatabases returns, for each independent primary of ShardURLs, the
// URL of a new, empty database of t's own on it, dropped when t ends. A
// sharded store needs databases rather than schemas: its shard map lives
// in a fixed schema of the main database (use PostgresDatabase for that).
func ShardDatabases(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, u := range ShardURLs(t) {
		out = append(out, database(t, u, EnvShards))
	}
	return out
}
