#!/usr/bin/env bash
# Runs every test against real dependencies: a private PostgreSQL cluster
# started here (shared by the test packages, one database per test), the
# MinIO server binary (started by the tests, one bucket per test) and the
# Kafka protocol (kfake in-process, or the cluster in NOKSTREAM_TEST_KAFKA).
# Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"
pgdir="${TMPDIR:-/tmp}/nokstream-test-pg-$$"
pgport=$(( 20000 + RANDOM % 20000 ))
cleanup() { deploy/local/pg.sh stop "$pgdir"; rm -rf "$pgdir"; }
trap cleanup EXIT
echo "test: starting a private PostgreSQL in $pgdir"
dsn=$(deploy/local/pg.sh start "$pgdir" "$pgport")
export NOKSTREAM_TEST_PG="$dsn"
[ -n "${NOKSTREAM_TEST_KAFKA:-}" ] && echo "test: using the Kafka cluster $NOKSTREAM_TEST_KAFKA"
echo "test: go test ./... (about 3 minutes)"
go test -count=1 -timeout 15m "$@" ./...
