package testdb

import (
	"os"
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
	v := os.Getenv(EnvShards)
	if v == "" {
		if Required() {
			t.Fatalf("%s is not set and CI is: PostgreSQL tests must run here (eval \"$(scripts/dev up)\")", EnvShards)
		}
		t.Skipf("%s not set; run eval \"$(scripts/dev up)\"", EnvShards)
	}
	return strings.Split(v, ",")
}
