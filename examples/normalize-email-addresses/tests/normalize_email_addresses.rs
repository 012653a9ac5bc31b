//! normalize-email-addresses through the real host: SQLite always,
//! PostgreSQL and MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use dmig_host::harness::{HarnessError, TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn users(db: &TestDatabase) {
    // No unique index here: the collisions exist before the migration runs,
    // as they do in data that was never normalized.
    db.execute_script(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL);
         INSERT INTO users (id, email) VALUES
           (1, ' Ada@Example.com'), (2, 'grace@example.com'), (3, 'ADA@example.com '),
           (4, 'Grace@Example.com'), (5, 'emile@example.com'), (6, '  Emile@EXAMPLE.com'),
           (7, 'solo@Example.COM')",
    )
    .unwrap();
}

fn emails(db: &TestDatabase) -> Vec<(i64, String)> {
    db.rows("SELECT id, email FROM users ORDER BY id").unwrap()
}

fn expected() -> Vec<(i64, String)> {
    [
        (1, "ada@example.com"),
        (2, "grace@example.com"),
        (3, "ADA@example.com "),
        (4, "Grace@Example.com"),
        (5, "emile@example.com"),
        (6, "  Emile@EXAMPLE.com"),
        (7, "solo@example.com"),
    ]
    .map(|(i, e)| (i, e.to_owned()))
    .to_vec()
}

fn normalizes_and_lists_collisions(db: TestDatabase) {
    users(&db);
    let run = migration().on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.rows, 2);
    assert_eq!(emails(&db), expected());
    assert_eq!(
        run.logged("warn"),
        [
            "user 3 keeps \"ADA@example.com \": ada@example.com belongs to user 1",
            "user 4 keeps \"Grace@Example.com\": grace@example.com belongs to user 2",
            "user 6 keeps \"  Emile@EXAMPLE.com\": emile@example.com belongs to user 5",
        ]
    );
}

fn the_outcome_does_not_depend_on_the_batch_size(db: TestDatabase) {
    users(&db);
    migration().on(&db).arg("batch_size", 100).up().unwrap();
    assert_eq!(emails(&db), expected());
}

fn a_rerun_changes_nothing(db: TestDatabase) {
    users(&db);
    let migration = migration();
    migration.up(&db).unwrap();
    let again = migration.on(&db).force().up().unwrap();
    assert_eq!(again.outcome.rows, 0);
    assert_eq!(emails(&db), expected());
}

fn down_is_refused(db: TestDatabase) {
    users(&db);
    let migration = migration();
    migration.up(&db).unwrap();
    let Err(HarnessError::Run { error, .. }) = migration.down(&db) else {
        panic!("down should be refused");
    };
    assert!(
        matches!(*error, dmig_host::Error::NotReversible { .. }),
        "{error}"
    );
    assert_eq!(emails(&db), expected());
}

dmig_host::test_on_every_database!(
    normalizes_and_lists_collisions,
    the_outcome_does_not_depend_on_the_batch_size,
    a_rerun_changes_nothing,
    down_is_refused,
);
