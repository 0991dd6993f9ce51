#!/usr/bin/env bash
# The whole test suite: installs what it needs (tools/setup.sh), then every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# Not --all-targets: benchmarks (harness = false) would run as tests. Clippy still builds them.
exec cargo test --workspace "$@"
