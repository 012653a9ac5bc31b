//! Statement kinds refused by name in every mode, raw SQL included: those
//! that would end, start or escape the host's step transaction, change the
//! connection beyond the step, or reach the server's files, programs or
//! other sessions.

pub(crate) const TRANSACTION: &str = "the host owns each step's transaction (return from the step to commit it, return an error to roll it back)";
pub(crate) const DATABASES: &str = "they would change which databases the connection can reach";
pub(crate) const PRAGMA: &str = "pragmas change connection or database settings (read a setting with SELECT * FROM pragma_<name>)";
pub(crate) const MAINTENANCE: &str = "they rewrite or maintain whole tables or the server and cannot run inside the step's transaction";
pub(crate) const SESSION: &str =
    "they change the connection's session state, which would outlive the step";
pub(crate) const PREPARED: &str =
    "prepared statements run SQL the host never sees (send the statement itself)";
pub(crate) const LOCK: &str = "explicit locks outlive the statement and can block other sessions; the step's own statements take the row locks they need";
pub(crate) const SERVER_FILES: &str = "they read or write files or programs on the database server";
pub(crate) const SIGNALS: &str = "they signal other sessions or the server itself";

/// The reason a statement starting with these (unquoted, upper-cased)
/// words is refused, if it is. For MySQL/MariaDB and SQLite, whose
/// statements the gate classifies by their leading keywords before parsing.
pub(crate) fn by_leading_words(first: &str, second: &str) -> Option<&'static str> {
    Some(match first {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" | "XA" => {
            TRANSACTION
        }
        "START" if second == "TRANSACTION" => TRANSACTION,
        "ATTACH" | "DETACH" | "USE" => DATABASES,
        "PRAGMA" => PRAGMA,
        "VACUUM" | "OPTIMIZE" | "ANALYZE" | "REINDEX" | "REPAIR" | "CHECK" | "CHECKSUM"
        | "FLUSH" | "SHUTDOWN" | "RESTART" | "INSTALL" | "UNINSTALL" | "PURGE" | "CHANGE"
        | "CHECKPOINT" | "BACKUP" | "CLONE" => MAINTENANCE,
        "SET" | "RESET" | "DISCARD" | "LISTEN" | "UNLISTEN" => SESSION,
        "PREPARE" | "EXECUTE" | "DEALLOCATE" => PREPARED,
        "LOCK" | "UNLOCK" | "HANDLER" => LOCK,
        "COPY" | "LOAD" => SERVER_FILES,
        "KILL" | "NOTIFY" | "SIGNAL" | "RESIGNAL" => SIGNALS,
        _ => return None,
    })
}

pub(crate) const IMPLICIT_COMMIT: &str = "on MySQL/MariaDB they commit the step's transaction implicitly, or change accounts, privileges or server-wide objects";

/// MySQL/MariaDB statements that commit implicitly (ending the host's step
/// transaction) or administer the server, refused by name in every mode.
/// The DDL a manifest can declare (`CREATE/ALTER/DROP TABLE`, `INDEX`,
/// `VIEW`, `TRUNCATE`, `RENAME TABLE`) is checked instead; on MySQL it too
/// commits implicitly, as docs/DATABASES.md says.
pub(crate) fn mysql_by_leading_words(first: &str, second: &str) -> Option<&'static str> {
    let object = matches!(
        second,
        "USER"
            | "ROLE"
            | "EVENT"
            | "PROCEDURE"
            | "FUNCTION"
            | "TRIGGER"
            | "SERVER"
            | "DATABASE"
            | "SCHEMA"
            | "TABLESPACE"
            | "LOGFILE"
            | "DEFINER"
            | "AGGREGATE"
            | "PACKAGE"
            | "SEQUENCE"
            | "OR"
    );
    match first {
        "GRANT" | "REVOKE" | "BINLOG" | "STOP" | "CACHE" => Some(IMPLICIT_COMMIT),
        "START" if second != "TRANSACTION" => Some(IMPLICIT_COMMIT),
        "CREATE" | "ALTER" | "DROP" | "RENAME" if object => Some(IMPLICIT_COMMIT),
        _ => None,
    }
}
