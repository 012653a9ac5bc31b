//! import-legacy-users through the real host: SQLite always, PostgreSQL and
//! MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use std::path::PathBuf;

use dmig_host::harness::{HarnessError, TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn schema(db: &TestDatabase) {
    let id = db.auto_id();
    db.execute_script(&format!(
        "CREATE TABLE users (id {id}, legacy_id BIGINT UNIQUE, email VARCHAR(255) NOT NULL UNIQUE, name VARCHAR(200) NOT NULL);
         CREATE TABLE profiles (id {id}, user_id BIGINT NOT NULL UNIQUE, display_name VARCHAR(200) NOT NULL, phone VARCHAR(50));
         CREATE TABLE legacy_import_errors (line BIGINT PRIMARY KEY, reason VARCHAR(500) NOT NULL, content TEXT NOT NULL);
         INSERT INTO users (email, name) VALUES ('taken@example.com', 'Already Here')"
    ))
    .unwrap();
}

/// A CSV file in a temporary directory (kept alive by the returned guard).
fn csv(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.csv");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const EXPORT: &str = "\
legacy_id,email,name,phone
101, Ada@Example.COM ,Ada Lovelace,+44 1
102,grace@example.com,Grace Hopper,
oops,x@example.com,Bad Id,
104,not-an-email,No Address,
105,quoted@example.com,\"Lovelace, Ada\",
106,TAKEN@example.com,Collides With Existing,
107,ada@example.com,Same Email As 101,
108,emile@example.com,Émile Zola,+33 2
109,too,many,fields,here
110,last@example.com,Last One,
";

/// (legacy_id, email, name, display_name, phone) of every imported user.
fn imported(db: &TestDatabase) -> Vec<(i64, String, String, String, Option<String>)> {
    db.rows(
        "SELECT u.legacy_id, u.email, u.name, p.display_name, p.phone FROM users u \
         JOIN profiles p ON p.user_id = u.id WHERE u.legacy_id IS NOT NULL ORDER BY u.legacy_id",
    )
    .unwrap()
}

fn errors(db: &TestDatabase) -> Vec<(i64, String)> {
    db.rows("SELECT line, reason FROM legacy_import_errors ORDER BY line")
        .unwrap()
}

fn imports_valid_rows_and_records_malformed_ones(db: TestDatabase) {
    schema(&db);
    let (_dir, file) = csv(EXPORT);
    let run = migration()
        .on(&db)
        .input("users.csv", &file)
        .arg("batch_size", 3)
        .up()
        .unwrap();
    assert_eq!(run.outcome.rows, 10);
    assert_eq!(run.record().steps, 4);

    let s = |t: &str| t.to_owned();
    assert_eq!(
        imported(&db),
        [
            (
                101,
                s("ada@example.com"),
                s("Ada Lovelace"),
                s("Ada Lovelace"),
                Some(s("+44 1"))
            ),
            (
                102,
                s("grace@example.com"),
                s("Grace Hopper"),
                s("Grace Hopper"),
                None
            ),
            (
                105,
                s("quoted@example.com"),
                s("Lovelace, Ada"),
                s("Lovelace, Ada"),
                None
            ),
            (
                108,
                s("emile@example.com"),
                s("Émile Zola"),
                s("Émile Zola"),
                Some(s("+33 2"))
            ),
            (
                110,
                s("last@example.com"),
                s("Last One"),
                s("Last One"),
                None
            ),
        ]
    );
    let expected = [
        (4, s("legacy_id \"oops\" is not an integer")),
        (5, s("email \"not-an-email\" is not an address")),
        (
            7,
            s("email taken@example.com already belongs to another user"),
        ),
        (
            8,
            s("email ada@example.com already belongs to legacy user 101"),
        ),
        (10, s("expected 4 fields, found 5")),
    ];
    assert_eq!(errors(&db), expected);
    let warnings: Vec<String> = expected
        .iter()
        .map(|(line, reason)| format!("users.csv line {line}: {reason}"))
        .collect();
    assert_eq!(run.logged("warn"), warnings);
    assert_eq!(
        run.logged("info"),
        [
            "users.csv has 10 records",
            "import finished: 5 legacy users imported; 5 malformed rows listed in legacy_import_errors"
        ]
    );
    assert_eq!(
        db.column::<String>("SELECT content FROM legacy_import_errors WHERE line = 10")
            .unwrap(),
        ["109,too,many,fields,here"]
    );
}

fn a_rerun_imports_nothing_twice(db: TestDatabase) {
    schema(&db);
    let (_dir, file) = csv(EXPORT);
    let migration = migration();
    migration.on(&db).input("users.csv", &file).up().unwrap();
    let (users, errs) = (imported(&db), errors(&db));

    let again = migration
        .on(&db)
        .input("users.csv", &file)
        .force()
        .up()
        .unwrap();
    assert_eq!(imported(&db), users);
    assert_eq!(errors(&db), errs);
    assert!(again.logged("warn").is_empty(), "{:?}", again.logs);

    // A longer export: only the new row comes in.
    let (_dir2, longer) = csv(&format!("{EXPORT}111,new@example.com,Newcomer,\n"));
    migration
        .on(&db)
        .input("users.csv", &longer)
        .force()
        .up()
        .unwrap();
    assert_eq!(imported(&db).len(), users.len() + 1);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM profiles").unwrap(),
        users.len() as i64 + 1
    );
}

fn without_the_input_the_run_fails_and_writes_nothing(db: TestDatabase) {
    schema(&db);
    let Err(HarnessError::Run { error, .. }) = migration().up(&db) else {
        panic!("the run should fail without its input");
    };
    assert!(
        error
            .to_string()
            .contains("grant it with dmig-host run --input users.csv=PATH"),
        "{error}"
    );
    assert!(imported(&db).is_empty());
    assert!(errors(&db).is_empty());
}

fn a_file_without_the_needed_columns_is_refused(db: TestDatabase) {
    schema(&db);
    let (_dir, file) = csv("id,mail\n1,a@b.org\n");
    let Err(HarnessError::Run { error, .. }) = migration().on(&db).input("users.csv", &file).up()
    else {
        panic!("the run should fail");
    };
    assert!(
        error
            .to_string()
            .contains("users.csv has no legacy_id column (its header is: id,mail)"),
        "{error}"
    );
    assert!(imported(&db).is_empty());
}

fn down_removes_the_import(db: TestDatabase) {
    schema(&db);
    let (_dir, file) = csv(EXPORT);
    let migration = migration();
    migration.on(&db).input("users.csv", &file).up().unwrap();
    migration.on(&db).arg("batch_size", 2).down().unwrap();
    assert!(imported(&db).is_empty());
    assert!(errors(&db).is_empty());
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM profiles").unwrap(),
        0
    );
    assert_eq!(
        db.column::<String>("SELECT email FROM users").unwrap(),
        ["taken@example.com"]
    );
}

dmig_host::test_on_every_database!(
    imports_valid_rows_and_records_malformed_ones,
    a_rerun_imports_nothing_twice,
    without_the_input_the_run_fails_and_writes_nothing,
    a_file_without_the_needed_columns_is_refused,
    down_removes_the_import,
);
