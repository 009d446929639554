// Package loadtest is Strata's load generator: the guide's "Load Testing
// Strategy" (AmazonScaleLoadTesting) as a library and `strata loadtest`.
//
// This first part is the attack: one constant-rate or as-fast-as-possible
// run against a list of targets, on an open model. Each request is sent at
// its scheduled time whether or not earlier ones have returned, bounded by
// Connections in flight; a send that finds them all busy waits, is counted
// late, and its latency still runs from its scheduled time, so a slow
// server cannot hide the requests it delayed (coordinated omission). The
// uncorrected latency, from the actual send, is reported beside it, and
// so is the schedule lag, how late each send started: the generator's own
// error (Go's timers wake up to about a millisecond late on an idle
// process) plus any wait for a connection. A p99 lag over 1 ms is
// reported as a warning.
//
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go,
// the reference Go port): constant memory whatever the run's length,
// 0.1 % precision from 1 µs to an hour, and exactly mergeable, so each
// sender keeps its own and they are merged at the end, and so will the
// slices of a distributed run be. Phases, plans, criteria and reports
// build on it.
package loadtest
