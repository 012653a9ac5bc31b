use std::fmt;

use crate::value::DbError;

/// Shorthand for results whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a migration step can fail with. Its `Display` text is what the
/// operator sees in the ledger, so every variant names what went wrong and where.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The database (or the host, refusing the call) rejected a statement.
    Db {
        /// The database's own error code, when it has one.
        code: Option<String>,
        /// What the database said.
        message: String,
    },
    /// A row has no column with this name, or no column at this index.
    MissingColumn {
        /// The name or index asked for.
        column: String,
        /// The columns the row does have.
        available: Vec<String>,
    },
    /// A value could not be read as the requested Rust type.
    TypeMismatch {
        /// The column, by name.
        column: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The kind of value the column held.
        found: &'static str,
    },
    /// A [`Keyset`](crate::Keyset) read two rows with equal keys: the key is
    /// not unique, and a batch boundary between such rows would skip some.
    KeyNotUnique {
        /// The table, as the keyset names it.
        table: String,
        /// The key's columns, as the keyset names them.
        key: Vec<String>,
        /// The repeated key, as a cursor would hold it.
        value: String,
    },
    /// A [`Keyset`](crate::Keyset) found a row whose key is NULL, which no
    /// batch would ever read.
    NullKey {
        /// The table, as the keyset names it.
        table: String,
        /// The key column (or columns) holding NULL.
        key: String,
    },
    /// Any other failure, as a message.
    Message(String),
}

impl Error {
    /// An error carrying `message`, for failures of the migration's own logic.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Message(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db {
                code: Some(code),
                message,
            } => write!(f, "database error {code}: {message}"),
            Error::Db {
                code: None,
                message,
            } => write!(f, "database error: {message}"),
            Error::MissingColumn { column, available } => write!(
                f,
                "no column {column} in the result (columns: {})",
                available.join(", ")
            ),
            Error::TypeMismatch {
                column,
                expected,
                found,
            } => write!(
                f,
                "column {column} holds {found}, which cannot be read as {expected}"
            ),
            Error::KeyNotUnique { table, key, value } => {
                let quoted: Vec<String> = key.iter().map(|k| format!("{k:?}")).collect();
                // The usual tie-breaker is the primary key: suggest `id`
                // unless the key has it already.
                let advice = if key.iter().any(|k| k.eq_ignore_ascii_case("id")) {
                    "the key's columns do not make it unique here (a case-insensitive or padded collation can make different texts equal): add a column that does, such as the primary key".to_owned()
                } else {
                    format!(
                        "add a unique tie-breaker column to the key, e.g. Keyset::new({table:?}, [{}, \"id\"])",
                        quoted.join(", ")
                    )
                };
                write!(
                    f,
                    "keyset key ({}) of {table} is not unique: more than one row has the key {value}, and a batch boundary between them would skip rows; {advice}",
                    key.join(", "),
                )
            }
            Error::NullKey { table, key } => write!(
                f,
                "keyset key {key} of {table} is NULL in a row, which no batch would ever read: make the key NOT NULL, leave those rows out with Keyset::filter, or pick another key"
            ),
            Error::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        Error::Db {
            code: error.code,
            message: error.message,
        }
    }
}
