package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-dev/strata/internal/testdb"
	"github.com/strata-dev/strata/shard"
)

// TestShardMapAndLocate: strata shard map prints the published map (JSON
// with each shard's name and URL, the password hidden), locate names a
// key's owner, and bad input is refused in one line.
func TestShardMapAndLocate(t *testing.T) {
	url := testdb.PostgresDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runs := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(ctx, args, &out, &out)
		return code, out.String()
	}
	// Before a map exists.
	if code, out := runs("shard", "map", "--db", url); code != 1 || !strings.Contains(out, "no shard map in") {
		t.Errorf("map before any: exit %d: %s", code, out)
	}
	if err := shard.Install(ctx, db); err != nil {
		t.Fatal(err)
	}
	m, err := shard.NewHashMap([]shard.Shard{
		{Name: "east", URL: "postgres://app:s3cret@10.0.0.1:5432/shop"},
		{Name: "west", URL: "postgres://app:s3cret@10.0.0.2:5432/shop"},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shard.Publish(ctx, db, m); err != nil {
		t.Fatal(err)
	}
	code, out := runs("shard", "map", "--db", url, "--json")
	if code != 0 {
		t.Fatalf("map --json: exit %d: %s", code, out)
	}
	var got mapJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("map --json is not JSON: %v\n%s", err, out)
	}
	if got.Epoch != 1 || len(got.Shards) != 2 || got.Shards[0].Name != "east" ||
		len(got.Shards[0].VirtualShards) != 1 || got.Shards[0].VirtualShards[0] != [2]int{0, 499} ||
		got.Shards[1].VirtualShards[0] != [2]int{500, 999} {
		t.Errorf("map --json: %+v", got)
	}
	if strings.Contains(out, "s3cret") || !strings.Contains(got.Shards[0].URL, "10.0.0.1") {
		t.Errorf("the password is shown, or the URL is lost: %s", out)
	}
	if code, out := runs("shard", "map", "--db", url); code != 0 || !strings.Contains(out, "epoch 1") || !strings.Contains(out, "0-499") || strings.Contains(out, "s3cret") {
		t.Errorf("map: exit %d:\n%s", code, out)
	}
	// Key 42 is virtual shard 520 (shard.ExampleVirtualShard): west's.
	if code, out := runs("shard", "locate", "--db", url, "--key", "42"); code != 0 || !strings.Contains(out, "virtual shard 520 of 1000, on shard west") {
		t.Errorf("locate: exit %d: %s", code, out)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", []string{"shard", "locate", "--db", url}, 2, "--key is required"},                     // the key is required
		{"words for key", []string{"shard", "locate", "--db", url, "--key", "x"}, 2, "invalid argument"}, // not a number
		{"no db", []string{"shard", "map"}, 2, "--db is required"},                                       // no default database
		{"sqlite", []string{"shard", "map", "--db", "sqlite://strata.db"}, 2, "not a PostgreSQL URL"},    // the map lives in PostgreSQL
		{"unreachable", []string{"shard", "map", "--db", "postgres://a:s3cret@127.0.0.1:1/x"}, 1, "cannot reach the database at 127.0.0.1:1/x"},
	} {
		code, out := runs(c.args...)
		if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, "s3cret") {
			t.Errorf("%s: exit %d, want %d and %q:\n%s", c.name, code, c.code, c.want, out)
		}
	}
}
