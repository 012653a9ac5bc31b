#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the guest target and
# cargo-generate, then runs every test in the workspace (guests are built
# once, by tests/build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
DMIG_NEED_CARGO_GENERATE=1 scripts/setup.sh
# The template test must render with cargo-generate, not skip it.
if [[ -z "${DMIG_TEST_CARGO_GENERATE:-}" ]]; then
    if cargo generate --version >/dev/null 2>&1; then
        DMIG_TEST_CARGO_GENERATE=cargo   # `cargo generate`
    else
        DMIG_TEST_CARGO_GENERATE="$PWD/target/tools/bin/cargo-generate"
    fi
    export DMIG_TEST_CARGO_GENERATE
fi
cargo test --workspace --locked "$@"
