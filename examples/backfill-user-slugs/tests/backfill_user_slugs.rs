//! backfill-user-slugs through the real host: SQLite always, PostgreSQL and
//! MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use dmig_host::harness::{HarnessError, TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn users(db: &TestDatabase) {
    db.execute_script(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, slug VARCHAR(120));
         INSERT INTO users (id, name, slug) VALUES
           (1, 'Ada Lovelace', NULL), (2, 'Ada Lovelace', NULL), (3, 'Émile Zola', NULL),
           (4, 'O''Brien & Sons', NULL), (5, '!!!', NULL), (6, 'Grace Hopper', 'hand-set'),
           (7, 'Ada Lovelace', NULL)",
    )
    .unwrap();
}

fn slugs(db: &TestDatabase) -> Vec<(i64, Option<String>)> {
    db.rows("SELECT id, slug FROM users ORDER BY id").unwrap()
}

fn slugs_are_unique_even_for_equal_names(db: TestDatabase) {
    users(&db);
    let migration = migration();
    let run = migration.on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.rows, 6);
    // Three full batches, then an empty one that finds nothing left.
    assert_eq!(run.record().steps, 4);
    assert_eq!(run.logged("info"), ["6 users have no slug; batches of 2"]);
    let s = |t: &str| Some(t.to_owned());
    assert_eq!(
        slugs(&db),
        [
            (1, s("ada-lovelace-1")),
            (2, s("ada-lovelace-2")),
            (3, s("emile-zola-3")),
            (4, s("o-brien-sons-4")),
            (5, s("user-5")),
            (6, s("hand-set")),
            (7, s("ada-lovelace-7")),
        ]
    );
    assert!(
        migration.up(&db).unwrap().record.is_none(),
        "applied: no-op"
    );

    migration.down(&db).unwrap();
    assert_eq!(
        slugs(&db)
            .into_iter()
            .filter(|(_, s)| s.is_some())
            .collect::<Vec<_>>(),
        [(6, s("hand-set"))]
    );
}

fn an_interrupted_run_resumes_where_it_stopped(db: TestDatabase) {
    users(&db);
    let migration = migration();
    let Err(HarnessError::Run { error, .. }) =
        migration.on(&db).arg("batch_size", 2).max_steps(1).up()
    else {
        panic!("max_steps should interrupt the run");
    };
    assert!(
        matches!(*error, dmig_host::Error::Interrupted { .. }),
        "{error}"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM users WHERE slug IS NULL")
            .unwrap(),
        4
    );
    let run = migration.on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.resumed_from.as_deref(), Some("2"));
    assert_eq!(run.outcome.rows, 4);
}

/// The per-row variant (kept for the benchmark's comparison) writes exactly
/// what the default bulk writes do.
fn per_row_writes_match_bulk_writes(db: TestDatabase) {
    users(&db);
    let migration = migration();
    migration.on(&db).arg("batch_size", 3).up().unwrap();
    let bulk = slugs(&db);
    db.execute_script("UPDATE users SET slug = NULL WHERE id <> 6")
        .unwrap();
    let run = migration
        .on(&db)
        .arg("batch_size", 3)
        .arg("writes", "per-row")
        .force()
        .up()
        .unwrap();
    assert_eq!(run.outcome.rows, 6);
    assert_eq!(slugs(&db), bulk);
    let Err(HarnessError::Run { error, .. }) =
        migration.on(&db).arg("writes", "sometimes").force().up()
    else {
        panic!("an unknown way to write should fail");
    };
    assert!(
        error.to_string().contains(
            "--arg writes=sometimes is not a way to write: use bulk (the default) or per-row"
        ),
        "{error}"
    );
}

dmig_host::test_on_every_database!(
    slugs_are_unique_even_for_equal_names,
    an_interrupted_run_resumes_where_it_stopped,
    per_row_writes_match_bulk_writes,
);
