#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build the backfill-user-slugs
# example for wasm32-wasip2, seed an embedded SQLite database with users, run
# the migration with dmig-host, and show what changed and what the ledger says.
set -euo pipefail
cd "$(dirname "$0")/.."
DMIG_NEED_SQLITE3=1 scripts/setup.sh

echo "==> building the example migration for wasm32-wasip2"
cargo build --release --target wasm32-wasip2 --manifest-path examples/backfill-user-slugs/Cargo.toml
wasm=target/wasm32-wasip2/release/backfill_user_slugs.wasm

echo "==> building dmig-host"
cargo build -p dmig-host
dmig=target/debug/dmig-host

db=target/demo/app.db
rm -rf target/demo && mkdir -p target/demo
sqlite3 "$db" <<'SQL'
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, slug TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO users (id, name, slug)
SELECT i,
       CASE i % 4 WHEN 0 THEN 'Ada Lovelace' WHEN 1 THEN 'Grace Hopper'
                  WHEN 2 THEN 'Émile Zola' ELSE 'O''Brien & Sons' END,
       CASE WHEN i % 10 = 0 THEN 'hand-set-' || i END
FROM n;
SQL

show() {
    sqlite3 -header -column "$db" \
        "SELECT id, name, slug FROM users WHERE id IN (1, 2, 3, 10, 1999, 2000) ORDER BY id;"
    sqlite3 "$db" "SELECT count(*) || ' users, ' || count(slug) || ' with a slug' FROM users;"
}

echo; echo "==> before: $db"; show
echo; echo "==> $dmig run $wasm --database sqlite://$db"
"$dmig" run "$wasm" --database "sqlite://$db"
echo; echo "==> after"; show
echo; echo "==> $dmig status --database sqlite://$db"
"$dmig" status --database "sqlite://$db"
echo; echo "==> running it again is a no-op"
"$dmig" run "$wasm" --database "sqlite://$db"
