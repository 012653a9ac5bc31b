#!/usr/bin/env bash
# Installs what building and testing dmig needs on a fresh machine: the
# wasm32-wasip2 target for guests, the sqlite3 shell the demo uses to show
# its data, and cargo-generate for the template test. Safe to run again.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: installing the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

# The SQL gate parses PostgreSQL with PostgreSQL's own parser (the pg_query
# crate), whose build generates its bindings with libclang and compiles C.
if ! dpkg -s libclang-dev >/dev/null 2>&1 || ! command -v cc >/dev/null; then
    echo "setup: installing libclang-dev and a C compiler (to build pg_query)" >&2
    if [[ $(id -u) == 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libclang-dev build-essential >/dev/null
fi

if [[ "${DMIG_NEED_SQLITE3:-0}" == 1 ]] && ! command -v sqlite3 >/dev/null; then
    echo "setup: installing the sqlite3 shell" >&2
    if [[ $(id -u) == 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq sqlite3 >/dev/null
fi

# The template test renders templates/migration with cargo-generate too. The
# newest releases need a newer rustc than 1.95; 0.23.7 (with its lock file)
# builds here. An installed `cargo generate` is used as it is; otherwise the
# pinned one goes into target/tools (about 5 minutes, once).
if [[ "${DMIG_NEED_CARGO_GENERATE:-0}" == 1 ]] && ! cargo generate --version >/dev/null 2>&1; then
    tools="$(cd "$(dirname "$0")/.." && pwd)/target/tools"
    if [[ ! -x "$tools/bin/cargo-generate" ]]; then
        echo "setup: installing cargo-generate 0.23.7 into $tools" >&2
        cargo install cargo-generate@0.23.7 --locked --quiet --root "$tools"
    fi
fi
