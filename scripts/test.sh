#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the guest target, then
# runs every test in the workspace (guests are built once, by tests/build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked "$@"
