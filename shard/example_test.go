package shard_test

import (
	"fmt"

	"github.com/strata-dev/strata/shard"
)

// A hash map spreads the 1,000 virtual shards over the shards in blocks;
// a key's owner is the owner of its virtual shard, which PostgreSQL can
// compute too (VirtualShardSQL), for row filters and checks.
func ExampleNewHashMap() {
	m, err := shard.NewHashMap([]shard.Shard{
		{Name: "east", URL: "postgres://app@10.0.0.1/shop"},
		{Name: "west", URL: "postgres://app@10.0.0.2/shop"},
	}, 0)
	if err != nil {
		panic(err)
	}
	for _, user := range []int64{42, 7} {
		fmt.Printf("user %d: virtual shard %d, shard %s\n", user, shard.VirtualShard(user, len(m.Owners)), m.Shards[m.Owner(user)].Name)
	}
	fmt.Println(shard.VirtualShardSQL("user_id", len(m.Owners)))
	// Output:
	// user 42: virtual shard 520, shard west
	// user 7: virtual shard 175, shard east
	// ((hashint8((user_id)::bigint) & 2147483647) % 1000)
}
