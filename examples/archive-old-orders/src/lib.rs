//! Moves orders created before `--arg before=YYYY-MM-DD` into
//! `archived_orders`, each with its `order_items` as a JSON array in
//! `archived_orders.items`; `down` restores the orders and their items
//! exactly (same ids, same values) and empties the archive.
//!
//! Keyset batches of orders by id (`--arg batch_size=N`, default 200). A step
//! archives its orders and deletes them and their items in one transaction,
//! so an order is always in exactly one place. Idempotent: an archived order
//! is no longer in `orders`, so a rerun moves only orders that are still
//! there (and an order already in the archive is not archived twice).

use std::collections::{BTreeMap, HashSet};

use dmig_guest::{
    Error, Keyset, Manifest, Migration, Result, Row, Step, Value, args, db, log, params, progress,
};
use serde_json::{Map, Value as Json};

const DEFAULT_BATCH_SIZE: u64 = 200;
/// The columns of `order_items`, as stored in the archive and restored.
const ITEM_COLUMNS: [&str; 5] = ["id", "order_id", "sku", "quantity", "price_cents"];

struct ArchiveOldOrders;

impl Migration for ArchiveOldOrders {
    const MANIFEST: Manifest = Manifest::new(
        "archive-old-orders",
        "Move orders older than --arg before=DATE, with their items as JSON, into archived_orders",
    )
    .reversible()
    .writes(&["orders", "order_items", "archived_orders"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let before = before()?;
        let orders = Keyset::new("orders", "id")
            .columns("id, customer_id, status, total_cents, created_at")
            .filter("created_at < ?", params![&before])
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?);
        if cursor.is_none() {
            let total = orders.count()?;
            progress::set_total(total);
            log::info(format!("{total} orders created before {before} to archive"));
        }
        let batch = orders.fetch(cursor)?;
        let ids = batch.keys()?;
        if ids.is_empty() {
            return batch.step();
        }
        let list = db::placeholders(ids.len());

        let mut items: BTreeMap<i64, Vec<Json>> = BTreeMap::new();
        let rows = db::query(
            &format!(
                "SELECT id, order_id, sku, quantity, price_cents FROM order_items WHERE order_id IN ({list}) ORDER BY id"
            ),
            &ids,
        )?;
        for item in rows.iter() {
            items
                .entry(item.get("order_id")?)
                .or_default()
                .push(item_json(&item)?);
        }
        let archived: HashSet<i64> = db::query(
            &format!("SELECT id FROM archived_orders WHERE id IN ({list})"),
            &ids,
        )?
        .iter()
        .map(|r| r.get("id"))
        .collect::<Result<_>>()?;

        let mut inserts = Vec::new();
        for order in batch.rows() {
            let id: i64 = order.get("id")?;
            if archived.contains(&id) {
                log::warn(format!(
                    "order {id} is already in archived_orders; removed from orders only"
                ));
                continue;
            }
            let order_items = Json::Array(items.remove(&id).unwrap_or_default()).to_string();
            inserts.push(params![
                id,
                order.get::<Value>("customer_id")?,
                order.get::<Value>("status")?,
                order.get::<Value>("total_cents")?,
                order.get::<Value>("created_at")?,
                order_items
            ]);
        }
        db::execute_many(
            "INSERT INTO archived_orders (id, customer_id, status, total_cents, created_at, items) VALUES (?, ?, ?, ?, ?, ?)",
            &inserts,
        )?;
        db::execute(
            &format!("DELETE FROM order_items WHERE order_id IN ({list})"),
            &ids,
        )?;
        db::execute(&format!("DELETE FROM orders WHERE id IN ({list})"), &ids)?;
        batch.step()
    }

    /// No order older than the cutoff is left in `orders`.
    fn verify() -> Result<()> {
        let left = db::query(
            "SELECT count(*) AS n FROM orders WHERE created_at < ?",
            &params![before()?],
        )?;
        let left: i64 = left.get(0).map_or(Ok(0), |r| r.get("n"))?;
        if left > 0 {
            return Err(Error::msg(format!("{left} old orders were not archived")));
        }
        Ok(())
    }

    fn down(cursor: Option<&str>) -> Result<Step> {
        let batch = Keyset::new("archived_orders", "id")
            .columns("id, customer_id, status, total_cents, created_at, items")
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?)
            .fetch(cursor)?;
        let mut orders = Vec::new();
        let mut items = Vec::new();
        let mut ids = Vec::new();
        for archived in batch.rows() {
            let id: i64 = archived.get("id")?;
            ids.push(Value::from(id));
            orders.push(params![
                id,
                archived.get::<Value>("customer_id")?,
                archived.get::<Value>("status")?,
                archived.get::<Value>("total_cents")?,
                archived.get::<Value>("created_at")?
            ]);
            let text: String = archived.get("items")?;
            let parsed: Vec<Map<String, Json>> = serde_json::from_str(&text).map_err(|e| {
                Error::msg(format!(
                    "archived order {id} has unreadable items JSON: {e}"
                ))
            })?;
            for item in parsed {
                items.push(
                    ITEM_COLUMNS
                        .iter()
                        .map(|c| json_value(item.get(*c).unwrap_or(&Json::Null)))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
        }
        db::execute_many(
            "INSERT INTO orders (id, customer_id, status, total_cents, created_at) VALUES (?, ?, ?, ?, ?)",
            &orders,
        )?;
        db::execute_many(
            "INSERT INTO order_items (id, order_id, sku, quantity, price_cents) VALUES (?, ?, ?, ?, ?)",
            &items,
        )?;
        if !ids.is_empty() {
            db::execute(
                &format!(
                    "DELETE FROM archived_orders WHERE id IN ({})",
                    db::placeholders(ids.len())
                ),
                &ids,
            )?;
        }
        batch.step()
    }
}

dmig_guest::export_migration!(ArchiveOldOrders);

/// `--arg before`, checked to be a date.
fn before() -> Result<String> {
    let before: String = args::required("before")?;
    if !is_date(&before) {
        return Err(Error::msg(format!(
            "argument before={before} is not a date; write it as YYYY-MM-DD, e.g. before=2024-01-01"
        )));
    }
    Ok(before)
}

/// `YYYY-MM-DD` with a plausible month and day.
pub fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let number = |s: &str, len: usize| -> Option<u32> {
        if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    matches!(
        (number(y, 4), number(m, 2), number(d, 2)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

fn item_json(item: &Row<'_>) -> Result<Json> {
    let mut object = Map::new();
    for column in ITEM_COLUMNS {
        let value = match item.get::<Value>(column)? {
            Value::Null => Json::Null,
            Value::Boolean(b) => Json::Bool(b),
            Value::Int(i) => Json::from(i),
            Value::Float(f) => Json::from(f),
            Value::Text(t) => Json::String(t),
            Value::Blob(_) => {
                return Err(Error::msg(format!(
                    "order_items.{column} is binary, which the archive cannot hold"
                )));
            }
        };
        object.insert(column.to_owned(), value);
    }
    Ok(Json::Object(object))
}

fn json_value(json: &Json) -> Result<Value> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(
                n.as_f64()
                    .ok_or_else(|| Error::msg(format!("number {n} does not fit")))?,
            ),
        },
        Json::String(s) => Value::Text(s.clone()),
        other => return Err(Error::msg(format!("unexpected {other} in archived items"))),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert!(super::is_date("2024-01-31"));
        for bad in [
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "yesterday",
            "2024-01-01T00:00",
            "",
        ] {
            assert!(!super::is_date(bad), "{bad}");
        }
    }
}
