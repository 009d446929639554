// Package bench compares Strata's parts with their peers, side by side in
// one process. It is a module of its own so that the peers (ristretto,
// go-redis, rueidis, go-redis/cache, sturdyc, …) are dependencies of the
// benchmarks only, never of Strata. Run it with
//
//	eval "$(../scripts/dev env)"; go test -run '^$' -bench . -benchmem ./...
//
// The figures and commands are recorded in ../docs/benchmarks.md.
package bench
