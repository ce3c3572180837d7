#!/usr/bin/env bash
# make bench: every benchmark against its anchor, on a private PostgreSQL
# (deploy/local/test.sh), then one table of what they measured.
#
# A benchmark that produces a figure prints a line to stdout
#   BENCHTABLE|<figure>|<ours>|<anchor>|<ratio>|<goal>
# and this script collects those lines (the last of each figure) into a
# table with the machine and the date, printed and written to
# var/bench.txt; the whole output goes to var/bench.log.
#
# The anchors come from Debian: nginx (serving the same file as the media
# route) and wrk (the load) are installed here if missing; ffmpeg is
# installed by deps.sh. NOKSTREAM_BENCH_SEGMENTS (default 100 000 000) is
# how many segments BenchmarkSegmentIndex loads, or as many as the disk
# holds. Arguments replace the default `-run '^$' -bench .` of every
# package (e.g. -run '^$' -bench MediaServing ./registry/api).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p var

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing the anchors' Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Installing nginx must not start the system's nginx on port 80.
  policy=/usr/sbin/policy-rc.d
  added=0
  if [ ! -e "$policy" ] && [ "$(id -u)" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; added=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  [ "$added" = 1 ] && rm -f "$policy"
fi

export NOKSTREAM_BENCH_SEGMENTS="${NOKSTREAM_BENCH_SEGMENTS:-100000000}"
args=("$@")
# One package at a time (-p 1): two benchmarks side by side would measure
# each other.
[ ${#args[@]} -eq 0 ] && args=(-run '^$' -bench . -benchmem -timeout 0)
args=(-p 1 "${args[@]}")
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
deploy/local/test.sh "${args[@]}" 2>&1 | tee var/bench.log || status=$?

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo)
{
  echo "make bench, $started: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr), $(go version | cut -d' ' -f3); load average at the start $load"
  echo
  echo "| figure | ours | anchor | ratio | goal |"
  echo "|---|---|---|---|---|"
  # The last line of each figure, in the order figures first appeared.
  grep -a '^BENCHTABLE|' var/bench.log | awk -F'|' '
    { if (!($2 in row)) order[n++] = $2; row[$2] = "| " $2 " | " $3 " | " $4 " | " $5 " | " $6 " |" }
    END { for (i = 0; i < n; i++) print row[order[i]] }'
} > var/bench.txt
echo
cat var/bench.txt
[ "$status" -eq 0 ] || echo "bench: go test failed (status $status); the table holds what finished; see var/bench.log" >&2
exit "$status"
