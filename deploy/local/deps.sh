#!/usr/bin/env bash
# Installs what nokstream needs on Debian 12, only what is missing:
#   Debian packages: ffmpeg (publisher and probe in tests, simulator), the
#   FFmpeg development libraries (transcoder, cgo), PostgreSQL, pkg-config.
#   With "test": Chromium (headless browser tests), the pinned MinIO
#   server binary in $(go env GOPATH)/bin, and axe-core (the accessibility
#   checks the browser tests inject) from npm in $(go env GOPATH)/axe-core@VERSION,
#   and the pinned golangci-lint in $(go env GOPATH)/bin.
# Idempotent and quick when everything is there.
set -euo pipefail

want_minio=0
[ "${1:-}" = "test" ] && want_minio=1

pkgs=(ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
      libavfilter-dev libavdevice-dev pkg-config postgresql fonts-dejavu-core curl ca-certificates)
# Tests also drive headless Chromium (WHIP publishing from a browser).
[ "$want_minio" = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$want_minio" = 1 ]; then
  MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
  gobin="$(go env GOPATH)/bin"
  stamp="$gobin/.minio-$MINIO_VERSION"
  if [ ! -x "$gobin/minio" ] || [ ! -f "$stamp" ]; then
    echo "deps: building the MinIO server $MINIO_VERSION into $gobin (about 3 minutes, once)"
    GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION"
    touch "$stamp"
  fi
fi

if [ "$want_minio" = 1 ]; then
  AXE_VERSION="4.14.1" # e2e/web_cabinet_test.go looks for this version
  axe_dir="$(go env GOPATH)/axe-core@$AXE_VERSION"
  if [ ! -f "$axe_dir/axe.min.js" ]; then
    echo "deps: fetching axe-core $AXE_VERSION from npm into $axe_dir"
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar -xzf "axe-core-$AXE_VERSION.tgz")
    mkdir -p "$axe_dir"
    cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$axe_dir/"
    rm -rf "$tmp"
  fi
fi

if [ "$want_minio" = 1 ]; then
  # golangci-lint, pinned: make test runs it with the repository's
  # .golangci.yml (a newer version brings new findings).
  GOLANGCI_LINT_VERSION="v2.15.0"
  gobin="$(go env GOPATH)/bin"
  lstamp="$gobin/.golangci-lint-$GOLANGCI_LINT_VERSION"
  if [ ! -x "$gobin/golangci-lint" ] || [ ! -f "$lstamp" ]; then
    echo "deps: building golangci-lint $GOLANGCI_LINT_VERSION into $gobin (about 2 minutes, once)"
    go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
    touch "$lstamp"
  fi
fi
