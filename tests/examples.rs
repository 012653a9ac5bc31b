//! The examples through the real `dmig-host` command line (their own tests
//! in `examples/*/tests/` run them in process through the harness, on every
//! database): the flags an operator uses (`--input`, `--arg`, `down`) and the
//! exit codes they see.

use dmig_tests::{Db, TestDir, dmig, guests};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

fn sqlite(dir: &TestDir, schema: &str) -> (String, Db) {
    let url = dir.sqlite_url("app.db");
    let mut db = Db::open(&url);
    db.exec(schema);
    (url, db)
}

#[test]
fn migrate_posts_to_articles_runs_and_reverts() {
    let dir = TestDir::new("posts-cli");
    let (url, mut db) = sqlite(
        &dir,
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, status TEXT);
         CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL);
         CREATE TABLE post_tags (post_id INTEGER NOT NULL, tag_id INTEGER NOT NULL);
         CREATE TABLE articles (id INTEGER PRIMARY KEY, legacy_post_id INTEGER UNIQUE, title TEXT NOT NULL, body TEXT, status TEXT NOT NULL);
         CREATE TABLE article_comments (id INTEGER PRIMARY KEY, article_id INTEGER NOT NULL, legacy_comment_id INTEGER UNIQUE, author TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL);
         CREATE TABLE article_tags (article_id INTEGER NOT NULL, tag_id INTEGER NOT NULL);
         INSERT INTO posts (id, title, status) VALUES (1, 'a', 'published'), (2, 'b', 'weird');
         INSERT INTO comments VALUES (5, 1, 'ada', 'hi', '2026-01-01');
         INSERT INTO post_tags VALUES (2, 9)",
    );
    let path = guests::MIGRATE_POSTS_TO_ARTICLES;
    let run = dmig(DMIG, dir.path(), &["run", path, "-D", &url, "-v"]).expect_code(0);
    assert!(
        run.stderr
            .contains("post 2 has status Some(\"weird\"), migrated as draft"),
        "{}",
        run.stderr
    );
    let statuses: Vec<(String,)> = db.rows("SELECT status FROM articles ORDER BY legacy_post_id");
    assert_eq!(statuses, [("live".to_owned(),), ("draft".to_owned(),)]);
    dmig(DMIG, dir.path(), &["down", path, "-D", &url]).expect_code(0);
    let left: Vec<(i64,)> = db.rows("SELECT count(*) FROM articles");
    assert_eq!(left, [(0,)]);
}

#[test]
fn import_legacy_users_reads_its_granted_input() {
    let dir = TestDir::new("import-cli");
    let (url, mut db) = sqlite(
        &dir,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, legacy_id INTEGER UNIQUE, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
         CREATE TABLE profiles (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL UNIQUE, display_name TEXT NOT NULL, phone TEXT);
         CREATE TABLE legacy_import_errors (line INTEGER PRIMARY KEY, reason TEXT NOT NULL, content TEXT NOT NULL)",
    );
    let csv = dir.write(
        "export.csv",
        b"legacy_id,email,name\n1,ADA@example.com,Ada\nx,bad@example.com,Bad\n",
    );
    let path = guests::IMPORT_LEGACY_USERS;
    // Without the grant: the guest's error says how to grant it.
    let run = dmig(DMIG, dir.path(), &["run", path, "-D", &url]).expect_code(1);
    assert!(
        run.stderr
            .contains("grant it with dmig-host run --input users.csv=PATH"),
        "{}",
        run.stderr
    );
    let grant = format!("users.csv={}", csv.display());
    dmig(
        DMIG,
        dir.path(),
        &["run", path, "-D", &url, "--input", &grant, "--restart"],
    )
    .expect_code(0);
    let users: Vec<(i64, String)> = db.rows("SELECT legacy_id, email FROM users");
    assert_eq!(users, [(1, "ada@example.com".to_owned())]);
    let errors: Vec<(i64,)> = db.rows("SELECT line FROM legacy_import_errors");
    assert_eq!(errors, [(3,)]);
}

#[test]
fn normalize_email_addresses_cannot_be_reverted() {
    let dir = TestDir::new("normalize-cli");
    let (url, mut db) = sqlite(
        &dir,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
         INSERT INTO users VALUES (1, ' A@X.org'), (2, 'a@x.org ')",
    );
    let path = guests::NORMALIZE_EMAIL_ADDRESSES;
    let run = dmig(DMIG, dir.path(), &["run", path, "-D", &url, "-v"]).expect_code(0);
    assert!(
        run.stderr
            .contains("user 2 keeps \"a@x.org \": a@x.org belongs to user 1"),
        "{}",
        run.stderr
    );
    let run = dmig(DMIG, dir.path(), &["down", path, "-D", &url]).expect_code(4);
    assert!(run.stderr.contains("is not reversible"), "{}", run.stderr);
    let emails: Vec<(String,)> = db.rows("SELECT email FROM users ORDER BY id");
    assert_eq!(emails, [("a@x.org".to_owned(),), ("a@x.org ".to_owned(),)]);
}

#[test]
fn archive_old_orders_takes_its_cutoff_as_an_argument() {
    let dir = TestDir::new("archive-cli");
    let (url, mut db) = sqlite(
        &dir,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL, total_cents INTEGER NOT NULL, created_at TEXT NOT NULL);
         CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, price_cents INTEGER);
         CREATE TABLE archived_orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL, total_cents INTEGER NOT NULL, created_at TEXT NOT NULL, items TEXT NOT NULL);
         INSERT INTO orders VALUES (1, 1, 'shipped', 100, '2020-01-01'), (2, 1, 'open', 200, '2030-01-01');
         INSERT INTO order_items VALUES (10, 1, 'X', 1, 100)",
    );
    let path = guests::ARCHIVE_OLD_ORDERS;
    let before = db.user_data();
    let run = dmig(DMIG, dir.path(), &["run", path, "-D", &url]).expect_code(1);
    assert!(
        run.stderr.contains("argument before is required"),
        "{}",
        run.stderr
    );
    assert_eq!(db.user_data(), before);
    dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            path,
            "-D",
            &url,
            "--arg",
            "before=2025-01-01",
            "--restart",
        ],
    )
    .expect_code(0);
    let archived: Vec<(i64,)> = db.rows("SELECT id FROM archived_orders");
    assert_eq!(archived, [(1,)]);
    dmig(DMIG, dir.path(), &["down", path, "-D", &url]).expect_code(0);
    assert_eq!(db.user_data(), before);
}

#[test]
fn split_metadata_json_round_trips() {
    let dir = TestDir::new("split-cli");
    let (url, mut db) = sqlite(
        &dir,
        "CREATE TABLE products (id INTEGER PRIMARY KEY, metadata TEXT, color TEXT, size TEXT, weight_grams INTEGER);
         INSERT INTO products (id, metadata) VALUES (1, '{\"color\":\"red\",\"weight_grams\":5}')",
    );
    let path = guests::SPLIT_METADATA_JSON;
    dmig(DMIG, dir.path(), &["run", path, "-D", &url]).expect_code(0);
    let row: Vec<(String, String, i64)> =
        db.rows("SELECT metadata, color, weight_grams FROM products");
    assert_eq!(row, [("{}".to_owned(), "red".to_owned(), 5)]);
    dmig(DMIG, dir.path(), &["down", path, "-D", &url]).expect_code(0);
    let row: Vec<(String,)> = db.rows("SELECT metadata FROM products WHERE color IS NULL");
    assert_eq!(
        row,
        [("{\"color\":\"red\",\"weight_grams\":5}".to_owned(),)]
    );
}
