#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at MEETPLANE_TEST_POSTGRES_DSN (default
# postgresql://postgres@127.0.0.1:5432/test); start the machine's cluster, or install one.
set -uo pipefail
DSN="${MEETPLANE_TEST_POSTGRES_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
answers() { "${VENV:-.venv}/bin/python" - "$DSN" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except Exception:
    sys.exit(1)
PY
}
answers && exit 0
echo "ensure-postgres: no server answers at $DSN; starting one" >&2
if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -w "$conf" ] && ! grep -q "meetplane-trust" "$conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust # meetplane-trust' "$conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc \"SELECT 1\"" >/dev/null 2>&1 && break
    sleep 1
  done
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test" || true
fi
answers || { echo "ensure-postgres: PostgreSQL still not reachable; PostgreSQL tests will be skipped" >&2; exit 0; }
