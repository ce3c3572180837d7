# nokstream — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
GO    ?= go
BIN   := bin/nokstream
DATA  ?= ./var

.PHONY: run test build deps test-deps bench vet fmt clean stop

run: deps build
	@deploy/local/run.sh "$(DATA)"

test: test-deps
	@deploy/local/test.sh

build:
	@$(GO) build -o $(BIN) ./cmd/nokstream

deps:
	@deploy/local/deps.sh

test-deps:
	@deploy/local/deps.sh test

# Every benchmark, with a private PostgreSQL. BenchmarkSegmentIndex loads
# 10 M synthetic segments (NOKSTREAM_BENCH_SEGMENTS to change it) and reports
# the p50/p99 of the exam media, evidence and playlist queries.
bench: test-deps
	@deploy/local/test.sh -run '^$$' -bench . -benchmem -timeout 60m

vet:
	@$(GO) vet ./...

fmt:
	@gofmt -l -w $$(git ls-files '*.go')

stop:
	@deploy/local/pg.sh stop "$(DATA)/pg"

clean: stop
	rm -rf bin "$(DATA)"
