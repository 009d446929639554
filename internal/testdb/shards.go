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
