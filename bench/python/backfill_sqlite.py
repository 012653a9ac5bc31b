"""Comparator (d) on SQLite: the `backfill-user-slugs` example as the plain
Python program a user would write instead, on the standard library's sqlite3.

The same work as the example through dmig-host and as `native-backfill`:
keyset batches by id, one transaction per batch begun with BEGIN IMMEDIATE
(as dmig-host begins it), the progress count in the first transaction, one
`executemany` of the UPDATE per batch, and the verify query in the last
batch's transaction. It keeps no ledger.

    python backfill_sqlite.py --database sqlite:///path/app.db [--batch-size 500]

Prints `rows=N steps=N` on success; exits 1 with `error: ...` otherwise.
"""

import argparse
import sqlite3
import sys
import urllib.parse

from slugs import slug_for

COUNT_MISSING = "SELECT count(*) AS n FROM users WHERE slug IS NULL"
SELECT_BATCH = "SELECT id, name FROM users WHERE id > ? AND slug IS NULL ORDER BY id LIMIT ?"
UPDATE_ONE = "UPDATE users SET slug = ? WHERE id = ?"
VERIFY = (
    "SELECT (SELECT count(*) FROM users WHERE slug IS NULL) AS missing, "
    "(SELECT count(*) - count(DISTINCT slug) FROM users) AS duplicates"
)


def path_of(url: str) -> str:
    """The file of a `sqlite://path` or `sqlite:path` URL (no query string)."""
    if not url.startswith("sqlite:"):
        raise SystemExit(f"error: unsupported database URL {url!r}: use sqlite://...")
    path = url[len("sqlite:"):]
    if path.startswith("//"):
        path = path[2:]
    return path.split("?", 1)[0]


def backfill(conn: sqlite3.Connection, batch_size: int) -> tuple[int, int]:
    after = -(2**63)
    rows = steps = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if steps == 0:
                (missing,) = conn.execute(COUNT_MISSING).fetchone()
                print(f"{missing} users have no slug; batches of {batch_size}", file=sys.stderr)
            batch = conn.execute(SELECT_BATCH, (after, batch_size)).fetchall()
            conn.executemany(UPDATE_ONE, [(slug_for(name, id_), id_) for id_, name in batch])
            if batch:
                after = batch[-1][0]
            rows += len(batch)
            steps += 1
            last = len(batch) < batch_size
            if last:
                missing, duplicates = conn.execute(VERIFY).fetchone()
                if missing or duplicates:
                    raise RuntimeError(
                        f"verify failed: {missing} users still have no slug "
                        f"and {duplicates} slugs are duplicated"
                    )
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        if last:
            return rows, steps


def main() -> int:
    parser = argparse.ArgumentParser(description="Backfill users.slug (the benchmark's Python comparator).")
    parser.add_argument("--database", required=True, help="sqlite://...")
    parser.add_argument("--batch-size", type=int, default=500, help="rows per batch")
    args = parser.parse_args()
    if args.batch_size < 1:
        print(f"error: --batch-size {args.batch_size} must be at least 1", file=sys.stderr)
        return 1
    try:
        # isolation_level=None: no implicit transactions, the program begins
        # and commits its own; a 5 s busy timeout, as dmig-host has.
        # mode=rw: an existing database only, never a new empty file.
        uri = "file:" + urllib.parse.quote(path_of(args.database)) + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
        try:
            rows, steps = backfill(conn, args.batch_size)
        finally:
            conn.close()
    except (sqlite3.Error, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"rows={rows} steps={steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
