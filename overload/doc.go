// Package overload is an adaptive concurrency limiter with priority
// classes: the guide's stage-5 "latency over the SLA → scale up" turned
// into load shedding in front of a service's handlers, and into a signal
// an autoscaler can read.
//
// # The model
//
// The limit follows Netflix concurrency-limits' Gradient2 limiter
// (Gradient2Limit), with the SLA in the place of its long-term latency:
// requests are admitted while fewer than the limit are in flight; the
// latency of the admitted ones is gathered in windows (250 ms and at
// least 20 samples, or 1,000 samples), and at the end of each window its
// p99 L is compared with the target T (the guide's p99 < 100 ms):
//
//	L > T          limit × max(0.5, T / L)   the gradient: cut in proportion, at most by half
//	L < 0.8 × T    limit + √limit            Gradient2's queue allowance
//	otherwise      unchanged                 the headroom between 80 % and 100 % of the SLA
//
// within [MinLimit, MaxLimit] (by default 4 and 1,000). As in Gradient2,
// a window in which less than half the limit was ever in flight leaves
// the limit alone: the service is app-limited, its latency is not the
// limit's doing (a slow disk, a noisy neighbour), and shedding would make
// nothing faster. Where no limit brings the p99 under the SLA (a machine
// starved by other work), the limit falls to its minimum, and normal work
// with it, but critical work keeps a floor of its own (CriticalFloor, 20,
// Gradient2's minimum limit): it is admitted while fewer than 20 are in
// flight, whatever the limit, so the service sheds what can wait and
// keeps serving its critical reads. Gradient2 compares a short-term with a long-term
// average latency, which finds where queueing starts but knows no SLA;
// here the SLA is the reference, so the limit settles where the admitted
// requests' p99 is just under it, whatever the no-load latency.
//
// # Priority classes
//
// Work is [Critical], [Normal] or [Sheddable]. Each class may fill a share
// of the limit: Sheddable work (a part of a page that has a fallback,
// background prefetching) until half of it is in flight, Normal work
// until 80 %, Critical work all of it (and at least CriticalFloor); the
// rest stays reserved for critical work even when a cut of the limit leaves older work over the
// new limit. As load grows, sheddable work is refused first (its caller
// falls back without trying), then normal requests (503 with
// Retry-After), and critical reads last of all. Nothing queues without
// bound: Critical and Normal work that finds no room may wait in a small
// queue (32 by default, critical first; when it is full, critical work
// takes the place of the newest normal work) for at most 10 ms; Sheddable
// work never waits. A refusal is a [*RejectedError], which wraps
// [ErrOverloaded].
//
// Background work asks the same limiter and stops when refused:
//
//	tok, err := lim.Acquire(ctx, overload.Sheddable)
//	if err != nil {
//		return // overloaded: live traffic first
//	}
//	defer tok.Done()
//
// # The autoscaling signal
//
// With Config.CapacityRPS, the rate a load test found this instance
// breaks at (`strata loadtest` with a breaking phase), the limiter
// exports strata_overload_utilisation_ratio: the rate of work offered
// over the last 10 s, admitted or not, divided by that capacity. A
// Kubernetes HorizontalPodAutoscaler reads it through the Prometheus
// Adapter (deploy/kubernetes, docs/autoscaling.md): 1 means the instance
// is offered what it can serve within the SLA, 3 that it is offered three
// times that, and the autoscaler asks for three times the instances at
// once, where CPU utilisation would read at most 100 %.
//
// # Why no library
//
// github.com/platinummonkey/go-concurrency-limits, the Go port of
// Netflix's library, was the candidate. It is well kept (v1.0.1, 2026,
// with fixes to its blocking limiter's wake-ups that year), but it cannot
// be had here: the Go module proxy this project builds from refuses it
// (403, "not available"). Beyond that, its go.mod would bring DataDog's
// client, gRPC and go-metrics into the module, and its limiters measure
// against their own latency history rather than an SLA, with priority by
// fixed partitions of the limit. The algorithm above is about a hundred
// lines; it is written here, with a clock seam so tests drive the windows
// without sleeping. Metrics go to a prometheus.Registerer given in the
// Config, as everywhere in Strata.
package overload
