#!/usr/bin/env bash
# Installs what the tests need beside the Rust toolchain, idempotently:
#   - .venv: the pinned emulator (moto[server]) and cfn-lint from tools/emulator/requirements.txt
#   - Postgres answering on 127.0.0.1:5432 (started with the distribution's tools if installed
#     but stopped), with the `test` database the tests clone their databases from.
set -euo pipefail
cd "$(dirname "$0")/.."

req=tools/emulator/requirements.txt
stamp=.venv/.requirements
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "setup: creating .venv from $req"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_ready; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    echo "setup: starting Postgres $version cluster main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  fi
fi
if ! pg_ready; then
  echo "setup: Postgres is not answering on 127.0.0.1:5432 (set BYOC_TEST_DATABASE_URL to use another)" >&2
  [ -n "${BYOC_TEST_DATABASE_URL:-}" ] || exit 1
fi
