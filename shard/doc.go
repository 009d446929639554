// Package shard routes a Go service's keys to independent PostgreSQL
// primaries: a keyspace of virtual shards (VirtualShards by default)
// owned by named shards, a versioned map kept as data in a control schema
// and followed by every instance, and a router that gives the shard of a
// key and fans out over all of them.
//
// It also moves virtual shards between primaries while the service runs
// (online resharding): PlanMove records a move, RunMove takes it through
// pre-flight, copy and catch-up by PostgreSQL's logical replication,
// Verify, the read migration and the fenced cutover, each phase recorded
// so that any crash resumes; Cleanup and Rollback end it. See mover.go
// for the phases and stream.go for the replication they drive.
//
// With Config.TracerProvider, Read, Write, Tx and Each under a caller's
// span are spans that say which shard a key went to, its virtual shard
// and the map's epoch (see trace.go); the shards' replica routers trace
// below them.
package shard
