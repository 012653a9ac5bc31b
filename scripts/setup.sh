#!/usr/bin/env bash
# Installs what building and testing dmig needs on a fresh machine: the
# wasm32-wasip2 target for guests, and the sqlite3 shell the demo uses to
# show its data. Safe to run again.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: installing the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

if [[ "${DMIG_NEED_SQLITE3:-0}" == 1 ]] && ! command -v sqlite3 >/dev/null; then
    echo "setup: installing the sqlite3 shell" >&2
    if [[ $(id -u) == 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq sqlite3 >/dev/null
fi
