//! Runs one program as a child process and measures it from outside: wall
//! time from spawn to exit, its CPU time in user space and in the kernel, and
//! its peak resident set size, as the kernel accounted them (`wait4`'s
//! `rusage`: that process alone, not the benchmark).

use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// One finished child process.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size, in bytes.
    pub max_rss: u64,
    /// CPU time the process used, user and system together: unlike wall
    /// time, barely disturbed by other load on the machine.
    pub cpu: Duration,
    /// The part of `cpu` spent in user space (`ru_utime`).
    pub user: Duration,
    /// The part of `cpu` spent in the kernel on the process's behalf
    /// (`ru_stime`): system calls, waking threads, I/O.
    pub system: Duration,
    pub stdout: String,
}

/// Runs `command` to completion; fails unless it exits with 0. `what`
/// names it in errors.
pub fn run(what: &str, command: &mut Command) -> Result<Measured> {
    let program = std::path::PathBuf::from(command.get_program());
    let io = |source| BenchError::Io {
        what: "running a child process",
        path: program.clone(),
        source,
    };
    // Files, not pipes: nothing has to read while the child runs, so the
    // child never blocks on a full pipe and the parent only waits.
    let mut out = tempfile::tempfile().map_err(io)?;
    let mut err = tempfile::tempfile().map_err(io)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().map_err(io)?))
        .stderr(Stdio::from(err.try_clone().map_err(io)?));
    let started = Instant::now();
    let child = command.spawn().map_err(io)?;
    let (status, max_rss, user, system) = wait4(child.id()).map_err(io)?;
    let wall = started.elapsed();
    let read = |file: &mut std::fs::File| -> std::io::Result<String> {
        let mut text = String::new();
        file.rewind()?;
        file.read_to_string(&mut text)?;
        Ok(text)
    };
    let stdout = read(&mut out).map_err(io)?;
    let stderr = read(&mut err).map_err(io)?;
    if status != Some(0) {
        return Err(BenchError::Child {
            what: what.to_owned(),
            status: status.map_or("a signal".into(), |c| format!("code {c}")),
            stderr: stderr.trim().replace('\n', " / "),
        });
    }
    Ok(Measured {
        wall,
        max_rss,
        cpu: user + system,
        user,
        system,
        stdout,
    })
}

/// Waits for `pid` and returns its exit code (None if a signal ended it),
/// its peak RSS in bytes and the CPU time it used in user space and in the
/// kernel.
fn wait4(pid: u32) -> std::io::Result<(Option<i32>, u64, Duration, Duration)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid when zeroed; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped (std::process::Child
        // does not reap on drop); the pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // Linux reports ru_maxrss in KiB.
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((code, max_rss, time(usage.ru_utime), time(usage.ru_stime)))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    match values.len() {
        0 => Duration::ZERO,
        n if !n.is_multiple_of(2) => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        let m = run(
            "sh",
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
        )
        .unwrap();
        assert_eq!(m.stdout, "out\n");
        assert!(m.max_rss > 0);
        assert_eq!(m.cpu, m.user + m.system);
    }

    #[test]
    fn a_failing_child_is_an_error() {
        let e = run(
            "sh",
            Command::new("sh").args(["-c", "echo nope >&2; exit 3"]),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "sh exited with code 3: nope");
    }

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&mut [ms(4), ms(1), ms(2), ms(3)]), ms(2) + ms(1) / 2);
    }
}
