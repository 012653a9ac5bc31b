//! Who a lock holder is, precisely enough to tell a dead holder from a live
//! one without waiting for its lease.
//!
//! Host name and pid alone cannot: a host killed and restarted in the same
//! container has the same host name and (as PID 1, say) the same pid. So
//! every holder also records, in `dmig_locks.instance`, one line of
//! `key=value` fields:
//!
//! * `id`: 128 random bits drawn once per process: a restarted process
//!   always has a new one;
//! * `boot`: the kernel's boot id (`/proc/sys/kernel/random/boot_id`), the
//!   same for every container on one kernel, new after a reboot;
//! * `pidns`: the inode of the process's PID namespace (`/proc/self/ns/pid`);
//! * `start`: the process's start time in clock ticks since boot
//!   (`/proc/self/stat`, field 22), which tells a reused pid apart;
//! * `alive`: on SQLite, the name of a file beside the database that the
//!   holder keeps locked (`flock`) while it holds the lock. The kernel
//!   releases that lock the moment the process dies, however it dies, and
//!   every process on the same kernel sees it, whatever its PID namespace.
//!
//! [`Identity::is_dead`] reads them. What it can and cannot tell:
//!
//! * Same kernel (same `boot`): the `alive` file decides (locked: alive;
//!   unlocked or gone: dead), across containers sharing the database's
//!   directory through a volume. Without one (the directory was read-only),
//!   a holder in the same PID namespace is dead if its pid is gone or now
//!   belongs to a process that started at another time; a holder in another
//!   PID namespace is invisible, so it counts as alive until its lease ends.
//! * Another kernel (another machine, or this one after a reboot, with the
//!   same host name): nothing local can tell; the lease decides.
//! * A holder on another host: the lease decides.
//! * A row written by a dmig-host too old to record an identity: dead if its
//!   pid is gone from this machine or is this process's own pid (this process
//!   did not write it), as before.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's identity, read once.
pub(super) fn this_process() -> &'static Identity {
    static THIS: OnceLock<Identity> = OnceLock::new();
    THIS.get_or_init(|| {
        let mut id = [0u8; 16];
        // Without randomness the time and pid still make a new id per
        // process start.
        if getrandom::fill(&mut id).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            id = (nanos ^ u128::from(std::process::id()) << 96).to_le_bytes();
        }
        Identity {
            id: hex::encode(id),
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            pidns: pid_namespace(),
            start: start_time("self"),
            alive: None,
        }
    })
}

/// A lock holder's identity, as stored in `dmig_locks.instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub boot: Option<String>,
    pub pidns: Option<u64>,
    pub start: Option<u64>,
    /// The liveness file's name, in the database's directory.
    pub alive: Option<String>,
}

impl Identity {
    /// This process's identity with the liveness file `alive`.
    pub(super) fn with_alive(&self, alive: Option<&AliveFile>) -> Identity {
        Identity {
            alive: alive.map(|a| a.name.clone()),
            ..self.clone()
        }
    }

    /// The stored form: `id=… boot=… pidns=… start=… alive=…`, `-` for
    /// unknown.
    pub(super) fn render(&self) -> String {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "id={} boot={} pidns={} start={} alive={}",
            self.id,
            or_dash(self.boot.clone()),
            or_dash(self.pidns.map(|n| n.to_string())),
            or_dash(self.start.map(|n| n.to_string())),
            or_dash(self.alive.clone()),
        )
    }

    /// Reads the stored form; `None` if it is not one (then the row counts
    /// as written by an older host).
    pub(super) fn parse(text: &str) -> Option<Identity> {
        let mut identity = Identity {
            id: String::new(),
            boot: None,
            pidns: None,
            start: None,
            alive: None,
        };
        for field in text.split(' ') {
            let (key, value) = field.split_once('=')?;
            let known = (value != "-").then(|| value.to_owned());
            match key {
                "id" => identity.id = value.to_owned(),
                "boot" => identity.boot = known,
                "pidns" => identity.pidns = known.and_then(|v| v.parse().ok()),
                "start" => identity.start = known.and_then(|v| v.parse().ok()),
                // A file name only: nothing may point outside the directory.
                "alive" => identity.alive = known.filter(|v| is_alive_name(v)),
                _ => {}
            }
        }
        (!identity.id.is_empty()).then_some(identity)
    }

    /// Whether the process this identity describes, recorded with `pid` by a
    /// holder on this host, is certainly gone (see the module's
    /// documentation). `dir` is the SQLite database's directory, where
    /// liveness files live (`None` on the servers, or for an in-memory
    /// database).
    pub(super) fn is_dead(&self, pid: u32, dir: Option<&Path>) -> bool {
        let me = this_process();
        if self.boot.is_none() || self.boot != me.boot {
            return false;
        }
        if let (Some(name), Some(dir)) = (&self.alive, dir) {
            match probe(&dir.join(name)) {
                Probe::Dead => return true,
                Probe::Alive => return false,
                Probe::Unknown => {}
            }
        }
        if self.pidns.is_none() || self.pidns != me.pidns {
            return false;
        }
        match start_time(&pid.to_string()) {
            None => !Path::new(&format!("/proc/{pid}")).exists(),
            Some(started) => self.start.is_some_and(|s| s != started),
        }
    }
}

/// Whether `name` can be a liveness file's name (and nothing else).
fn is_alive_name(name: &str) -> bool {
    name.starts_with('.')
        && name.ends_with(".dmig-alive")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// What a liveness file says of its holder.
enum Probe {
    Alive,
    Dead,
    /// It could not be checked (permissions, a filesystem without locks).
    Unknown,
}

/// Tries the liveness file's lock: free means its holder died. A file that
/// is not there tells nothing: the database may be shared with another
/// container as a single bind-mounted file, so the holder's directory is not
/// this one. Reading never removes the file (a second look must see what the
/// first saw); [`remove_dead`] does, once the lock has been taken over.
fn probe(path: &Path) -> Probe {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return Probe::Unknown;
    };
    match file.try_lock() {
        Ok(()) => Probe::Dead,
        Err(TryLockError::WouldBlock) => Probe::Alive,
        Err(TryLockError::Error(_)) => Probe::Unknown,
    }
}

/// Removes the liveness file `name` in `dir` of a holder whose lock was
/// taken over, if it is still unlocked (its holder is gone; nobody else
/// locks a file of that name).
pub(super) fn remove_dead(dir: &Path, name: &str) {
    if !is_alive_name(name) {
        return;
    }
    let path = dir.join(name);
    if let Ok(file) = OpenOptions::new().read(true).write(true).open(&path)
        && file.try_lock().is_ok()
    {
        let _ = std::fs::remove_file(&path);
    }
}

/// A file beside the SQLite database, locked for as long as this process
/// holds a migration's lock; removed when dropped (the kernel would release
/// the lock anyway when the process dies).
#[derive(Debug)]
pub(super) struct AliveFile {
    name: String,
    path: PathBuf,
    _file: File,
}

impl AliveFile {
    /// Creates and locks a new liveness file in `dir`, or `None` when that
    /// is not possible (a read-only directory, a filesystem without locks):
    /// the holder then goes without, and is told apart by pid and start time
    /// only.
    pub(super) fn create(dir: &Path, database: &str) -> Option<AliveFile> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).ok()?;
        let stem: String = database
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let name = format!(".{stem}.{}.dmig-alive", hex::encode(random));
        let path = dir.join(&name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        if file.try_lock().is_err() {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(AliveFile {
            name,
            path,
            _file: file,
        })
    }
}

impl Drop for AliveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The inode of this process's PID namespace, from `pid:[4026531836]`.
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks
/// since boot; `None` when there is no such process (or no /proc).
fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_paths() {
        let me = this_process();
        assert_eq!(me.id.len(), 32);
        assert_eq!(Identity::parse(&me.render()).as_ref(), Some(me));
        let evil = format!("{} alive=../../etc/passwd", me.render());
        assert_eq!(Identity::parse(&evil).unwrap().alive, None);
        assert_eq!(Identity::parse("host:1:2026"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn tells_a_restarted_process_from_a_live_one() {
        let me = this_process();
        let pid = std::process::id();
        // This very pid, but a process that started at another time: gone.
        let earlier = Identity {
            id: "0".repeat(32),
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        assert!(earlier.is_dead(pid, None));
        // The same start time: this process, alive.
        assert!(
            !Identity {
                id: "0".repeat(32),
                ..me.clone()
            }
            .is_dead(pid, None)
        );
        // Another PID namespace, no liveness file: cannot tell, alive.
        let elsewhere = Identity {
            pidns: me.pidns.map(|n| n + 1),
            ..earlier.clone()
        };
        assert!(!elsewhere.is_dead(pid, None));
        // ... unless its liveness file says otherwise.
        let dir = tempfile::tempdir().unwrap();
        let alive = AliveFile::create(dir.path(), "app.db").unwrap();
        let held = elsewhere.with_alive(Some(&alive));
        assert!(!held.is_dead(pid, Some(dir.path())));
        // A holder that is killed leaves its file behind, unlocked: dead,
        // however often it is read.
        drop(alive);
        let name = ".app.db.0011223344556677.dmig-alive".to_owned();
        let path = dir.path().join(&name);
        File::create(&path).unwrap();
        let held = Identity {
            alive: Some(name.clone()),
            ..elsewhere.clone()
        };
        assert!(held.is_dead(pid, Some(dir.path())));
        assert!(held.is_dead(pid, Some(dir.path())));
        remove_dead(dir.path(), &name);
        assert!(!path.exists());
        // A file that is not there (the database shared as a single file,
        // its holder's directory elsewhere) tells nothing: alive.
        assert!(!held.is_dead(pid, Some(dir.path())));
    }
}
