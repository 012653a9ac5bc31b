//! Turning a wasmtime error into one line an operator understands.

use wasmtime::Trap;

use super::SandboxBuilder;
use super::state::HostTrap;

/// One line explaining why the guest stopped. `stderr` is what the guest
/// printed, where a Rust panic leaves its location and message.
pub(super) fn explain(error: &wasmtime::Error, stderr: &str, config: &SandboxBuilder) -> String {
    if let Some(host) = error.downcast_ref::<HostTrap>() {
        return host.to_string();
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => format!(
                "step exceeded {} s (guest code was still running)",
                config.step_timeout.as_secs_f64()
            ),
            Trap::OutOfFuel => format!(
                "guest ran out of fuel (budget {} per step)",
                config.fuel.unwrap_or_default()
            ),
            Trap::StackOverflow => "guest overflowed its stack (unbounded recursion?)".to_owned(),
            // Rust and C keep their stack in linear memory, below the data:
            // overflowing it is an out-of-bounds access, not a wasm stack
            // overflow.
            Trap::MemoryOutOfBounds => {
                "guest accessed memory out of bounds: its stack most likely \
                 overflowed (unbounded recursion?), or unsafe code went wrong"
                    .to_owned()
            }
            Trap::UnreachableCodeReached => match panic_message(stderr) {
                Some(panic) => format!("guest panicked at {panic}"),
                None => "guest trapped: wasm `unreachable` executed (an abort)".to_owned(),
            },
            other => format!("guest trapped: {other}"),
        };
    }
    // Anything else (a failing host import, instantiation) keeps its chain.
    format!("guest failed: {error:#}").replace('\n', " ")
}

/// `src/lib.rs:12:5: message` from Rust's panic output, if there is one.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")? + "panicked at ".len();
    let rest = &stderr[start..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect::<Vec<_>>()
        .join(" ");
    Some(if message.is_empty() {
        location.trim().to_owned()
    } else {
        format!("{}: {}", location.trim(), message.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rust_panics() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nindex out of bounds: the len is 3 but the index is 5\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "src/lib.rs:12:5: index out of bounds: the len is 3 but the index is 5"
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}
