//! Functions are capabilities.
//!
//! Every function a statement calls is classified. Built-in functions whose
//! only effect is their result (string, numeric, date/time, JSON, aggregate,
//! window, casts, …) are [`Class::Pure`] and need no declaration. Sequence
//! functions need the sequence they name, like a table. The functions that
//! reach outside the statement — server files, dynamic SQL, session state,
//! locks, sleeping, signalling other sessions — are [`Class::Dangerous`] and
//! refused even when declared, unless the artifact declares raw SQL. Every
//! other function (user-defined ones, extensions, built-ins not listed here)
//! must be declared by name in the manifest.
//!
//! Built-in means unqualified, or qualified with `pg_catalog` on PostgreSQL.
//! The dangerous lists match the last part of the name in any case, however
//! it is qualified, so a schema prefix cannot hide one.

use super::Dialect;
use super::names::Name;

/// What calling a function may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No effect beyond its result.
    Pure,
    /// `nextval`/`setval` (and MariaDB's `NEXTVAL`/`SETVAL`): writes the
    /// sequence named by its first argument.
    SequenceWrite,
    /// `currval`: reads the sequence named by its first argument.
    SequenceRead,
    /// Reaches outside the statement.
    Dangerous(Danger),
    /// Anything else: allowed only when the manifest declares it.
    Other,
}

/// Why a function is refused even when declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Danger {
    ServerFiles,
    DynamicSql,
    SessionState,
    Locks,
    Sleep,
    Signals,
}

impl Danger {
    /// What the function does, for the refusal message.
    pub fn describe(self) -> &'static str {
        match self {
            Danger::ServerFiles => "reads or writes files or programs on the database server",
            Danger::DynamicSql => "runs SQL from a string, which the host cannot check",
            Danger::SessionState => {
                "changes the connection's session state, which outlives the step"
            }
            Danger::Locks => "takes or releases locks that outlive the statement",
            Danger::Sleep => "sleeps or waits on the server",
            Danger::Signals => "signals other sessions or the server itself",
        }
    }
}

/// Classifies a call of `name` on `dialect`.
pub fn classify(dialect: Dialect, name: &Name) -> Class {
    let last = name.last().to_ascii_lowercase();
    if let Some(danger) = danger(dialect, &last) {
        return Class::Dangerous(danger);
    }
    let builtin = match name.qualifier() {
        [] => true,
        [schema] => dialect == Dialect::Postgres && schema == "pg_catalog",
        _ => false,
    };
    if !builtin {
        return Class::Other;
    }
    match (dialect, last.as_str()) {
        (Dialect::Postgres | Dialect::Mysql, "nextval" | "setval") => Class::SequenceWrite,
        (Dialect::Postgres, "currval") => Class::SequenceRead,
        _ if pure(dialect).binary_search(&last.as_str()).is_ok() => Class::Pure,
        _ => Class::Other,
    }
}

fn danger(dialect: Dialect, name: &str) -> Option<Danger> {
    let lists: &[(Danger, &[&str])] = match dialect {
        Dialect::Postgres => POSTGRES_DANGER,
        Dialect::Mysql => MYSQL_DANGER,
        Dialect::Sqlite => SQLITE_DANGER,
    };
    for (danger, names) in lists {
        if names.contains(&name) {
            return Some(*danger);
        }
    }
    // Whole families, whatever their exact name.
    let families: &[(&str, Danger)] = match dialect {
        Dialect::Postgres => &[
            ("pg_ls_", Danger::ServerFiles),
            ("pg_read_", Danger::ServerFiles),
            ("pg_file_", Danger::ServerFiles),
            ("pg_stat_file", Danger::ServerFiles),
            ("lo_", Danger::ServerFiles),
            ("dblink", Danger::DynamicSql),
            ("pg_advisory", Danger::Locks),
            ("pg_try_advisory", Danger::Locks),
            ("pg_sleep", Danger::Sleep),
            ("pg_replication_", Danger::Signals),
            ("pg_create_", Danger::Signals),
            ("pg_drop_replication", Danger::Signals),
            ("pg_backup_", Danger::Signals),
            ("pg_wal_replay_", Danger::Signals),
            ("pg_logical_", Danger::Signals),
        ],
        Dialect::Mysql => &[("master_", Danger::Sleep), ("source_", Danger::Sleep)],
        Dialect::Sqlite => &[],
    };
    families
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, danger)| *danger)
}

const POSTGRES_DANGER: &[(Danger, &[&str])] = &[
    (
        Danger::ServerFiles,
        &[
            "loread",
            "lowrite",
            "pg_logdir_ls",
            "pg_import_system_collations",
        ],
    ),
    (
        Danger::DynamicSql,
        &[
            "query_to_xml",
            "query_to_xmlschema",
            "query_to_xml_and_xmlschema",
            "cursor_to_xml",
            "cursor_to_xmlschema",
            "table_to_xml",
            "table_to_xmlschema",
            "table_to_xml_and_xmlschema",
            "schema_to_xml",
            "schema_to_xmlschema",
            "schema_to_xml_and_xmlschema",
            "database_to_xml",
            "database_to_xmlschema",
            "database_to_xml_and_xmlschema",
            "ts_stat",
            "pg_get_object_address",
        ],
    ),
    (
        Danger::SessionState,
        &[
            "set_config",
            "setseed",
            "pg_notify",
            "pg_listening_channels",
        ],
    ),
    (
        Danger::Signals,
        &[
            "pg_cancel_backend",
            "pg_terminate_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_log_backend_memory_contexts",
            "pg_log_standby_snapshot",
            "pg_stat_reset",
            "pg_stat_reset_shared",
            "pg_stat_reset_single_table_counters",
            "pg_stat_reset_single_function_counters",
            "pg_stat_reset_slru",
            "pg_stat_reset_replication_slot",
            "pg_stat_reset_subscription_stats",
            "pg_stat_clear_snapshot",
            "pg_prewarm",
            "pg_checkpoint",
        ],
    ),
];

const MYSQL_DANGER: &[(Danger, &[&str])] = &[
    (Danger::ServerFiles, &["load_file", "sys_exec", "sys_eval"]),
    (
        Danger::Locks,
        &[
            "get_lock",
            "release_lock",
            "release_all_locks",
            "is_free_lock",
            "is_used_lock",
        ],
    ),
    (
        Danger::Sleep,
        &[
            "sleep",
            "benchmark",
            "wait_for_executed_gtid_set",
            "wait_until_sql_thread_after_gtids",
        ],
    ),
];

const SQLITE_DANGER: &[(Danger, &[&str])] = &[(
    Danger::ServerFiles,
    &[
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "zipfile",
    ],
)];

fn pure(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Postgres => POSTGRES_PURE,
        Dialect::Mysql => MYSQL_PURE,
        Dialect::Sqlite => SQLITE_PURE,
    }
}

// Sorted (a unit test checks), for binary search.
#[rustfmt::skip]
const POSTGRES_PURE: &[&str] = &[
    "abbrev", "abs", "acos", "acosd", "acosh", "age", "any_value", "array_agg", "array_append",
    "array_cat", "array_dims", "array_fill", "array_length", "array_lower", "array_ndims",
    "array_position", "array_positions", "array_prepend", "array_remove", "array_replace",
    "array_reverse", "array_sample", "array_shuffle", "array_sort", "array_to_json",
    "array_to_string", "array_upper", "ascii", "asin", "asind", "asinh", "atan", "atan2", "atan2d",
    "atand", "atanh", "avg", "bit_and", "bit_count", "bit_length", "bit_or", "bit_xor", "bool",
    "bool_and", "bool_or", "broadcast", "btrim", "bytea", "cardinality", "casefold", "cbrt",
    "ceil", "ceiling", "char_length", "character_length", "chr", "clock_timestamp", "concat",
    "concat_ws", "convert", "convert_from", "convert_to", "corr", "cos", "cosd", "cosh", "cot",
    "cotd", "count", "covar_pop", "covar_samp", "crc32", "crc32c", "cume_dist", "current_database",
    "current_date", "current_schema", "current_schemas", "current_setting", "current_time",
    "current_timestamp", "current_user", "date", "date_add", "date_bin", "date_part",
    "date_subtract", "date_trunc", "daterange", "decode", "degrees", "dense_rank", "div", "encode",
    "every", "exp", "extract", "factorial", "family", "first_value", "float4", "float8", "floor",
    "format", "format_type", "gcd", "gen_random_uuid", "generate_series", "generate_subscripts",
    "get_bit", "get_byte", "greatest", "host", "hostmask", "inet_merge", "inet_same_family",
    "initcap", "int2", "int4", "int4range", "int8", "int8range", "interval", "isempty", "isfinite",
    "json", "json_agg", "json_agg_strict", "json_array_elements", "json_array_elements_text",
    "json_array_length", "json_build_array", "json_build_object", "json_each", "json_each_text",
    "json_extract_path", "json_extract_path_text", "json_object", "json_object_agg",
    "json_object_agg_strict", "json_object_agg_unique", "json_object_keys", "json_populate_record",
    "json_populate_recordset", "json_scalar", "json_serialize", "json_strip_nulls",
    "json_to_record", "json_to_recordset", "json_typeof", "jsonb", "jsonb_agg", "jsonb_agg_strict",
    "jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length", "jsonb_build_array",
    "jsonb_build_object", "jsonb_concat", "jsonb_contained", "jsonb_contains", "jsonb_delete",
    "jsonb_delete_path", "jsonb_each", "jsonb_each_text", "jsonb_exists", "jsonb_exists_all",
    "jsonb_exists_any", "jsonb_extract_path", "jsonb_extract_path_text", "jsonb_insert",
    "jsonb_object", "jsonb_object_agg", "jsonb_object_agg_strict", "jsonb_object_agg_unique",
    "jsonb_object_keys", "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query",
    "jsonb_path_query_array", "jsonb_path_query_first", "jsonb_populate_record",
    "jsonb_populate_recordset", "jsonb_pretty", "jsonb_set", "jsonb_set_lax", "jsonb_strip_nulls",
    "jsonb_to_record", "jsonb_to_recordset", "jsonb_typeof", "justify_days", "justify_hours",
    "justify_interval", "lag", "last_value", "lastval", "lcm", "lead", "least", "left", "length",
    "ln", "localtime", "localtimestamp", "log", "log10", "lower", "lower_inc", "lower_inf", "lpad",
    "ltrim", "make_date", "make_interval", "make_time", "make_timestamp", "make_timestamptz",
    "masklen", "max", "md5", "min", "min_scale", "mod", "mode", "netmask", "network", "normalize",
    "now", "nth_value", "ntile", "num_nonnulls", "num_nulls", "numeric", "numrange",
    "octet_length", "overlay", "percent_rank", "percentile_cont", "percentile_disc",
    "pg_column_size", "pg_current_xact_id", "pg_typeof", "phraseto_tsquery", "pi",
    "plainto_tsquery", "position", "power", "quote_ident", "quote_literal", "quote_nullable",
    "radians", "random", "random_normal", "range_agg", "range_intersect_agg", "range_merge",
    "rank", "regexp_count", "regexp_instr", "regexp_like", "regexp_match", "regexp_matches",
    "regexp_replace", "regexp_split_to_array", "regexp_split_to_table", "regexp_substr",
    "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx",
    "regr_sxy", "regr_syy", "repeat", "replace", "reverse", "right", "round", "row_number",
    "row_to_json", "rpad", "rtrim", "scale", "session_user", "set_bit", "set_byte", "set_masklen",
    "setweight", "sha224", "sha256", "sha384", "sha512", "sign", "sin", "sind", "sinh",
    "split_part", "sqrt", "starts_with", "statement_timestamp", "stddev", "stddev_pop",
    "stddev_samp", "string_agg", "string_to_array", "string_to_table", "strip", "strpos", "substr",
    "substring", "sum", "tan", "tand", "tanh", "text", "time", "timeofday", "timestamp",
    "timestamptz", "timezone", "to_ascii", "to_bin", "to_char", "to_date", "to_hex", "to_json",
    "to_jsonb", "to_number", "to_oct", "to_timestamp", "to_tsquery", "to_tsvector",
    "transaction_timestamp", "translate", "trim", "trim_array", "trim_scale", "trunc",
    "ts_headline", "ts_rank", "ts_rank_cd", "tsrange", "tstzrange", "txid_current", "unistr",
    "unnest", "upper", "upper_inc", "upper_inf", "user", "uuid", "uuid_extract_timestamp",
    "uuid_extract_version", "uuidv4", "uuidv7", "var_pop", "var_samp", "varchar", "variance",
    "version", "websearch_to_tsquery", "width_bucket",
];

#[rustfmt::skip]
const MYSQL_PURE: &[&str] = &[
    "abs", "acos", "adddate", "addtime", "asin", "atan", "atan2", "avg", "bin", "bin_to_uuid",
    "binary", "bit_and", "bit_count", "bit_length", "bit_or", "bit_xor", "cast", "ceil", "ceiling",
    "char", "char_length", "character_length", "charset", "coalesce", "coercibility", "collation",
    "concat", "concat_ws", "conv", "convert", "convert_tz", "cos", "cot", "count", "crc32",
    "cume_dist", "curdate", "current_date", "current_time", "current_timestamp", "current_user",
    "curtime", "database", "date", "date_add", "date_format", "date_sub", "datediff", "day",
    "dayname", "dayofmonth", "dayofweek", "dayofyear", "degrees", "dense_rank", "elt", "exp",
    "export_set", "extract", "field", "find_in_set", "first_value", "floor", "format",
    "from_base64", "from_days", "from_unixtime", "get_format", "greatest", "group_concat", "hex",
    "hour", "if", "ifnull", "inet6_aton", "inet6_ntoa", "inet_aton", "inet_ntoa", "insert",
    "instr", "is_ipv4", "is_ipv6", "is_uuid", "isnull", "json_array", "json_array_append",
    "json_array_insert", "json_arrayagg", "json_compact", "json_contains", "json_contains_path",
    "json_depth", "json_detailed", "json_equals", "json_exists", "json_extract", "json_insert",
    "json_keys", "json_length", "json_loose", "json_merge", "json_merge_patch",
    "json_merge_preserve", "json_normalize", "json_object", "json_objectagg", "json_overlaps",
    "json_pretty", "json_query", "json_quote", "json_remove", "json_replace", "json_search",
    "json_set", "json_storage_size", "json_type", "json_unquote", "json_valid", "json_value",
    "lag", "last_day", "last_insert_id", "last_value", "lcase", "lead", "least", "left", "length",
    "ln", "locate", "log", "log10", "log2", "lower", "lpad", "ltrim", "make_set", "makedate",
    "maketime", "max", "md5", "microsecond", "mid", "min", "minute", "mod", "month", "monthname",
    "natural_sort_key", "now", "nth_value", "ntile", "nullif", "oct", "octet_length", "ord",
    "percent_rank", "period_add", "period_diff", "pi", "position", "pow", "power", "quarter",
    "quote", "radians", "rand", "random_bytes", "rank", "regexp_instr", "regexp_like",
    "regexp_replace", "regexp_substr", "repeat", "replace", "reverse", "right", "round",
    "row_count", "row_number", "rpad", "rtrim", "schema", "sec_to_time", "second", "session_user",
    "sformat", "sha", "sha1", "sha2", "sign", "sin", "soundex", "space", "sqrt", "std", "stddev",
    "stddev_pop", "stddev_samp", "str_to_date", "strcmp", "subdate", "substr", "substring",
    "substring_index", "subtime", "sum", "sysdate", "system_user", "tan", "time", "time_format",
    "time_to_sec", "timediff", "timestamp", "timestampadd", "timestampdiff", "to_base64",
    "to_days", "to_seconds", "trim", "truncate", "ucase", "unhex", "unix_timestamp", "upper",
    "user", "utc_date", "utc_time", "utc_timestamp", "uuid", "uuid_short", "uuid_to_bin", "values",
    "var_pop", "var_samp", "variance", "version", "week", "weekday", "weekofyear", "year",
    "yearweek",
];

#[rustfmt::skip]
const SQLITE_PURE: &[&str] = &[
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "avg", "ceil", "ceiling",
    "changes", "char", "coalesce", "concat", "concat_ws", "cos", "cosh", "count", "cume_dist",
    "current_date", "current_time", "current_timestamp", "date", "datetime", "degrees",
    "dense_rank", "exp", "first_value", "floor", "format", "glob", "group_concat", "hex", "ifnull",
    "iif", "instr", "json", "json_array", "json_array_length", "json_each", "json_error_position",
    "json_extract", "json_group_array", "json_group_object", "json_insert", "json_object",
    "json_patch", "json_pretty", "json_quote", "json_remove", "json_replace", "json_set",
    "json_tree", "json_type", "json_valid", "jsonb", "jsonb_array", "jsonb_extract",
    "jsonb_group_array", "jsonb_group_object", "jsonb_insert", "jsonb_object", "jsonb_patch",
    "jsonb_remove", "jsonb_replace", "jsonb_set", "julianday", "lag", "last_insert_rowid",
    "last_value", "lead", "length", "like", "likelihood", "likely", "ln", "log", "log10", "log2",
    "lower", "ltrim", "max", "min", "mod", "nth_value", "ntile", "nullif", "octet_length",
    "percent_rank", "pi", "pow", "power", "printf", "quote", "radians", "random", "randomblob",
    "rank", "replace", "round", "row_number", "rtrim", "sign", "sin", "sinh", "soundex", "sqrt",
    "strftime", "string_agg", "substr", "substring", "sum", "tan", "tanh", "time", "timediff",
    "total", "total_changes", "trim", "trunc", "typeof", "unhex", "unicode", "unistr", "unixepoch",
    "unlikely", "upper", "zeroblob",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn class(dialect: Dialect, name: &str) -> Class {
        classify(dialect, &Name::parse(dialect, name).unwrap())
    }

    #[test]
    fn lists_are_sorted_for_binary_search() {
        for list in [POSTGRES_PURE, MYSQL_PURE, SQLITE_PURE] {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "{:?}",
                list.windows(2).find(|w| w[0] >= w[1])
            );
        }
    }

    #[test]
    fn classifies() {
        use Danger::*;
        let pg = Dialect::Postgres;
        assert_eq!(class(pg, "lower"), Class::Pure);
        assert_eq!(class(pg, "pg_catalog.lower"), Class::Pure);
        assert_eq!(class(pg, "myschema.lower"), Class::Other);
        assert_eq!(class(pg, "slugify"), Class::Other);
        assert_eq!(class(pg, "nextval"), Class::SequenceWrite);
        assert_eq!(class(pg, "currval"), Class::SequenceRead);
        assert_eq!(class(pg, "query_to_xml"), Class::Dangerous(DynamicSql));
        assert_eq!(
            class(pg, "pg_catalog.PG_READ_FILE"),
            Class::Dangerous(ServerFiles)
        );
        assert_eq!(class(pg, "pg_ls_dir"), Class::Dangerous(ServerFiles));
        assert_eq!(class(pg, "lo_import"), Class::Dangerous(ServerFiles));
        assert_eq!(class(pg, "evil.set_config"), Class::Dangerous(SessionState));
        assert_eq!(class(pg, "pg_terminate_backend"), Class::Dangerous(Signals));
        assert_eq!(class(pg, "pg_sleep_for"), Class::Dangerous(Sleep));
        assert_eq!(
            class(pg, "pg_try_advisory_xact_lock"),
            Class::Dangerous(Locks)
        );
        assert_eq!(class(pg, "dblink_exec"), Class::Dangerous(DynamicSql));
        let my = Dialect::Mysql;
        assert_eq!(class(my, "LOAD_FILE"), Class::Dangerous(ServerFiles));
        assert_eq!(class(my, "SLEEP"), Class::Dangerous(Sleep));
        assert_eq!(class(my, "GET_LOCK"), Class::Dangerous(Locks));
        assert_eq!(class(my, "master_pos_wait"), Class::Dangerous(Sleep));
        assert_eq!(class(my, "CONCAT"), Class::Pure);
        let lite = Dialect::Sqlite;
        assert_eq!(class(lite, "load_extension"), Class::Dangerous(ServerFiles));
        assert_eq!(class(lite, "json_extract"), Class::Pure);
    }
}
