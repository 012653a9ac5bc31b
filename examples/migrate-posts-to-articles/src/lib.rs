//! Copies every post into `articles`, with its comments into
//! `article_comments` and its tags into `article_tags`.
//!
//! Keyset batches of posts by id (`--arg batch_size=N`, default 200): the
//! cursor is the last post id of the batch, and each step handles the posts,
//! comments and tags of the ids in `(previous cursor, cursor]`.
//!
//! Idempotent through legacy ids: an article remembers its post in
//! `articles.legacy_post_id` and a copied comment its original in
//! `article_comments.legacy_comment_id` (both unique), and every insert skips
//! what is already there, so a forced rerun, or a run after new posts
//! arrived, copies only what is missing.
//!
//! Statuses map published → live, draft → draft, archived → archived, and
//! anything else → draft (logged as a warning).
//!
//! `down` deletes the articles that have a `legacy_post_id`, with their
//! comments and tags; articles written natively are left alone.

use std::collections::HashSet;

use dmig_guest::{
    Error, Keyset, Manifest, Migration, Result, Step, args, db, log, params, progress,
};

const DEFAULT_BATCH_SIZE: u64 = 200;

struct MigratePostsToArticles;

impl Migration for MigratePostsToArticles {
    const MANIFEST: Manifest = Manifest::new(
        "migrate-posts-to-articles",
        "Copy posts with their comments and tags into articles, article_comments and article_tags",
    )
    .reversible()
    .reads(&["posts", "comments", "post_tags"])
    .writes(&["articles", "article_comments", "article_tags"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let posts = Keyset::new("posts", "id")
            .columns("id, title, body, status")
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?);
        if cursor.is_none() {
            let total = posts.count()?;
            progress::set_total(total);
            log::info(format!("{total} posts to migrate"));
        }
        let batch = posts.fetch(cursor)?;
        let Some(last) = batch.last_key()? else {
            return batch.step();
        };
        let (low, high) = (
            lower_bound(cursor)?,
            last.parse::<i64>().map_err(Error::msg)?,
        );

        // Articles: one per post not copied before.
        let copied: HashSet<i64> = db::query(
            "SELECT legacy_post_id FROM articles WHERE legacy_post_id > ? AND legacy_post_id <= ?",
            &params![low, high],
        )?
        .iter()
        .map(|row| row.get("legacy_post_id"))
        .collect::<Result<_>>()?;
        let mut new_articles = Vec::new();
        for post in batch.rows() {
            let id: i64 = post.get("id")?;
            if copied.contains(&id) {
                continue;
            }
            let status: Option<String> = post.get("status")?;
            let mapped = map_status(status.as_deref());
            if !matches!(status.as_deref(), Some("published" | "draft" | "archived")) {
                log::warn(format!(
                    "post {id} has status {status:?}, migrated as {mapped}"
                ));
            }
            new_articles.push(params![
                id,
                post.get::<String>("title")?,
                post.get::<Option<String>>("body")?,
                mapped
            ]);
        }
        db::execute_many(
            "INSERT INTO articles (legacy_post_id, title, body, status) VALUES (?, ?, ?, ?)",
            &new_articles,
        )?;

        // Comments and tags of the batch's posts, set-based, skipping what
        // an earlier run copied.
        let comments = db::execute(
            "INSERT INTO article_comments (article_id, legacy_comment_id, author, body, created_at) \
             SELECT a.id, c.id, c.author, c.body, c.created_at \
             FROM comments c JOIN articles a ON a.legacy_post_id = c.post_id \
             WHERE c.post_id > ? AND c.post_id <= ? \
             AND NOT EXISTS (SELECT 1 FROM article_comments x WHERE x.legacy_comment_id = c.id)",
            &params![low, high],
        )?;
        let tags = db::execute(
            "INSERT INTO article_tags (article_id, tag_id) \
             SELECT a.id, pt.tag_id \
             FROM post_tags pt JOIN articles a ON a.legacy_post_id = pt.post_id \
             WHERE pt.post_id > ? AND pt.post_id <= ? \
             AND NOT EXISTS (SELECT 1 FROM article_tags x WHERE x.article_id = a.id AND x.tag_id = pt.tag_id)",
            &params![low, high],
        )?;
        log::debug(format!(
            "posts {low}..={high}: {} articles, {comments} comments, {tags} tags",
            new_articles.len()
        ));
        batch.step()
    }

    /// Every post has its article, and every comment and tag came along.
    fn verify() -> Result<()> {
        let missing = db::query(
            "SELECT \
               (SELECT count(*) FROM posts p WHERE NOT EXISTS \
                  (SELECT 1 FROM articles a WHERE a.legacy_post_id = p.id)) AS posts, \
               (SELECT count(*) FROM comments c WHERE NOT EXISTS \
                  (SELECT 1 FROM article_comments x WHERE x.legacy_comment_id = c.id)) AS comments, \
               (SELECT count(*) FROM post_tags pt WHERE NOT EXISTS \
                  (SELECT 1 FROM articles a JOIN article_tags x ON x.article_id = a.id \
                   WHERE a.legacy_post_id = pt.post_id AND x.tag_id = pt.tag_id)) AS tags",
            &[],
        )?;
        let row = missing
            .get(0)
            .ok_or_else(|| Error::msg("the verify query returned no row"))?;
        let (posts, comments, tags): (i64, i64, i64) =
            (row.get("posts")?, row.get("comments")?, row.get("tags")?);
        if posts + comments + tags > 0 {
            return Err(Error::msg(format!(
                "not migrated: {posts} posts, {comments} comments, {tags} tags"
            )));
        }
        Ok(())
    }

    fn down(cursor: Option<&str>) -> Result<Step> {
        let batch = Keyset::new("articles", "id")
            .columns("id")
            .filter("legacy_post_id IS NOT NULL", params![])
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?)
            .fetch(cursor)?;
        let ids = batch.keys()?;
        if !ids.is_empty() {
            let list = db::placeholders(ids.len());
            db::execute(
                &format!("DELETE FROM article_tags WHERE article_id IN ({list})"),
                &ids,
            )?;
            db::execute(
                &format!("DELETE FROM article_comments WHERE article_id IN ({list})"),
                &ids,
            )?;
            db::execute(&format!("DELETE FROM articles WHERE id IN ({list})"), &ids)?;
        }
        batch.step()
    }
}

dmig_guest::export_migration!(MigratePostsToArticles);

/// The article status for a post status.
pub fn map_status(status: Option<&str>) -> &'static str {
    match status {
        Some("published") => "live",
        Some("archived") => "archived",
        _ => "draft",
    }
}

fn lower_bound(cursor: Option<&str>) -> Result<i64> {
    cursor.map_or(Ok(i64::MIN), |c| {
        c.parse()
            .map_err(|_| Error::msg(format!("cursor {c:?} is not a post id")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map() {
        assert_eq!(map_status(Some("published")), "live");
        assert_eq!(map_status(Some("draft")), "draft");
        assert_eq!(map_status(Some("archived")), "archived");
        assert_eq!(map_status(Some("pending-review")), "draft");
        assert_eq!(map_status(Some("Published")), "draft");
        assert_eq!(map_status(None), "draft");
    }
}
