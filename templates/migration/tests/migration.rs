//! Runs the migration through the real dmig host and sandbox against a
//! throwaway database: SQLite always, PostgreSQL and MySQL/MariaDB when
//! DMIG_TEST_POSTGRES_URL / DMIG_TEST_MYSQL_URL are set.

use dmig_host::harness::{TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn users(db: &TestDatabase) {
    db.execute_script(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, email_normalized VARCHAR(255));
         INSERT INTO users (id, email) VALUES (1, ' Ada@Example.COM'), (2, 'grace@example.com'), (3, 'EMILE@example.com ');
         INSERT INTO users (id, email, email_normalized) VALUES (4, 'X@example.com', 'kept@example.com')",
    )
    .unwrap();
}

fn fills_missing_values_in_batches_and_reverts(db: TestDatabase) {
    users(&db);
    let migration = migration();

    let run = migration.on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.rows, 3);
    assert_eq!(run.record().steps, 2);
    assert_eq!(run.logged("info"), ["3 users to normalize"]);
    assert_eq!(
        db.column::<String>("SELECT email_normalized FROM users ORDER BY id").unwrap(),
        ["ada@example.com", "grace@example.com", "emile@example.com", "kept@example.com"]
    );

    // Applied: running it again does nothing.
    let again = migration.up(&db).unwrap();
    assert!(again.record.is_none());

    migration.down(&db).unwrap();
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM users WHERE email_normalized IS NOT NULL").unwrap(),
        0
    );
}

fn a_bad_batch_size_fails_and_changes_nothing(db: TestDatabase) {
    users(&db);
    let error = migration().on(&db).arg("batch_size", 0).up().unwrap_err();
    assert!(error.to_string().contains("batch_size=0 must be at least 1"), "{error}");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM users WHERE email_normalized IS NULL").unwrap(),
        3
    );
}

dmig_host::test_on_every_database!(
    fills_missing_values_in_batches_and_reverts,
    a_bad_batch_size_fails_and_changes_nothing,
);
