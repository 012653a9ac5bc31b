"""Comparator (d) on PostgreSQL: the `backfill-user-slugs` example as the
plain Python program a user would write instead, on psycopg 3.

The same work as the example through dmig-host and as `native-backfill`:
keyset batches by id, one transaction per batch, the progress count in the
first transaction, one `executemany` of the UPDATE per batch, and the verify
query in the last batch's transaction. It keeps no ledger. psycopg's
`executemany` sends a batch's statements in pipeline mode (libpq 14 or
later): one round trip per batch, not one per row.

    python backfill_postgres.py --database postgres://user@host/db [--batch-size 500]

Prints `rows=N steps=N` on success; exits 1 with `error: ...` otherwise.
"""

import argparse
import sys

import psycopg

from slugs import slug_for

COUNT_MISSING = "SELECT count(*) AS n FROM users WHERE slug IS NULL"
SELECT_BATCH = "SELECT id, name FROM users WHERE id > %s AND slug IS NULL ORDER BY id LIMIT %s"
UPDATE_ONE = "UPDATE users SET slug = %s WHERE id = %s"
VERIFY = (
    "SELECT (SELECT count(*) FROM users WHERE slug IS NULL) AS missing, "
    "(SELECT count(*) - count(DISTINCT slug) FROM users) AS duplicates"
)


class VerifyFailed(Exception):
    pass


def backfill(conn: psycopg.Connection, batch_size: int) -> tuple[int, int]:
    after = -(2**63)
    rows = steps = 0
    with conn.cursor() as cur:
        while True:
            # One transaction per batch: BEGIN here, COMMIT at the end of the
            # block (ROLLBACK if it raises).
            with conn.transaction():
                if steps == 0:
                    (missing,) = cur.execute(COUNT_MISSING).fetchone()
                    print(f"{missing} users have no slug; batches of {batch_size}", file=sys.stderr)
                batch = cur.execute(SELECT_BATCH, (after, batch_size)).fetchall()
                cur.executemany(UPDATE_ONE, [(slug_for(name, id_), id_) for id_, name in batch])
                if batch:
                    after = batch[-1][0]
                rows += len(batch)
                steps += 1
                last = len(batch) < batch_size
                if last:
                    missing, duplicates = cur.execute(VERIFY).fetchone()
                    if missing or duplicates:
                        raise VerifyFailed(
                            f"verify failed: {missing} users still have no slug "
                            f"and {duplicates} slugs are duplicated"
                        )
            if last:
                return rows, steps


def main() -> int:
    parser = argparse.ArgumentParser(description="Backfill users.slug (the benchmark's Python comparator).")
    parser.add_argument("--database", required=True, help="postgres://...")
    parser.add_argument("--batch-size", type=int, default=500, help="rows per batch")
    args = parser.parse_args()
    if args.batch_size < 1:
        print(f"error: --batch-size {args.batch_size} must be at least 1", file=sys.stderr)
        return 1
    if not args.database.startswith(("postgres://", "postgresql://")):
        print(f"error: unsupported database URL {args.database!r}: use postgres://...", file=sys.stderr)
        return 1
    try:
        # autocommit: no implicit transaction; conn.transaction() makes each.
        with psycopg.connect(args.database, autocommit=True) as conn:
            rows, steps = backfill(conn, args.batch_size)
    except (psycopg.Error, VerifyFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"rows={rows} steps={steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
