//! split-metadata-json through the real host: SQLite always, PostgreSQL and
//! MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use dmig_host::db::Dialect;
use dmig_host::harness::{TestDatabase, TestMigration};
use serde_json::{Value, json};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn schema(db: &TestDatabase) {
    let json_type = match db.dialect() {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "JSONB",
        Dialect::Mysql => "JSON",
    };
    db.execute_script(&format!(
        "CREATE TABLE products (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, metadata {json_type},
           color VARCHAR(30), size VARCHAR(10), weight_grams BIGINT);
         INSERT INTO products (id, name, metadata) VALUES
           (1, 'Shirt', '{{\"color\": \"red\", \"size\": \"M\", \"weight_grams\": 180, \"care\": \"wash cold\"}}'),
           (2, 'Mug', '{{\"color\": \"white\", \"weight_grams\": 350}}'),
           (3, 'Poster', '{{\"size\": \"A2\", \"weight_grams\": \"light\"}}'),
           (4, 'Gift card', NULL),
           (5, 'Sticker', '{{\"tags\": [\"fun\"]}}'),
           (6, 'Odd', '[1, 2]')"
    ))
    .unwrap();
}

type Product = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A product with its metadata parsed.
type Parsed = (
    i64,
    Option<Value>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn products(db: &TestDatabase) -> Vec<Parsed> {
    db.rows::<Product>("SELECT id, metadata, color, size, weight_grams FROM products ORDER BY id")
        .unwrap()
        .into_iter()
        .map(|(id, m, c, s, w)| (id, m.map(|m| serde_json::from_str(&m).unwrap()), c, s, w))
        .collect()
}

fn moves_fields_into_columns_and_back(db: TestDatabase) {
    schema(&db);
    let before = products(&db);
    let migration = migration();
    let run = migration.on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.rows, 3);
    let s = |t: &str| Some(t.to_owned());
    assert_eq!(
        products(&db),
        [
            (
                1,
                Some(json!({"care": "wash cold"})),
                s("red"),
                s("M"),
                Some(180)
            ),
            (2, Some(json!({})), s("white"), None, Some(350)),
            (
                3,
                Some(json!({"weight_grams": "light"})),
                None,
                s("A2"),
                None
            ),
            (4, None, None, None, None),
            (5, Some(json!({"tags": ["fun"]})), None, None, None),
            (6, Some(json!([1, 2])), None, None, None),
        ]
    );
    assert_eq!(
        run.logged("warn"),
        [
            "product 3: weight_grams \"light\" is not an integer; left in metadata",
            "product 6: metadata is not a JSON object; left as it is",
        ]
    );

    // A rerun finds nothing left to move.
    let again = migration.on(&db).force().up().unwrap();
    assert_eq!(again.outcome.rows, 0);

    migration.on(&db).arg("batch_size", 2).down().unwrap();
    assert_eq!(products(&db), before);
}

dmig_host::test_on_every_database!(moves_fields_into_columns_and_back);
