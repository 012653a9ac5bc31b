//! The results: collected as the runs go, rendered as Markdown at the end.

use std::fmt::Write;
use std::time::Duration;

use dmig_bench::Dialect;

use crate::measure::median;
use crate::seconds;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// (a) `dmig-host run`, default limits, one `UPDATE` per row
    /// (`--arg writes=per-row`).
    Host,
    /// (e) `dmig-host run`, default limits, the batch in one statement
    /// (the example's default, `db::update_many`).
    HostBulk,
    /// (b) the native sqlx program.
    Native,
    /// (c) one set-based UPDATE.
    SetBased,
    /// (d) the plain Python program (sqlite3 or psycopg 3).
    Python,
    /// The example through the library, default limits.
    LibraryDefault,
    /// The example through the library, limits off.
    LibraryOff,
    /// (a) with `--fuel`.
    HostFuel,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::Host => "(a) dmig-host run, per-row writes",
            Method::HostBulk => "(e) dmig-host run, bulk writes",
            Method::Native => "(b) native sqlx program",
            Method::SetBased => "(c) one set-based UPDATE",
            Method::Python => "(d) plain Python program",
            Method::LibraryDefault => "library, default limits",
            Method::LibraryOff => "library, limits off",
            Method::HostFuel => "dmig-host run --fuel",
        }
    }

    /// The label in the tables, which name the Python program's driver.
    pub fn label_on(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (Method::Python, Dialect::Sqlite) => "(d) Python, stdlib sqlite3",
            (Method::Python, Dialect::Postgres) => "(d) Python, psycopg 3",
            _ => self.label(),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub dialect: Dialect,
    pub method: Method,
    pub rows: u64,
    pub wall: Duration,
    /// Peak RSS of the measured process, in bytes (None when the work runs
    /// inside the database server: the set-based UPDATE).
    pub max_rss: Option<u64>,
    /// CPU time of the measured process (None for the set-based UPDATE).
    pub cpu: Option<Duration>,
    /// The parts of `cpu` in user space and in the kernel.
    pub user: Option<Duration>,
    pub system: Option<Duration>,
}

/// Start-up times on one database (medians).
#[derive(Debug, Clone)]
pub struct Startup {
    pub dialect: Dialect,
    pub version: Duration,
    pub warm: Duration,
    pub warm_rss: u64,
    pub cold: Duration,
    pub cold_rss: u64,
    pub runs: usize,
}

/// Everything the benchmark found.
pub struct Report {
    pub rows: u64,
    pub small_rows: u64,
    pub batch_size: i64,
    pub fuel: u64,
    /// Rounds on the large and on the small data set.
    pub repeat: (usize, usize),
    pub machine: String,
    /// Lines for the header (where the SQLite files live, …).
    pub notes: Vec<String>,
    pub versions: Vec<(Dialect, String)>,
    pub measurements: Vec<Measurement>,
    pub startup: Vec<Startup>,
}

/// The median of a method's rounds.
struct Summary {
    wall: Duration,
    max_rss: Option<u64>,
    cpu: Option<Duration>,
    user: Option<Duration>,
    system: Option<Duration>,
}

impl Summary {
    fn rate(&self, rows: u64) -> f64 {
        rows as f64 / self.wall.as_secs_f64()
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Report {
    pub fn new(
        rows: u64,
        small_rows: u64,
        batch_size: i64,
        fuel: u64,
        repeat: (usize, usize),
    ) -> Self {
        Report {
            rows,
            small_rows,
            batch_size,
            fuel,
            repeat,
            machine: String::new(),
            notes: Vec::new(),
            versions: Vec::new(),
            measurements: Vec::new(),
            startup: Vec::new(),
        }
    }

    fn dialects(&self) -> Vec<Dialect> {
        self.versions.iter().map(|(d, _)| *d).collect()
    }

    fn summary(&self, dialect: Dialect, method: Method, rows: u64) -> Option<Summary> {
        let runs: Vec<_> = self
            .measurements
            .iter()
            .filter(|m| m.dialect == dialect && m.method == method && m.rows == rows)
            .collect();
        if runs.is_empty() {
            return None;
        }
        let mut walls: Vec<_> = runs.iter().map(|m| m.wall).collect();
        let mid = |get: fn(&Measurement) -> Option<Duration>| {
            let mut values: Vec<_> = runs.iter().filter_map(|m| get(m)).collect();
            (!values.is_empty()).then(|| median(&mut values))
        };
        Some(Summary {
            wall: median(&mut walls),
            max_rss: runs.iter().filter_map(|m| m.max_rss).max(),
            cpu: mid(|m| m.cpu),
            user: mid(|m| m.user),
            system: mid(|m| m.system),
        })
    }

    /// Throughput of `method` relative to `base` (above 1: faster).
    fn ratio(&self, dialect: Dialect, method: Method, base: Method, rows: u64) -> Option<f64> {
        let m = self.summary(dialect, method, rows)?;
        let b = self.summary(dialect, base, rows)?;
        Some(b.wall.as_secs_f64() / m.wall.as_secs_f64())
    }

    /// Relative change of the host's peak RSS from the small to the large
    /// data set.
    fn rss_growth(&self, dialect: Dialect) -> Option<f64> {
        let small = self
            .summary(dialect, Method::Host, self.small_rows)?
            .max_rss?;
        let large = self.summary(dialect, Method::Host, self.rows)?.max_rss?;
        Some(large as f64 / small as f64 - 1.0)
    }

    /// One table of `methods` on `rows` rows, per database.
    fn throughput(&self, out: &mut String, title: &str, rows: u64, methods: &[Method]) {
        let _ = writeln!(out, "{title}\n");
        let _ = writeln!(
            out,
            "| database | program | time | rows/s | vs (b) | vs (d) | CPU time | CPU µs/row | user µs/row | system µs/row | peak RSS |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let per_row = |d: Option<Duration>| {
            d.map_or(String::new(), |d| {
                format!("{:.1}", d.as_secs_f64() * 1e6 / rows as f64)
            })
        };
        for dialect in self.dialects() {
            for &method in methods {
                let Some(s) = self.summary(dialect, method, rows) else {
                    continue;
                };
                let label = match method {
                    Method::HostFuel => format!("{} {}", method.label(), thousands(self.fuel)),
                    _ => method.label_on(dialect).to_owned(),
                };
                let ratio = |base| {
                    self.ratio(dialect, method, base, rows)
                        .map_or("".into(), |r| format!("{r:.2}"))
                };
                let rss = s.max_rss.map_or("(server)".into(), mib);
                let cpu = s.cpu.map_or("(server)".into(), seconds);
                let _ = writeln!(
                    out,
                    "| {dialect} | {label} | {} | {} | {} | {} | {cpu} | {} | {} | {} | {rss} |",
                    seconds(s.wall),
                    thousands(s.rate(rows) as u64),
                    ratio(Method::Native),
                    ratio(Method::Python),
                    per_row(s.cpu),
                    per_row(s.user),
                    per_row(s.system),
                );
            }
        }
        let _ = writeln!(out);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let command = std::env::var("DMIG_BENCH_COMMAND").unwrap_or_else(|_| {
            std::iter::once("dmig-bench".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let versions: Vec<_> = self.versions.iter().map(|(_, v)| v.as_str()).collect();
        let _ = writeln!(out, "# dmig benchmark results\n");
        let _ = writeln!(
            out,
            "- Date: {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(out, "- Machine: {}", self.machine);
        let _ = writeln!(out, "- Databases: {}", versions.join("; "));
        let _ = writeln!(out, "- Command: `{command}`");
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(
            out,
            "- Every run starts from a fresh copy of the same data set and its result is checked row by \
             row; times are wall-clock from process start to exit, the median of {} round(s) on the large data set and {} on the small one; CPU \
             time (user + system, also per row), user and system (kernel) time and peak RSS are the measured process's own (`wait4`'s \
             `rusage`), never the database server's; \"vs (b)\" and \"vs (d)\" are rows/s relative to the native and the Python program \
             (above 1: faster).\n",
            self.repeat.0, self.repeat.1
        );

        self.throughput(
            &mut out,
            &format!(
                "## Throughput: {} rows, batches of {}",
                thousands(self.rows),
                self.batch_size
            ),
            self.rows,
            &[
                Method::Host,
                Method::HostBulk,
                Method::Native,
                Method::Python,
                Method::SetBased,
            ],
        );
        self.throughput(
            &mut out,
            &format!(
                "## Sandbox cost: {} rows, batches of {}\n\n\
                 The library runs are the example through dmig-host's library, as `dmig-host run` \
                 runs it, with the default limits or with them all off \
                 (`SandboxBuilder::dangerous_disable_limits`).",
                thousands(self.small_rows),
                self.batch_size
            ),
            self.small_rows,
            &[
                Method::Host,
                Method::Native,
                Method::Python,
                Method::LibraryDefault,
                Method::LibraryOff,
                Method::HostFuel,
            ],
        );
        let _ = writeln!(
            out,
            "## Memory: peak RSS at {} and {} rows\n",
            thousands(self.small_rows),
            thousands(self.rows)
        );
        let _ = writeln!(
            out,
            "| database | program | {} rows | {} rows | change |\n|---|---|---:|---:|---:|",
            thousands(self.small_rows),
            thousands(self.rows)
        );
        for dialect in self.dialects() {
            for method in [
                Method::Host,
                Method::HostBulk,
                Method::Native,
                Method::Python,
            ] {
                let rss = |rows| self.summary(dialect, method, rows).and_then(|s| s.max_rss);
                let (Some(small), Some(large)) = (rss(self.small_rows), rss(self.rows)) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "| {dialect} | {} | {} | {} | {:+.1}% |",
                    method.label_on(dialect),
                    mib(small),
                    mib(large),
                    (large as f64 / small as f64 - 1.0) * 100.0
                );
            }
        }

        let _ = writeln!(
            out,
            "\n## Start-up of an already-applied migration (median of {} runs)\n",
            self.startup.first().map_or(0, |s| s.runs)
        );
        let _ = writeln!(
            out,
            "| database | `dmig-host --version` | second run, warm cache | difference | first run, empty cache | peak RSS warm / cold |\n|---|---:|---:|---:|---:|---:|"
        );
        for s in &self.startup {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} / {} |",
                s.dialect,
                seconds(s.version),
                seconds(s.warm),
                seconds(s.warm.saturating_sub(s.version)),
                seconds(s.cold),
                mib(s.warm_rss),
                mib(s.cold_rss)
            );
        }

        let _ = writeln!(out, "\n## Targets\n");
        let dialects = self.dialects();
        let header: Vec<_> = dialects.iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            out,
            "| target | {} |\n|---|{}",
            header.join(" | "),
            "---|".repeat(dialects.len())
        );
        let row = |out: &mut String, name: &str, cell: &dyn Fn(Dialect) -> String| {
            let cells: Vec<_> = dialects.iter().map(|d| cell(*d)).collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        };
        row(&mut out, "(a) at least 0.8 of (b)", &|d| {
            verdict(
                self.ratio(d, Method::Host, Method::Native, self.rows),
                |r| r >= 0.8,
                |r| format!("{r:.2}"),
            )
        });
        row(
            &mut out,
            "(a) per-row writes at least 1.5x (d) on SQLite, 1.2x on PostgreSQL",
            &|d| {
                let need = if d == Dialect::Sqlite { 1.5 } else { 1.2 };
                verdict(
                    self.ratio(d, Method::Host, Method::Python, self.rows),
                    |r| r >= need,
                    |r| format!("{r:.2}"),
                )
            },
        );
        row(&mut out, "(e) bulk writes at least 1/3 of (c)", &|d| {
            verdict(
                self.ratio(d, Method::HostBulk, Method::SetBased, self.rows),
                |r| r >= 1.0 / 3.0,
                |r| format!("{r:.2}"),
            )
        });
        row(&mut out, "host peak RSS at most 64 MiB", &|d| {
            verdict(
                [self.small_rows, self.rows]
                    .iter()
                    .flat_map(|&rows| {
                        [Method::Host, Method::HostBulk]
                            .map(|m| self.summary(d, m, rows).and_then(|s| s.max_rss))
                    })
                    .flatten()
                    .max(),
                |b| b as f64 <= 64.0 * MIB,
                mib,
            )
        });
        row(
            &mut out,
            &format!(
                "host peak RSS within 10% from {} to {} rows",
                thousands(self.small_rows),
                thousands(self.rows)
            ),
            &|d| {
                verdict(
                    self.rss_growth(d),
                    |g| g.abs() <= 0.10,
                    |g| format!("{:+.1}%", g * 100.0),
                )
            },
        );
        row(
            &mut out,
            "second run at most 20 ms more than `--version`",
            &|d| {
                let s = self.startup.iter().find(|s| s.dialect == d);
                verdict(
                    s.map(|s| s.warm.saturating_sub(s.version)),
                    |extra| extra <= Duration::from_millis(20),
                    |extra| format!("+{}", seconds(extra)),
                )
            },
        );
        row(&mut out, "default limits within 10% of limits off", &|d| {
            verdict(
                self.ratio(
                    d,
                    Method::LibraryDefault,
                    Method::LibraryOff,
                    self.small_rows,
                ),
                |r| r >= 0.9,
                |r| format!("{r:.2}"),
            )
        });
        row(&mut out, "(`--fuel` vs (a), no target)", &|d| {
            verdict(
                self.ratio(d, Method::HostFuel, Method::Host, self.small_rows),
                |_| true,
                |r| format!("{r:.2}"),
            )
        });
        out
    }
}

fn verdict<T: Copy>(
    value: Option<T>,
    ok: impl Fn(T) -> bool,
    show: impl Fn(T) -> String,
) -> String {
    match value {
        None => "not measured".into(),
        Some(v) if ok(v) => format!("{} ✅", show(v)),
        Some(v) => format!("{} ❌ missed", show(v)),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn ratios_and_growth_come_from_medians() {
        let mut report = Report::new(1000, 100, 10, 1, (3, 1));
        report.versions.push((Dialect::Sqlite, "SQLite".into()));
        let mut add = |method, rows, ms, rss| {
            report.measurements.push(Measurement {
                dialect: Dialect::Sqlite,
                method,
                rows,
                wall: Duration::from_millis(ms),
                max_rss: Some(rss),
                cpu: Some(Duration::from_micros(ms * 500)),
                user: Some(Duration::from_micros(ms * 400)),
                system: Some(Duration::from_micros(ms * 100)),
            })
        };
        for ms in [100, 110, 400] {
            add(Method::Host, 1000, ms, 20 << 20);
        }
        for ms in [88, 90, 92] {
            add(Method::Native, 1000, ms, 10 << 20);
        }
        for ms in [120, 125, 115] {
            add(Method::Python, 1000, ms, 12 << 20);
        }
        add(Method::Host, 100, 20, 19 << 20);
        let ratio = report
            .ratio(Dialect::Sqlite, Method::Host, Method::Native, 1000)
            .unwrap();
        assert!((ratio - 90.0 / 110.0).abs() < 1e-9, "{ratio}");
        let growth = report.rss_growth(Dialect::Sqlite).unwrap();
        assert!((growth - (20.0 / 19.0 - 1.0)).abs() < 1e-9, "{growth}");
        let text = report.render();
        assert!(
            text.contains("| (a) at least 0.8 of (b) | 0.82 ✅ |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| SQLite | (a) dmig-host run, per-row writes | 19.0 MiB | 20.0 MiB | +5.3% |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| SQLite | (a) dmig-host run, per-row writes | 110.0 ms | 9,090 | 0.82 | 1.09 | 55.0 ms | 55.0 | 44.0 | 11.0 | 20.0 MiB |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| SQLite | (d) Python, stdlib sqlite3 | 120.0 ms | 8,333 | 0.75 | 1.00 | 60.0 ms | 60.0 | 48.0 | 12.0 | 12.0 MiB |"
            ),
            "{text}"
        );
    }
}
