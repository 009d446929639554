// Package loadtest is Strata's load generator: the guide's "Load Testing
// Strategy" (AmazonScaleLoadTesting) as a library and `strata loadtest`.
//
// # Plans and phases
//
// A Plan (ParsePlan reads one from YAML; DefaultPlan writes the guide's)
// names a target, a weighted request mix whose paths, headers and bodies
// draw values from generators (sequence, uniform, Zipf, a choice, the rows
// of a CSV file), and phases that run in turn with a cool-down between
// them. A phase follows a pattern:
//
//	constant   one rate for the duration
//	ramp       linearly from rate to `to`
//	steps      from rate to `to` in equal steps
//	breaking   probes of `step` each, the rate × growth until one fails its
//	           probe criteria (÷ growth instead while the start rate
//	           fails), then bisected to within 5 %; a failed probe is run
//	           once more before it counts, so one stall does not set the
//	           result. The breaking point is the highest rate that passed.
//	           Then an overload at the first failing rate, and the load
//	           drops back to a passing rate to time the recovery.
//	spike      rate, rate × multiplier for `spike`, rate again: the latency
//	           increase, the error rate during the spike and the time until
//	           p99 is back near its level before (see Reference latency)
//	sustained  a fraction of a capacity, given or measured by an earlier
//	           breaking phase
//
// Each phase is judged PASSED, FAILED or ERROR (not measurable) on its
// criteria: k6-style thresholds (p(99)<100ms, rate<0.1%, rps>=500) and the
// guide's phase criteria (breaking_point, recovery, latency_increase,
// spike_error_rate, memory_growth, cpu_growth); the Report's Assessment
// sums them up. A phase without criteria gets the guide's for its kind.
// A plan's durations scale together (--scale 0.01 runs the guide's 28
// hours in about 17 minutes), and --set overrides any key. A Plan can
// also be built in Go, with Requests sent in turn; Run checks it as
// ParsePlan checks a file, naming the bad field, and fills in the
// defaults its zero fields stand for.
//
// # Reference latency
//
// The criteria that compare a latency with a calm one (a spike's
// latency_increase, a steady phase's, and recovery) compare typical
// p99s: the median of the per-second p99s of the seconds compared, and at
// least 1 ms. The calm seconds are those before the spike, the first
// tenth of a steady phase (at least three seconds where it has six), and
// a breaking search's probe at its first passing rate, the rate its
// recovery drops back to. One slow second among several (a GC pause, a
// noisy neighbour) does not move a median, while a latency that really
// rises moves every second; and a target that answers in a fraction of a
// millisecond, where the figure is mostly the machine's scheduling, is
// compared as if it took 1 ms. Recovered is the first second whose own
// p99, and the typical p99 of the few seconds from it, are back within
// 10 % (or 1 ms) of the reference, with under 1 % errors. Give the calm
// stretches several seconds (the seconds before a spike, a breaking
// search's step) so that the reference is a median of several.
//
// # The open model
//
// Requests are sent at their scheduled times whether or not earlier ones
// have returned, bounded by Connections in flight; a send that finds them
// all busy waits and is counted late, and one the schedule could not make
// at all is counted skipped. Latency runs from the scheduled time, so a
// slow server cannot hide the requests it delayed (coordinated omission);
// the uncorrected latency, from the actual send, is reported beside it,
// and so is the schedule lag, the generator's own error. The schedule
// sleeps with nanosleep on a thread of its own, because Go's timers wake a
// lightly loaded process up to a millisecond late. The generator measures
// its own CPU and warns when it was saturated.
//
// # Measurement
//
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go,
// the reference Go port): 0.1 % precision from 1 µs to an hour in constant
// memory, and exactly mergeable. Senders record into a few mutex-guarded
// stripes, one per pair of CPUs, so memory does not grow with
// Connections. Every second of a phase is a Point: its asked rate,
// requests, errors by kind (status NNN, timeout, connection), latency
// percentiles and, encoded, its own 1 %-precision histogram; and, when the
// plan names the target's Prometheus endpoint, the target's CPU, resident
// memory, goroutines and any named series, scraped each second, so that
// memory growth and CPU stability are measured on the target.
//
// # Distributed runs and reports
//
// A plan parsed with Slice i of Slices N sends 1/N of every rate, offset
// so that the N generators' sends interleave; Merge adds their reports
// with exact percentiles (the histograms travel in the JSON). A Report
// writes itself as JSON, a terminal summary, JUnit XML and a
// self-contained HTML page with charts (uPlot, embedded).
//
// Requests go out on fasthttp (see senders for why), or on a caller's
// *http.Client.
package loadtest
