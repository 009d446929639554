# The two commands of the README are `go run ./cmd/strata demo` and `make test`.

.PHONY: test up down demo bench fuzz

# The linters CI runs, pinned, fetched through the Go module proxy.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOCYCLO     = github.com/fzipp/gocyclo/cmd/gocyclo@v0.6.0

# test: start the local PostgreSQL and Redis (scripts/dev), check formatting,
# vet, staticcheck and cyclomatic complexity, then run the whole suite
# against the servers, with the race detector. CI runs exactly this. The
# loadtest and advisor packages run after the others, each on its own.
test:
	@env=$$(scripts/dev up) && eval "$$env" && \
	  echo "== gofmt" && unformatted=$$(gofmt -l .) && { [ -z "$$unformatted" ] || { echo "not gofmt-ed: $$unformatted"; exit 1; }; } && \
	  echo "== go vet" && go vet ./... && (cd bench && go vet ./...) && \
	  echo "== staticcheck" && go run $(STATICCHECK) ./... && (cd bench && go run $(STATICCHECK) ./...) && \
	  echo "== gocyclo: no function over 30" && go run $(GOCYCLO) -over 30 . && \
	  echo "== go test" && go test -race -count=1 -timeout 20m $$(go list ./... | grep -v -e '/loadtest$$' -e '/advisor$$') && \
	  echo "== go test ./loadtest, alone: its tests time a load generator against local servers, which" && \
	  echo "   the other packages' load (fault tests, the demo's smoke runs) would turn into noise" && \
	  go test -race -count=1 -timeout 10m ./loadtest/ && \
	  echo "== go test ./advisor, alone: it loads PostgreSQL with a million-row table and real index" && \
	  echo "   builds, which would starve the timed runs of the demo and the fault tests" && \
	  go test -race -count=1 -timeout 10m ./advisor/

up:
	@scripts/dev up

down:
	@scripts/dev down

demo:
	go run ./cmd/strata demo

# bench: the in-process benchmarks; scripts/bench/* run the recorded sittings
# of docs/benchmarks.md, peers and load tools included.
bench:
	@env=$$(scripts/dev up) && eval "$$env" && go test -run '^$$' -bench . -benchmem ./...

# fuzz: a short run of every fuzz target.
fuzz:
	@for t in FuzzDecodeObject FuzzParseID FuzzSearch FuzzSuggest FuzzParseSearchTiers FuzzQuoteValue FuzzCreateUser; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./storefront/ || exit 1; done
	@go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/database/
	@for t in FuzzDecodeEnvelope FuzzDecodeBusMsg FuzzNormalizeSQL; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./cache/ || exit 1; done
	@go test -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime 30s ./replica/
	@for t in FuzzParseThreshold FuzzParsePlan FuzzParseTemplate; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./loadtest/ || exit 1; done
	@for t in FuzzParsePlan FuzzParseArray FuzzBindParams FuzzPartHistogramSpan FuzzConjuncts FuzzShape; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./advisor/ || exit 1; done
	@for t in FuzzDecodeMap FuzzVirtualShard FuzzParseVRange; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./shard/ || exit 1; done
	@for t in FuzzKind FuzzNormalize; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./internal/sqltext/ || exit 1; done
	@for t in FuzzParseURL FuzzParseRetryAfter; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./upstream/ || exit 1; done
	@for t in FuzzTraceparent FuzzDecodeRecommendations; do \
	  go test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./storefront/ || exit 1; done
