GO ?= go
STATICCHECK_VERSION ?= v0.6.1
BENCH_DIR ?= /tmp/ecscorr-bench
BENCH_EVENTS ?= 1000000

# The JSON scans of the reading phase use vector instructions in builds
# with Go's simd experiment (pipeline/jsonskip_simd.go; AVX2, checked at
# run time; elsewhere the scalar code): every target here builds and tests
# with it, and `race` also tests the pipeline package without it.
export GOEXPERIMENT ?= simd

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS = -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build build-static image bench-ir bench-rss bench-sigma bench-scaleout demo test fmt-check vet staticcheck race bench bench-go fuzz golden rules-check rules-test tidy-check

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ecscorr ./cmd/ecscorr

## build-static: the binary of the image (CGO off, -trimpath, stamped), without Docker
build-static:
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/ecscorr-static ./cmd/ecscorr

## image: the container image (deploy/Dockerfile), where Docker runs
image:
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t ecscorr:$(VERSION) .

## demo: replay the bundled demo data with the built-in rules and print incidents
demo: build
	./bin/ecscorr replay --format table testdata/demo

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

race:
	$(GO) test -race -shuffle=on ./...
	GOEXPERIMENT= $(GO) test -race -shuffle=on ./pipeline/

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## test: gofmt, vet, staticcheck, and every test (including all rule tests) with the race detector
test: fmt-check vet staticcheck race

## bench: generate a seeded 1M-event corpus, replay it with the full pack (events/s, peak RSS), then Go benchmarks
bench: build
	$(GO) run ./testdata/bench/gen -out $(BENCH_DIR) -events $(BENCH_EVENTS) -seed 1
	GOMEMLIMIT=768MiB /usr/bin/time -f 'peak RSS: %M KiB, wall %e s' ./bin/ecscorr replay --out /dev/null $(BENCH_DIR)
	$(MAKE) bench-sigma
	$(MAKE) bench-go

## bench-scaleout: the bench corpus through an in-process ingest onto kfake, then 1, 2 and 3 `ecscorr run` correlate instances: events/s and CPU time per event, incidents equal to one process's; then a 100k slice with one of 3 instances SIGKILLed and a fourth joining
bench-scaleout: build
	$(GO) run ./testdata/bench/gen -out $(BENCH_DIR) -events $(BENCH_EVENTS) -seed 1
	$(GO) run ./testdata/bench/scaleout -corpus $(BENCH_DIR) -events $(BENCH_EVENTS) -bin ./bin/ecscorr
	$(GO) run ./testdata/bench/scaleout -corpus $(BENCH_DIR) -events 100000 -instances 3 -kill -bin ./bin/ecscorr

## bench-sigma: Invictus x345 (1,000,500 CloudTrail records): the decode floor and replay with the pack and the 57 SigmaHQ rules in one run; Sigma rule count 1..2,000; matches beside sigma-go's
SIGMA_BENCH_DIR ?= /tmp/ecscorr-invictus
bench-sigma: build
	$(GO) run ./testdata/bench/invictus -out $(SIGMA_BENCH_DIR) -copies 345
	$(GO) build -o bin/floor ./testdata/bench/floor
	./testdata/bench/sigma.sh $(SIGMA_BENCH_DIR) ./bin
	$(GO) test -run '^$$' -bench SigmaRules -benchtime 29000x -count 3 -benchmem ./correlate/engine/
	cd testdata/bench/sigmago && $(GO) run . -format md -rules ../../../correlate/sigma/testdata/aws_cloudtrail ../../../sources/archive/testdata/invictus

## fuzz: run every Fuzz target in the repository (found by grep, so new ones join) for FUZZTIME each, one at a time
FUZZTIME ?= 10m
# Minimising each new input for the default 60 s (or even 5 s) starves
# the search (about 30 executions in 30 s); a bounded number of tries
# keeps it going.
FUZZMINIMIZETIME ?= 100x
# Go 1.26's coordinator can fail a target at the end of -fuzztime with
# "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in 1.27): such a run is reported, not failed; a target that writes
# a failing input to testdata/fuzz/ fails.
fuzz:
	@set -e; failed=0; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		pkg=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			before=$$(ls $$pkg/testdata/fuzz/$$target 2>/dev/null | wc -l); \
			if ! $(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) $(FUZZFLAGS) $$pkg; then \
				if [ "$$(ls $$pkg/testdata/fuzz/$$target 2>/dev/null | wc -l)" -gt "$$before" ]; then failed=1; \
				else echo "== $$target: failed without a failing input (go.dev/issue/75804); not counted"; fi; \
			fi; \
		done; \
	done; exit $$failed

## bench-ir: instructions executed (valgrind) by the floor and by replay with the pack and with the 57 SigmaHQ rules on 40 objects of the Invictus corpus: an A/B that a busy machine's wall time cannot give
bench-ir: build
	$(GO) run ./testdata/bench/invictus -out $(SIGMA_BENCH_DIR) -copies 345
	$(GO) build -o bin/floor ./testdata/bench/floor
	./testdata/bench/ir.sh $(SIGMA_BENCH_DIR) ./bin

## bench-rss: peak RSS and wall time of a --state replay of 90,000 tasks × 40 Container Insights samples
RSS_DIR ?= /tmp/ecscorr-rss
bench-rss: build
	$(GO) run ./testdata/bench/insights -out $(RSS_DIR)/ci.jsonl.gz
	rm -rf $(RSS_DIR)/state && /usr/bin/time -f 'state, default budget: peak RSS %M KiB, wall %e s' ./bin/ecscorr replay --quiet --out /dev/null --state $(RSS_DIR)/state $(RSS_DIR)/ci.jsonl.gz
	rm -rf $(RSS_DIR)/state && /usr/bin/time -f 'state, no budget: peak RSS %M KiB, wall %e s' ./bin/ecscorr replay --quiet --out /dev/null --state $(RSS_DIR)/state --state-memory 0 $(RSS_DIR)/ci.jsonl.gz
	/usr/bin/time -f 'no state: peak RSS %M KiB, wall %e s' ./bin/ecscorr replay --quiet --out /dev/null $(RSS_DIR)/ci.jsonl.gz

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./pipeline/... ./sources/... ./correlate/... ./cmd/...

## golden: rewrite golden files after an intended change (review the diff!)
golden:
	$(GO) test $$(grep -rl --include='*_test.go' 'flag.Bool("update"' . | xargs -n1 dirname | sort -u) -update

rules-check: build
	./bin/ecscorr rules check

rules-test: build
	./bin/ecscorr rules test rules/builtin/*_test.yaml

tidy-check:
	$(GO) mod tidy -diff
	cd testdata/bench/sigmago && $(GO) mod tidy -diff
