#!/usr/bin/env bash
# Runs every test against real dependencies: a private PostgreSQL cluster
# started here (shared by the test packages, one database per test), the
# MinIO server binary (started by the tests, one bucket per test) and the
# Kafka protocol (kfake in-process, or the cluster in NOKSTREAM_TEST_KAFKA).
# Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/nokstream-test-pg-XXXXXX")
cleanup() { deploy/local/pg.sh stop "$pgdir"; rm -rf "$pgdir"; }
trap cleanup EXIT
echo "test: starting a private PostgreSQL in $pgdir"
# A random port may be taken by something else on the machine: try others.
dsn=""
for attempt in 1 2 3 4 5; do
  pgport=$(( 20000 + RANDOM % 20000 ))
  if dsn=$(deploy/local/pg.sh start "$pgdir" "$pgport"); then break; fi
  echo "test: PostgreSQL did not start on port $pgport (attempt $attempt); its log:" >&2
  tail -n 5 "$pgdir/server.log" >&2 || true
  deploy/local/pg.sh stop "$pgdir"
  dsn=""
done
[ -n "$dsn" ] || { echo "test: could not start PostgreSQL; see the log above" >&2; exit 1; }
export NOKSTREAM_TEST_PG="$dsn"
[ -n "${NOKSTREAM_TEST_KAFKA:-}" ] && echo "test: using the Kafka cluster $NOKSTREAM_TEST_KAFKA"
echo "test: go test ./... (about 11 minutes on 2 cores)"
# Arguments that name packages replace ./... (make soak).
pkgs=(./...)
for a in "$@"; do [[ "$a" == ./* ]] && pkgs=(); done
lint_pid=""
if [ $# -eq 0 ]; then
  # golangci-lint (.golangci.yml) runs beside the tests on a full run: about
  # 1 min of CPU from cold, seconds when its cache is warm. Its findings are
  # printed, and fail the run, after the tests.
  lint_log=$(mktemp "${TMPDIR:-/tmp}/nokstream-lint-XXXXXX")
  echo "test: golangci-lint run ./... (beside the tests; output after them)"
  golangci-lint run ./... >"$lint_log" 2>&1 &
  lint_pid=$!
fi
test_rc=0
# -parallel 3: most end-to-end tests wait on media streamed in real time,
# so three at a time on two cores finish sooner than two without starving
# each other. The timeout is a backstop against a hang, not the budget.
go test -count=1 -timeout 25m -parallel 3 "$@" "${pkgs[@]}" || test_rc=$?
if [ -n "$lint_pid" ]; then
  if wait "$lint_pid"; then
    echo "test: golangci-lint: no findings"
  else
    echo "test: golangci-lint found these (fix them, or add a reasoned exclusion to .golangci.yml):" >&2
    cat "$lint_log" >&2
    [ "$test_rc" -ne 0 ] || test_rc=1
  fi
  rm -f "$lint_log"
fi
[ "$test_rc" -eq 0 ] || exit "$test_rc"
if [ $# -eq 0 ]; then
  # The fuzz targets of untrusted input run briefly on every full test run
  # (their seed corpora also run above, as plain tests). A new input is
  # minimized for at most 5 s: with the default 60 s a short run would spend
  # its time minimizing. Each runs for a count of inputs, about a third of
  # what 8 s give on a quiet 2-core machine, not for a time: with -fuzztime
  # as a duration, Go 1.26's coordinator can report its own deadline as a
  # failure ("context deadline exceeded", no input written) when a loaded
  # machine keeps a worker busy at the end (golang/go#75804, fixed in 1.27).
  # NOKSTREAM_FUZZTIME (e.g. 5m or 100000x) runs every target for that long.
  for target in "FuzzRTSPRequest ./ingest/rtsp 800x" "FuzzRTPRecorder ./ingest/rtsp 250x" "FuzzWHIPOffer ./ingest/whip 5000x" \
    "FuzzSegmenter ./ingest/segmenter 2000x" "FuzzImport ./registry/bootstrap 20000x" "FuzzEvents ./internal/events 40000x" \
    "FuzzVerify ./internal/evidence/bundle 60x"; do
    set -- $target
    echo "test: fuzzing $1 for ${NOKSTREAM_FUZZTIME:-$3}"
    go test -run '^$' -fuzz "^$1\$" -fuzztime "${NOKSTREAM_FUZZTIME:-$3}" -fuzzminimizetime 5s "$2"
    set --
  done
fi
