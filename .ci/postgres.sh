#!/usr/bin/env bash
# Install (Debian's postgresql) and start a PostgreSQL server on 127.0.0.1:5432 for the tests.
set -uo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || exit 1
fi
ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$ver" ] || exit 1
pg_ctlcluster "$ver" main start 2>/dev/null || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
pg_isready -q -h 127.0.0.1 || exit 1
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='sluice'\" | grep -q 1 || psql -qc \"CREATE ROLE sluice LOGIN PASSWORD 'sluice'\"" || exit 1
su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='sluice_test'\" | grep -q 1 || psql -qc \"CREATE DATABASE sluice_test OWNER sluice\"" || exit 1
echo "postgres ready on 127.0.0.1:5432"
