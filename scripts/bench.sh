#!/usr/bin/env bash
# The performance benchmark (not part of the test suite): builds dmig-host,
# the benchmark's programs and the backfill-user-slugs example in release
# mode, installs the Python programs' pinned packages into a virtual
# environment, then backfills 1,000,000 users on SQLite and PostgreSQL
# through dmig-host, a native sqlx program, a plain Python program and one
# set-based UPDATE, and prints throughput, CPU time, peak memory and start-up
# times as Markdown (also written to target/bench/results.md). See
# docs/PERFORMANCE.md.
#
# Python: python3 (or DMIG_BENCH_PYTHON) makes the virtual environment
# target/bench-venv and pip installs bench/python/requirements.txt into it
# from the package registry; it is made again when that file changes.
#
# PostgreSQL: DMIG_BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); the benchmark creates its own
# databases there and drops them. Options go to dmig-bench (--help lists
# them), e.g. scripts/bench.sh --databases sqlite --rows 200000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "==> building dmig-host and the benchmark (release)" >&2
cargo build --release --locked -p dmig-host -p dmig-bench
echo "==> building the example migration (release, wasm32-wasip2)" >&2
cargo build --release --locked --target wasm32-wasip2 --manifest-path examples/backfill-user-slugs/Cargo.toml

venv=target/bench-venv
requirements=bench/python/requirements.txt
if [[ ! -x $venv/bin/python ]] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "==> installing the Python programs' packages into $venv" >&2
    rm -rf "$venv"
    "${DMIG_BENCH_PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-virtualenv -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

DMIG_BENCH_COMMAND="scripts/bench.sh${*:+ $*}" \
    exec target/release/dmig-bench \
    --dmig-host target/release/dmig-host \
    --artifact target/wasm32-wasip2/release/backfill_user_slugs.wasm \
    --python "$venv/bin/python" \
    --python-programs bench/python \
    "$@"
