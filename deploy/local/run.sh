#!/usr/bin/env bash
# `make run`: a whole nokstream on this machine, with a simulated exam site.
# Starts a private PostgreSQL under DATA/pg, sets up a demo organisation
# (council demo-council → center demo-center → site site1, a qualification),
# registers two room cameras of site1 and a NARK user, runs `nokstream all`
# and `nokstream sim`, and says where to look.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=$(realpath -m "${1:-./var}")
bin=./bin/nokstream
http=${NOKSTREAM_HTTP_ADDR:-127.0.0.1:8080}
rtsp=${NOKSTREAM_RTSP_ADDR:-127.0.0.1:8554}
mkdir -p "$data"
log="$data/nokstream.log"

echo "run: starting PostgreSQL in $data/pg"
# The owner (the cluster's own user) migrates; everything else runs as
# nokstream_app, which owns nothing and cannot rewrite the audit log.
owner_db=$(deploy/local/pg.sh start "$data/pg" "${NOKSTREAM_PG_PORT:-5433}")
$bin migrate --db "$owner_db" --runtime-role nokstream_app
export NOKSTREAM_DB=${owner_db/nokstream@/nokstream_app@}

# The demo organisation: a device needs its site, a site its center, a
# center its council. `org add` on an existing organisation updates it, so
# this is safe on every start.
$bin org add council demo-council --name "Демонстрационный СПК" \
  --commission-member "Иванов Иван Иванович" --commission-member "Петрова Анна Сергеевна" \
  --commission-address "101000, Москва, ул. Мясницкая, д. 1" --commission-email appeals@demo-council.example \
  --commission-phone "+7 495 000-00-00"
$bin qualification add 40.00800.01 --council demo-council --name "Демонстрационная квалификация (3 уровень)" \
  --validity-years 3 --tool "ОС-40.008-01 https://nok.example/os/40.00800.01"
$bin org add center demo-center --council demo-council --name "Демонстрационный ЦОК" \
  --head "Сидоров Сергей Сергеевич" --website https://demo-center.example \
  --legal-address "101000, Москва, ул. Покровка, д. 2" --email info@demo-center.example \
  --phone "+7 495 111-11-11" --qualification 40.00800.01
$bin org add site site1 --center demo-center --name "Демонстрационная ЭП" --address "Москва, ул. Ильинка, д. 3"

urls=()
for cam in cam1 cam2; do
  urls+=(--url "$($bin device add site1/$cam --kind room --host "$rtsp" --rotate)")
done
creds="$data/demo-password"
temp=""
if [ ! -s "$creds" ]; then
  temp=$($bin user add --role nark demo 2>/dev/null || $bin user reset demo 2>/dev/null)
fi

pids=()
stop() {
  echo; echo "run: stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/local/pg.sh stop "$data/pg"
}
trap stop EXIT INT TERM

$bin all --data "$data" --http-addr "$http" --rtsp-addr "$rtsp" >>"$log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://${NOKSTREAM_ADMIN_ADDR:-127.0.0.1:9190}/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
$bin sim "${urls[@]}" >>"$log" 2>&1 &
pids+=($!)

if [ -n "$temp" ]; then
  # First login: the temporary password must be changed before anything works.
  newpw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  token=$(curl -fsS -X POST "http://$http/api/v1/auth/login" -H 'Content-Type: application/json' \
          -d "{\"login\":\"demo\",\"password\":\"$temp\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  curl -fsS -X POST "http://$http/api/v1/auth/password" -H "Authorization: Bearer $token" \
       -H 'Content-Type: application/json' \
       -d "{\"old_password\":\"$temp\",\"new_password\":\"$newpw\"}" >/dev/null
  (umask 077; echo "$newpw" > "$creds")
fi

echo "run: waiting for the first recordings (about 10 s)"
link=""
for _ in $(seq 1 60); do
  link=$($bin link --data "$data" --login demo --base "http://$http" \
         "/api/v1/streams/site1/cam1/playlist.m3u8" 2>/dev/null || true)
  [ -n "$link" ] && curl -fsS "$link" >/dev/null 2>&1 && break
  link=""
  sleep 1
done

cat <<MSG

  nokstream is running: a simulated exam site streams two room cameras.

  Play the recording of camera 1 (link valid 12 h):
      ffplay '$link'
      (or open it in VLC; camera 2 is /api/v1/streams/site1/cam2/…)

  Web:      http://$http/ui/   (staff pages: sign in as demo)
  API:      http://$http/api/v1/…   (see README.md)
  Login:    demo / $(cat "$creds" 2>/dev/null)   (POST /api/v1/auth/login; the password is kept in $creds)
  Metrics:  http://$http/metrics   Health: http://$http/readyz
  Publish your own camera: $bin device add site1/<name>   (prints its RTSP URL)
  Demo organisation: council demo-council → center demo-center → site site1
            (more users: $bin user add --role center --org demo-center <login>)
  Logs:     $log
  Ctrl-C stops everything; the recordings stay in $data.

MSG
wait "${pids[0]}"
