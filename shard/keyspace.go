package shard

// VirtualShard returns the virtual shard, 0 to n-1, of key. Stub: the
// keyspace function lands with its SQL twin.
func VirtualShard(key int64, n int) int {
	v := key % int64(n)
	if v < 0 {
		v += int64(n)
	}
	return int(v)
}
