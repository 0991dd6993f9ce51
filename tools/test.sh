#!/usr/bin/env bash
# The whole test suite: installs what it needs (tools/setup.sh), then every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# The emulator's own departures from moto, against boto3 (about 10 s).
.venv/bin/python tools/emulator/test_emulator.py
# The trust template's checks (cfn-lint, the IAM linters of tools/policy/check.py, its grants
# against byoc's calls under the emulator's IAM enforcement) are cargo tests:
# components/tests/trust_template.rs and trust_policy.rs.
# Not --all-targets: benchmarks (harness = false) would run as tests. Clippy still builds them.
exec cargo test --workspace "$@"
