# nokstream — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
GO    ?= go
BIN   := bin/nokstream
DATA  ?= ./var

.PHONY: run test build deps test-deps bench soak vet fmt clean stop race lint

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

# Every benchmark against its anchor (nginx, ffmpeg), with a private
# PostgreSQL, then one table (figure, ours, anchor, ratio, goal) with the
# machine and date, printed and written to var/bench.txt (deploy/local/bench.sh).
# BenchmarkSegmentIndex loads 100 M synthetic segments, or as many as the
# disk holds (NOKSTREAM_BENCH_SEGMENTS to change it).
bench: test-deps
	@deploy/local/bench.sh

# The memory soak: CAMERAS RTSP cameras for MINUTES minutes, the pipeline in
# one process and split into one process per service; fails when a process
# grows (the last third of the run 10% above the middle third) or a segment
# is lost. Figures go to var/soak.txt.
CAMERAS ?= 8
MINUTES ?= 10
soak: test-deps
	@mkdir -p var
	@NOKSTREAM_SOAK_CAMERAS=$(CAMERAS) NOKSTREAM_SOAK_MINUTES=$(MINUTES) NOKSTREAM_SOAK_MODES=all,split \
	  NOKSTREAM_SOAK_REPORT=$(CURDIR)/var/soak.txt \
	  deploy/local/test.sh -run '^TestSoak$$' -v -timeout 0 ./e2e

# Every package but e2e under the race detector, with a private PostgreSQL
# (e2e's processes are separate binaries; their packages are raced here).
# Not part of make test: it takes longer than the test budget allows (see
# docs/NOTES.md).
race: test-deps
	@deploy/local/test.sh -race -timeout 40m $$($(GO) list ./... | grep -v '/e2e$$' | sed 's|^github.com/nokstream/nokstream|.|')

# golangci-lint with .golangci.yml (make test runs it too).
lint: test-deps
	@PATH="$$($(GO) env GOPATH)/bin:$$PATH" golangci-lint run ./...

vet:
	@$(GO) vet ./...

fmt:
	@gofmt -l -w $$(git ls-files '*.go')

stop:
	@deploy/local/pg.sh stop "$(DATA)/pg"

clean: stop
	rm -rf bin "$(DATA)"
