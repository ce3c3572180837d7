#!/bin/sh
# Creates the files compose.yaml reads as secrets, once. Keep ./secrets out
# of version control and back up seal.ed25519: bundles are verified against it.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
[ -s secrets/pg_password ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > secrets/pg_password
[ -s secrets/minio_secret ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > secrets/minio_secret
[ -s secrets/db_url ] || printf 'postgres://nokstream:%s@postgres:5432/nokstream?sslmode=disable' "$(cat secrets/pg_password)" > secrets/db_url
# Each service its own database role, made by the migrate service
# (`nokstream migrate --runtime-role --archiver-role`): the registry's rows
# only, and the archiver's schema only. The owner's URL (db_url) is for
# migrate and the node registration alone.
[ -s secrets/app_password ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > secrets/app_password
[ -s secrets/archiver_password ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > secrets/archiver_password
[ -s secrets/db_url_registry ] || printf 'postgres://nokstream_app:%s@postgres:5432/nokstream?sslmode=disable' "$(cat secrets/app_password)" > secrets/db_url_registry
[ -s secrets/db_url_archiver ] || printf 'postgres://nokstream_archiver:%s@postgres:5432/nokstream?sslmode=disable' "$(cat secrets/archiver_password)" > secrets/db_url_archiver
[ -s secrets/seal.ed25519 ] || openssl genpkey -algorithm ed25519 -out secrets/seal.ed25519
[ -s secrets/signing.key ] || head -c 32 /dev/urandom > secrets/signing.key
[ -s secrets/secrets.key ] || head -c 32 /dev/urandom > secrets/secrets.key
# The ingest nodes' tokens, registered by the compose service "nodes"
# (`nokstream node add NAME --token-file`): nkn.<node>.<256 random bits>.
for n in ingest-1 ingest-2; do
  [ -s "secrets/node_$n" ] || printf 'nkn.%s.%s\n' "$n" "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" > "secrets/node_$n"
done
# The containers run as uid 10001.
chmod 0444 secrets/*
echo "secrets in $(pwd)/secrets"
