//! archive-old-orders through the real host: SQLite always, PostgreSQL and
//! MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use dmig_host::db::Dialect;
use dmig_host::harness::{HarnessError, TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn schema(db: &TestDatabase) {
    let ts = match db.dialect() {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "TIMESTAMP",
        Dialect::Mysql => "DATETIME",
    };
    db.execute_script(&format!(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR(20) NOT NULL, total_cents BIGINT NOT NULL, created_at {ts} NOT NULL);
         CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(50) NOT NULL, quantity BIGINT NOT NULL, price_cents BIGINT);
         CREATE TABLE archived_orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR(20) NOT NULL, total_cents BIGINT NOT NULL, created_at {ts} NOT NULL, items TEXT NOT NULL);
         INSERT INTO orders (id, customer_id, status, total_cents, created_at) VALUES
           (1, 10, 'shipped', 1500, '2023-03-01 09:30:00'), (2, 11, 'cancelled', 0, '2023-12-31 23:59:59'),
           (3, 10, 'shipped', 990, '2024-01-01 00:00:00'), (4, 12, 'open', 2500, '2024-06-15 12:00:00'),
           (5, 12, 'shipped', 300, '2022-07-04 08:00:00');
         INSERT INTO order_items (id, order_id, sku, quantity, price_cents) VALUES
           (100, 1, 'BOOK-1', 1, 1000), (101, 1, 'PEN \"blue\"', 5, 100), (102, 3, 'MUG', 1, 990),
           (103, 4, 'LAMP', 1, 2500), (104, 5, 'CARD', 3, NULL)"
    ))
    .unwrap();
}

type Order = (i64, i64, String, i64, String);
type Item = (i64, i64, String, i64, Option<i64>);

fn orders(db: &TestDatabase) -> Vec<Order> {
    db.rows("SELECT id, customer_id, status, total_cents, created_at FROM orders ORDER BY id")
        .unwrap()
}

fn items(db: &TestDatabase) -> Vec<Item> {
    db.rows("SELECT id, order_id, sku, quantity, price_cents FROM order_items ORDER BY id")
        .unwrap()
}

fn moves_old_orders_with_items_and_restores_them_exactly(db: TestDatabase) {
    schema(&db);
    let (all_orders, all_items) = (orders(&db), items(&db));
    let migration = migration();
    let run = migration
        .on(&db)
        .arg("before", "2024-01-01")
        .arg("batch_size", 2)
        .up()
        .unwrap();
    assert_eq!(run.outcome.rows, 3);
    assert_eq!(
        run.logged("info"),
        ["3 orders created before 2024-01-01 to archive"]
    );
    assert_eq!(orders(&db).iter().map(|o| o.0).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(
        items(&db).iter().map(|i| i.0).collect::<Vec<_>>(),
        [102, 103]
    );
    let archived: Vec<(i64, String)> = db
        .rows("SELECT id, items FROM archived_orders ORDER BY id")
        .unwrap();
    assert_eq!(archived.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2, 5]);
    let first: serde_json::Value = serde_json::from_str(&archived[0].1).unwrap();
    assert_eq!(
        first,
        serde_json::json!([
            {"id": 100, "order_id": 1, "sku": "BOOK-1", "quantity": 1, "price_cents": 1000},
            {"id": 101, "order_id": 1, "sku": "PEN \"blue\"", "quantity": 5, "price_cents": 100},
        ])
    );
    assert_eq!(archived[1].1, "[]");

    migration.on(&db).arg("batch_size", 2).down().unwrap();
    assert_eq!(orders(&db), all_orders);
    assert_eq!(items(&db), all_items);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM archived_orders")
            .unwrap(),
        0
    );
}

fn a_forced_rerun_with_a_later_date_moves_only_the_rest(db: TestDatabase) {
    schema(&db);
    let migration = migration();
    migration.on(&db).arg("before", "2024-01-01").up().unwrap();
    let run = migration
        .on(&db)
        .arg("before", "2024-02-01")
        .force()
        .up()
        .unwrap();
    assert_eq!(run.outcome.rows, 1);
    assert_eq!(orders(&db).iter().map(|o| o.0).collect::<Vec<_>>(), [4]);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM archived_orders")
            .unwrap(),
        4
    );
}

fn a_missing_or_bad_date_is_refused_and_changes_nothing(db: TestDatabase) {
    schema(&db);
    let migration = migration();
    for (args, message) in [
        (
            None,
            "argument before is required (pass it with dmig-host run --arg before=VALUE)",
        ),
        (
            Some("last year"),
            "argument before=last year is not a date; write it as YYYY-MM-DD",
        ),
    ] {
        let mut run = migration.on(&db);
        if let Some(value) = args {
            run = run.arg("before", value);
        }
        let Err(HarnessError::Run { error, .. }) = run.up() else {
            panic!("the run should fail");
        };
        assert!(error.to_string().contains(message), "{error}");
        assert_eq!(orders(&db).len(), 5);
        assert_eq!(
            db.scalar::<i64>("SELECT count(*) FROM archived_orders")
                .unwrap(),
            0
        );
    }
}

dmig_host::test_on_every_database!(
    moves_old_orders_with_items_and_restores_them_exactly,
    a_forced_rerun_with_a_later_date_moves_only_the_rest,
    a_missing_or_bad_date_is_refused_and_changes_nothing,
);
