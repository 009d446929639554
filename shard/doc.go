// Package shard routes a Go service's keys to independent PostgreSQL
// primaries: a keyspace of virtual shards (VirtualShards by default)
// owned by named shards, a versioned map kept as data in a control schema
// and followed by every instance, and a router that gives the shard of a
// key and fans out over all of them.
package shard
