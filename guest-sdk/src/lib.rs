//! Write dmig data migrations in Rust.
//!
//! A migration is a type implementing [`Migration`], exported with
//! [`export_migration!`] and built for `wasm32-wasip2`. The host calls
//! [`Migration::up`] repeatedly, one batch per call, each inside a transaction
//! it owns; the returned [`Step`] carries the cursor for the next call and is
//! committed with the batch, so a crash resumes exactly where it stopped.
//!
//! ```no_run
//! use dmig_guest::{db, params, Manifest, Migration, Result, Step};
//!
//! struct Lowercase;
//!
//! impl Migration for Lowercase {
//!     const MANIFEST: Manifest =
//!         Manifest::new("lowercase-emails", "Lowercases every email address").writes(&["users"]);
//!
//!     fn up(cursor: Option<&str>) -> Result<Step> {
//!         let after: i64 = cursor.map_or(Ok(0), str::parse).map_err(dmig_guest::Error::msg)?;
//!         let rows = db::query(
//!             "SELECT id, email FROM users WHERE id > ? ORDER BY id LIMIT 500",
//!             &params![after],
//!         )?;
//!         let mut updates = Vec::new();
//!         for row in rows.iter() {
//!             let email: String = row.get("email")?;
//!             updates.push(params![email.to_lowercase(), row.get::<i64>("id")?]);
//!         }
//!         db::execute_many("UPDATE users SET email = ? WHERE id = ?", &updates)?;
//!         Ok(match rows.last() {
//!             Some(last) => Step::next(last.get::<i64>("id")?.to_string(), rows.len() as u64),
//!             None => Step::done(0),
//!         })
//!     }
//! }
//!
//! dmig_guest::export_migration!(Lowercase);
//! ```

// Lets the generated bindings name this crate the same way from inside and
// outside it.
extern crate self as dmig_guest;

pub mod args;
mod batch;
pub mod bulk;
mod cursor;
pub mod db;
mod error;
mod ident;
pub mod input;
pub mod log;
pub mod manifest;
mod migration;
pub mod progress;
mod rows;
mod value;

pub use batch::{Batch, KeyColumns, Keyset, Lock};
pub use cursor::KeyType;
pub use error::{Error, Result};
pub use manifest::Manifest;
pub use migration::{Migration, Step};
pub use rows::{ColumnIndex, Row, Rows};
pub use value::{Dialect, FromValue, Value};

/// Plumbing for [`export_migration!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::manifest::{encode as manifest_bytes, encoded_len as manifest_len};
    pub use crate::migration::Adapter;

    wit_bindgen::generate!({
        path: "../wit/v0.2.0",
        world: "data-migration",
        pub_export_macro: true,
        export_macro_name: "__export_data_migration",
        default_bindings_module: "::dmig_guest::__private",
        runtime_path: "::dmig_guest::__private::rt",
    });

    pub use wit_bindgen::rt;
}

/// Exports a [`Migration`] implementation as the component's `migration`
/// interface, and embeds its [`Manifest`] (with the crate's version unless the
/// manifest sets one) as the `dmig:manifest` custom section. Call it once, at
/// the crate root of a `cdylib` crate.
///
/// ```ignore
/// struct Backfill;
/// impl dmig_guest::Migration for Backfill { /* ... */ }
/// dmig_guest::export_migration!(Backfill);
/// ```
#[macro_export]
macro_rules! export_migration {
    ($migration:ty) => {
        const _: () = {
            type __DmigExport = $crate::__private::Adapter<$migration>;
            $crate::__private::__export_data_migration!(
                __DmigExport with_types_in $crate::__private
            );

            const __DMIG_MANIFEST: &$crate::Manifest = &<$migration as $crate::Migration>::MANIFEST;
            const __DMIG_MANIFEST_LEN: usize =
                $crate::__private::manifest_len(__DMIG_MANIFEST, env!("CARGO_PKG_VERSION"));
            #[used]
            #[cfg_attr(target_family = "wasm", unsafe(link_section = "dmig:manifest"))]
            static __DMIG_MANIFEST_SECTION: [u8; __DMIG_MANIFEST_LEN] =
                $crate::__private::manifest_bytes::<__DMIG_MANIFEST_LEN>(
                    __DMIG_MANIFEST,
                    env!("CARGO_PKG_VERSION"),
                );
        };
    };
}

/// Builds a `Vec<Value>` of statement parameters from anything convertible
/// into a [`Value`]: integers of every width (`i8` … `i128`, `u8` … `u128`,
/// `isize`, `usize`), floats, bools, strings, bytes, `Option`s of those
/// (`None` is NULL), and `Value`s themselves.
///
/// An integer is an `int` when it fits in an i64. One that does not (a
/// `u64` above `i64::MAX`, a large `i128`) is sent as its exact decimal text
/// rather than wrapped or clamped: PostgreSQL and MySQL read it as the
/// column's numeric type (a `numeric`/`DECIMAL`, a MySQL `BIGINT UNSIGNED`),
/// and reject it when it does not fit; SQLite, whose integers are i64, stores
/// such text in an INTEGER column as a REAL.
///
/// ```
/// use dmig_guest::{params, Value};
/// let p = params![42, "ada", None::<String>, 500u64, u64::MAX];
/// assert_eq!(
///     p,
///     vec![
///         Value::Int(42),
///         Value::Text("ada".into()),
///         Value::Null,
///         Value::Int(500),
///         Value::Text("18446744073709551615".into()),
///     ]
/// );
/// ```
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::Value::from($value)),+]
    };
}
