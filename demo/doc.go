// Package demo runs Strata's scale journey on one machine and measures
// every stage of it the same way, so that the stages compare.
//
// The storefront is seeded with the same data and served, one stage after
// another, on a free loopback port:
//
//	stage 1      one database (SQLite, embedded), no cache
//	stage 2      the read-through cache, in process (L1)
//	stage 2      L1 with Redis as L2, when Config.Redis is set
//	stage 3      the service split: the recommendation service on a
//	             loopback listener of its own (with its own L1), called
//	             over HTTP through an upstream.Client; L1 on SQLite
//	stage 1      on PostgreSQL, the primary alone, when Config.Postgres is set
//	stage 2      reads on streaming replicas, when Config.Replicas are set
//	stage 5      sharded by user id over independent primaries, when
//	             Config.Shards are set (databases of the demo's own, reseeded
//	             each run; the shard map kept from run to run)
//
// Each stage is measured by package loadtest on an open model, with one
// plan over the storefront's whole API, the composite page GET
// /users/{id}/home included (the user within 100 ms, the
// recommendations within 500 ms or the popular products instead, the
// guide's stage 3): first at one fixed rate, the same
// for every stage, with latency from each request's scheduled send; then
// pushed to its breaking point. Between two readings of the service's own
// counters around the fixed rate, the demo adds what the stage changes:
// the database statements one request costs (counted at the database
// driver, or by the replica router), the cache's hit ratio, and for the
// sharded stage the shard router's calls and the users on each shard.
// Each phase is judged on loadtest's criteria, the guide's where the
// demo's scale allows; [Full] adds the guide's spike and endurance phases,
// and [Smoke] only checks that every stage works.
//
// Two phases show what stage 3 and the overload controller are for.
// Stage 3's budgets phase asks for the composite page alone while the
// recommendation service stalls past the page's budget (it holds every
// request: alive to the network, answering nothing), then again once it
// is back: the page's p99, the share of pages whose recommendations fell
// back, and the upstream client's calls, retries and breaker state
// ([Budgets]). The overload phase drives stage 1 at three times the
// breaking point its search found, from two generators at once (the
// critical requests and the rest, as scripts/bench/overload does), once
// with the overload controller (package overload, its defaults) and once
// without, side by side ([Overload]).
//
// The services' log lines are kept while the tables are measured and
// printed after them. Run is what `strata demo` calls; the command writes
// the Result's Report as HTML.
package demo
