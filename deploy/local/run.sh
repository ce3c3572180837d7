#!/usr/bin/env bash
# `make run`: a whole nokstream on this machine, with an exam in progress.
# Starts a private PostgreSQL under DATA/pg, runs `nokstream all`, and
# `nokstream sim --demo`, which stands up (or finds) the demo world through
# the CLI and the API (council → center → site with two room cameras and two
# workstations, an exam whose window is now, two admitted candidates, an
# expert, a user of every role) and publishes the room cameras over RTSP and
# each candidate's webcam and screen over WHIP. Then it says where to look.
# Ctrl-C stops everything with one line and status 0.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/../.."

# On a terminal, run the rest as a job of its own in the foreground: Ctrl-C
# then reaches it alone, not make, which would otherwise die of the
# signal (status 130) however cleanly everything stopped.
if [ -z "${NOKSTREAM_RUN_JOB:-}" ] && [ -t 0 ] && [ -t 1 ]; then
  set -m
  NOKSTREAM_RUN_JOB=1 "$self" "$@" &
  fg %1 >/dev/null
  exit $?
fi

data=$(realpath -m "${1:-./var}")
bin=./bin/nokstream
http=${NOKSTREAM_HTTP_ADDR:-127.0.0.1:8080}
rtsp=${NOKSTREAM_RTSP_ADDR:-127.0.0.1:8554}
admin=${NOKSTREAM_ADMIN_ADDR:-127.0.0.1:9190}
mkdir -p "$data"
log="$data/nokstream.log"
summary="$data/demo.txt"

echo "run: starting PostgreSQL in $data/pg"
# The owner (the cluster's own user) migrates; everything else runs as
# nokstream_app, which owns nothing and cannot rewrite the audit log.
owner_db=$(deploy/local/pg.sh start "$data/pg" "${NOKSTREAM_PG_PORT:-5433}")
$bin migrate --db "$owner_db" --runtime-role nokstream_app
export NOKSTREAM_DB=${owner_db/nokstream@/nokstream_app@}

pids=()
stopped=""
stop() {
  [ -n "$stopped" ] && return
  stopped=1
  trap '' INT TERM
  echo; echo "run: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/local/pg.sh stop "$data/pg" >/dev/null 2>&1 || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

$bin all --data "$data" --http-addr "$http" --rtsp-addr "$rtsp" >>"$log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  curl -fsS "http://$admin/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

# The simulator prints the demo world (logins, passwords, links) on its
# standard output once it is set up; its log goes with the others.
: >"$summary"
chmod 600 "$summary"
$bin sim --demo --data "$data" --registry-url "http://$http" --rtsp-host "$rtsp" >"$summary" 2>>"$log" &
pids+=($!)
echo "run: setting up the demo exam and waiting for the first recordings (about 20 s)"
# gone NAME PID: fail with the end of the log if the process has exited.
gone() {
  kill -0 "$2" 2>/dev/null && return 0
  echo "run: $1 stopped; the end of $log:" >&2
  tail -n 5 "$log" | grep -v ' msg=ffmpeg ' >&2 || true
  exit 1
}
for _ in $(seq 1 120); do
  [ -s "$summary" ] && break
  gone "nokstream all" "${pids[0]}"
  gone "the simulator" "${pids[1]}"
  sleep 0.5
done
[ -s "$summary" ] || { echo "run: the demo world is not ready after 60 s; see $log" >&2; exit 1; }

link=""
for _ in $(seq 1 60); do
  link=$($bin link --data "$data" --login nark --base "http://$http" \
         "/api/v1/streams/site1/cam1/playlist.m3u8" 2>/dev/null || true)
  [ -n "$link" ] && curl -fsS "$link" >/dev/null 2>&1 && break
  link=""
  sleep 1
done

cat <<MSG

  nokstream is running: a simulated exam site records an exam in progress, with
  two room cameras, and each candidate's webcam (with sound) and screen.

  Play the recording of room camera 1 (link valid 12 h):
      ffplay '$link'
      (or open it in VLC; camera 2 is /api/v1/streams/site1/cam2/…)

$(cat "$summary")

  Web:      http://$http/ui/   API: http://$http/api/v1/…   (see README.md)
  Health:   http://$http/healthz   Metrics, readiness: http://$admin/metrics, http://$admin/readyz
  Publish your own camera: $bin device add site1/<name>   (prints its RTSP URL)
  Logs:     $log
  Ctrl-C stops everything; the recordings and the demo world stay in $data.

MSG
wait "${pids[0]}"
