//! Moves the `color`, `size` and `weight_grams` fields of the JSON column
//! `products.metadata` into their own columns, and back on `down`.
//!
//! Keyset batches by id (`--arg batch_size=N`, default 500). A field moves
//! only if it has the column's type (text, text, integer); one that does not
//! stays in the JSON and is logged as a warning, as is a row whose metadata
//! is not a JSON object (left untouched). Idempotent: a moved field is no
//! longer in the JSON, so a rerun finds nothing to move.
//!
//! `down` puts every non-NULL column value back into the JSON object (making
//! one if metadata is NULL) and sets the columns to NULL. The JSON comes back
//! equal as JSON, not byte for byte: keys are written in sorted order.

use dmig_guest::{
    Error, Keyset, Manifest, Migration, Result, Step, Value, args, db, log, params, progress,
};
use serde_json::{Map, Value as Json};

const DEFAULT_BATCH_SIZE: u64 = 500;

struct SplitMetadataJson;

impl Migration for SplitMetadataJson {
    const MANIFEST: Manifest = Manifest::new(
        "split-metadata-json",
        "Move color, size and weight_grams out of products.metadata into their own columns",
    )
    .reversible()
    .writes(&["products"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let products = Keyset::new("products", "id")
            .columns("id, metadata, color, size, weight_grams")
            .filter("metadata IS NOT NULL", params![])
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?);
        if cursor.is_none() {
            progress::set_total(products.count()?);
        }
        let batch = products.fetch(cursor)?;
        let mut updates = Vec::new();
        for product in batch.rows() {
            let id: i64 = product.get("id")?;
            let text: String = product.get("metadata")?;
            let Ok(Json::Object(mut metadata)) = serde_json::from_str::<Json>(&text) else {
                log::warn(format!(
                    "product {id}: metadata is not a JSON object; left as it is"
                ));
                continue;
            };
            let color = take_text(&mut metadata, id, "color");
            let size = take_text(&mut metadata, id, "size");
            let weight = match metadata.get("weight_grams") {
                Some(Json::Number(n)) if n.is_i64() => {
                    let w = n.as_i64();
                    metadata.remove("weight_grams");
                    w
                }
                Some(other) => {
                    log::warn(format!(
                        "product {id}: weight_grams {other} is not an integer; left in metadata"
                    ));
                    None
                }
                None => None,
            };
            if color.is_none() && size.is_none() && weight.is_none() {
                continue;
            }
            updates.push(params![
                Json::Object(metadata).to_string(),
                color.map_or_else(|| product.get::<Value>("color"), |c| Ok(Value::from(c)))?,
                size.map_or_else(|| product.get::<Value>("size"), |s| Ok(Value::from(s)))?,
                weight.map_or_else(
                    || product.get::<Value>("weight_grams"),
                    |w| Ok(Value::from(w))
                )?,
                id
            ]);
        }
        db::execute_many(
            "UPDATE products SET metadata = ?, color = ?, size = ?, weight_grams = ? WHERE id = ?",
            &updates,
        )?;
        batch.step_with(updates.len() as u64)
    }

    fn down(cursor: Option<&str>) -> Result<Step> {
        let batch = Keyset::new("products", "id")
            .columns("id, metadata, color, size, weight_grams")
            .filter(
                "color IS NOT NULL OR size IS NOT NULL OR weight_grams IS NOT NULL",
                params![],
            )
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?)
            .fetch(cursor)?;
        let mut updates = Vec::new();
        for product in batch.rows() {
            let id: i64 = product.get("id")?;
            let mut metadata = match product.get::<Option<String>>("metadata")? {
                None => Map::new(),
                Some(text) => match serde_json::from_str::<Json>(&text) {
                    Ok(Json::Object(map)) => map,
                    _ => {
                        return Err(Error::msg(format!(
                            "product {id}: metadata is not a JSON object, so color/size/weight_grams cannot go back into it"
                        )));
                    }
                },
            };
            if let Some(color) = product.get::<Option<String>>("color")? {
                metadata.insert("color".into(), Json::String(color));
            }
            if let Some(size) = product.get::<Option<String>>("size")? {
                metadata.insert("size".into(), Json::String(size));
            }
            if let Some(weight) = product.get::<Option<i64>>("weight_grams")? {
                metadata.insert("weight_grams".into(), Json::from(weight));
            }
            updates.push(params![Json::Object(metadata).to_string(), id]);
        }
        db::execute_many(
            "UPDATE products SET metadata = ?, color = NULL, size = NULL, weight_grams = NULL WHERE id = ?",
            &updates,
        )?;
        batch.step()
    }
}

dmig_guest::export_migration!(SplitMetadataJson);

/// Removes and returns field `key` if it is a string; warns and leaves it
/// otherwise.
fn take_text(metadata: &mut Map<String, Json>, id: i64, key: &str) -> Option<String> {
    match metadata.get(key) {
        Some(Json::String(_)) => match metadata.remove(key) {
            Some(Json::String(s)) => Some(s),
            _ => None,
        },
        Some(other) => {
            log::warn(format!(
                "product {id}: {key} {other} is not text; left in metadata"
            ));
            None
        }
        None => None,
    }
}
