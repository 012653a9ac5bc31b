//! Bounded capture of a guest's stdout and stderr.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A guest output stream kept in memory up to a fixed size. Output past the
/// cap is dropped and counted rather than failing the guest: printing must
/// never be a way to crash a migration, or to grow the host's memory.
#[derive(Clone, Debug)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl CapturedOutput {
    /// A capture that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    /// Everything kept so far, lossily decoded as UTF-8.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// Takes what was kept so far, leaving the capture empty, and the number of
    /// bytes dropped since the last take.
    pub fn take(&self) -> (String, u64) {
        let mut buffer = self.lock();
        let bytes = std::mem::take(&mut buffer.bytes);
        let dropped = std::mem::take(&mut buffer.dropped);
        (String::from_utf8_lossy(&bytes).into_owned(), dropped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        // A panic while holding this lock cannot leave the buffer invalid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut buffer = self.lock();
        let room = buffer.capacity.saturating_sub(buffer.bytes.len());
        let kept = room.min(buf.len());
        buffer.bytes.extend_from_slice(&buf[..kept]);
        buffer.dropped += (buf.len() - kept) as u64;
        // Report everything as written: the guest must not block or fail.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn keeps_up_to_capacity_and_counts_the_rest() {
        let out = CapturedOutput::new(5);
        let mut writer = out.clone();
        writer.write_all(b"hello world").await.unwrap();
        assert_eq!(out.contents(), "hello");
        assert_eq!(out.take(), ("hello".to_owned(), 6));
        assert_eq!(out.take(), (String::new(), 0));
    }
}
