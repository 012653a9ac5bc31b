//! migrate-posts-to-articles through the real host: SQLite always,
//! PostgreSQL and MySQL/MariaDB when DMIG_TEST_*_URL name servers.

use dmig_host::harness::{HarnessError, TestDatabase, TestMigration};

fn migration() -> TestMigration {
    TestMigration::build(env!("CARGO_MANIFEST_DIR")).expect("building the migration")
}

fn schema(db: &TestDatabase) {
    let id = db.auto_id();
    db.execute_script(&format!(
        "CREATE TABLE posts (id BIGINT PRIMARY KEY, title VARCHAR(200) NOT NULL, body TEXT, status VARCHAR(20));
         CREATE TABLE comments (id BIGINT PRIMARY KEY, post_id BIGINT NOT NULL, author VARCHAR(100) NOT NULL, body TEXT NOT NULL, created_at VARCHAR(30) NOT NULL);
         CREATE TABLE tags (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL);
         CREATE TABLE post_tags (post_id BIGINT NOT NULL, tag_id BIGINT NOT NULL, PRIMARY KEY (post_id, tag_id));
         CREATE TABLE articles (id {id}, legacy_post_id BIGINT UNIQUE, title VARCHAR(200) NOT NULL, body TEXT, status VARCHAR(20) NOT NULL);
         CREATE TABLE article_comments (id {id}, article_id BIGINT NOT NULL, legacy_comment_id BIGINT UNIQUE, author VARCHAR(100) NOT NULL, body TEXT NOT NULL, created_at VARCHAR(30) NOT NULL);
         CREATE TABLE article_tags (article_id BIGINT NOT NULL, tag_id BIGINT NOT NULL, PRIMARY KEY (article_id, tag_id));
         INSERT INTO tags (id, name) VALUES (1, 'rust'), (2, 'sql'), (3, 'wasm');
         INSERT INTO posts (id, title, body, status) VALUES
           (1, 'Hello', 'first', 'published'), (2, 'Draft', NULL, 'draft'), (3, 'Old', 'x', 'archived'),
           (4, 'Odd', 'y', 'pending-review'), (5, 'None', 'z', NULL), (7, 'Gap', 'after a gap', 'published');
         INSERT INTO comments (id, post_id, author, body, created_at) VALUES
           (10, 1, 'ada', 'Nice; really', '2026-01-01T10:00:00'), (11, 1, 'grace', 'Agreed', '2026-01-02T10:00:00'),
           (12, 3, 'emile', 'Old news', '2026-01-03T10:00:00'), (13, 7, 'ada', 'Found it', '2026-01-04T10:00:00');
         INSERT INTO post_tags (post_id, tag_id) VALUES (1, 1), (1, 2), (3, 3), (7, 1);
         INSERT INTO articles (title, body, status) VALUES ('Native', 'written after the move', 'live')"
    ))
    .unwrap();
}

/// (legacy post, title, status) of every migrated article.
fn articles(db: &TestDatabase) -> Vec<(i64, String, String)> {
    db.rows("SELECT legacy_post_id, title, status FROM articles WHERE legacy_post_id IS NOT NULL ORDER BY legacy_post_id")
        .unwrap()
}

/// (legacy post, legacy comment, author, body) of every migrated comment.
fn comments(db: &TestDatabase) -> Vec<(i64, i64, String, String)> {
    db.rows(
        "SELECT a.legacy_post_id, c.legacy_comment_id, c.author, c.body FROM article_comments c \
         JOIN articles a ON a.id = c.article_id ORDER BY c.legacy_comment_id",
    )
    .unwrap()
}

/// (legacy post, tag name) of every migrated tag.
fn tags(db: &TestDatabase) -> Vec<(i64, String)> {
    db.rows(
        "SELECT a.legacy_post_id, t.name FROM article_tags x JOIN articles a ON a.id = x.article_id \
         JOIN tags t ON t.id = x.tag_id ORDER BY a.legacy_post_id, t.name",
    )
    .unwrap()
}

fn moves_posts_with_comments_and_tags_and_maps_statuses(db: TestDatabase) {
    schema(&db);
    let migration = migration();
    let run = migration.on(&db).arg("batch_size", 2).up().unwrap();
    assert_eq!(run.outcome.rows, 6);
    // Three full batches, then an empty one that finds nothing left.
    assert_eq!(run.record().steps, 4);
    assert_eq!(
        run.logged("warn"),
        [
            "post 4 has status Some(\"pending-review\"), migrated as draft",
            "post 5 has status None, migrated as draft"
        ]
    );
    let s = |t: &str| t.to_owned();
    assert_eq!(
        articles(&db),
        [
            (1, s("Hello"), s("live")),
            (2, s("Draft"), s("draft")),
            (3, s("Old"), s("archived")),
            (4, s("Odd"), s("draft")),
            (5, s("None"), s("draft")),
            (7, s("Gap"), s("live")),
        ]
    );
    assert_eq!(
        comments(&db),
        [
            (1, 10, s("ada"), s("Nice; really")),
            (1, 11, s("grace"), s("Agreed")),
            (3, 12, s("emile"), s("Old news")),
            (7, 13, s("ada"), s("Found it")),
        ]
    );
    assert_eq!(
        tags(&db),
        [
            (1, s("rust")),
            (1, s("sql")),
            (3, s("wasm")),
            (7, s("rust"))
        ]
    );
    // The native article is untouched.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM articles WHERE legacy_post_id IS NULL")
            .unwrap(),
        1
    );
}

fn a_forced_rerun_copies_only_what_is_new(db: TestDatabase) {
    schema(&db);
    let migration = migration();
    migration.up(&db).unwrap();
    let before = (articles(&db), comments(&db), tags(&db));

    db.execute_script(
        "INSERT INTO posts (id, title, body, status) VALUES (8, 'Late', 'new', 'published');
         INSERT INTO comments (id, post_id, author, body, created_at) VALUES (14, 1, 'late', 'On an old post', '2026-02-01T00:00:00');
         INSERT INTO post_tags (post_id, tag_id) VALUES (8, 2), (2, 1)",
    )
    .unwrap();
    let again = migration.on(&db).force().up().unwrap();
    assert_eq!(again.record().status.to_string(), "succeeded");
    let (a, c, t) = (articles(&db), comments(&db), tags(&db));
    assert_eq!(a.len(), before.0.len() + 1);
    assert_eq!(c.len(), before.1.len() + 1);
    assert_eq!(t.len(), before.2.len() + 2);
    // Nothing twice.
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) - count(DISTINCT legacy_post_id) FROM articles WHERE legacy_post_id IS NOT NULL")
            .unwrap(),
        0
    );
}

fn down_removes_exactly_the_migrated_articles(db: TestDatabase) {
    schema(&db);
    let migration = migration();
    migration.up(&db).unwrap();
    let run = migration.on(&db).arg("batch_size", 4).down().unwrap();
    assert_eq!(run.outcome.rows, 6);
    assert!(articles(&db).is_empty());
    assert!(comments(&db).is_empty());
    assert!(tags(&db).is_empty());
    assert_eq!(
        db.column::<String>("SELECT title FROM articles").unwrap(),
        ["Native"]
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM posts").unwrap(), 6);
}

fn a_failing_step_is_rolled_back_whole_and_resumes(db: TestDatabase) {
    schema(&db);
    // Articles may not be archived (yet): the second batch (posts 3 and 4)
    // fails on post 3, after the first batch committed.
    let id = db.auto_id();
    db.execute_script(&format!(
        "DROP TABLE articles;
         CREATE TABLE articles (id {id}, legacy_post_id BIGINT UNIQUE, title VARCHAR(200) NOT NULL, body TEXT,
           status VARCHAR(20) NOT NULL CHECK (status <> 'archived'))"
    ))
    .unwrap();
    let migration = migration();
    let Err(HarnessError::Run { error, record, .. }) = migration.on(&db).arg("batch_size", 2).up()
    else {
        panic!("the second step should fail");
    };
    assert!(error.to_string().contains("step 2"), "{error}");
    let record = record.unwrap();
    assert_eq!(record.status.to_string(), "failed");
    assert_eq!((record.steps, record.cursor.as_deref()), (1, Some("2")));
    // Posts 1 and 2 are fully copied; nothing of post 3 or 4.
    assert_eq!(
        articles(&db).iter().map(|a| a.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        comments(&db).iter().map(|c| c.1).collect::<Vec<_>>(),
        [10, 11]
    );
    assert_eq!(tags(&db).len(), 2);

    // Once the data is fixed, the next run resumes after post 2.
    db.execute("UPDATE posts SET status = 'draft' WHERE id = 3", &[])
        .unwrap();
    let run = migration.up(&db).unwrap();
    assert_eq!(run.outcome.resumed_from.as_deref(), Some("2"));
    assert_eq!(run.outcome.rows, 4);
    assert_eq!(articles(&db).len(), 6);
    assert_eq!(comments(&db).len(), 4);
}

fn a_bad_batch_size_is_refused(db: TestDatabase) {
    schema(&db);
    match migration().on(&db).arg("batch_size", "lots").up() {
        Err(HarnessError::Run { error, record, .. }) => {
            assert!(
                error
                    .to_string()
                    .contains("argument batch_size=lots is invalid"),
                "{error}"
            );
            assert_eq!(record.unwrap().status.to_string(), "failed");
        }
        other => panic!("expected a failed run, got {other:?}"),
    }
    assert!(articles(&db).is_empty());
}

dmig_host::test_on_every_database!(
    moves_posts_with_comments_and_tags_and_maps_statuses,
    a_forced_rerun_copies_only_what_is_new,
    down_removes_exactly_the_migrated_articles,
    a_failing_step_is_rolled_back_whole_and_resumes,
    a_bad_batch_size_is_refused,
);
