//! The guest's standard streams as wasix files.
//!
//! wasix's own host files hand every read and write to tokio's blocking pool and answer before
//! the bytes are written, so output could trail the exit status and interleave oddly with the
//! runtime's own. A stream here is the descriptor itself, read and written synchronously on the
//! guest's thread, like the wasmtime engine's: the guest's `fd_write` has happened when it
//! returns. Inherited streams are duplicates of the process's descriptors, written unbuffered.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use wasmbay_shim_core::{EngineError, Stdio};
use wasmer_wasix::virtual_fs::{self, NullFile, VirtualFile};

pub(crate) type BoxedFile = Box<dyn VirtualFile + Send + Sync + 'static>;

/// Which standard stream a [`Stdio`] is for; it decides what `Inherit` duplicates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// Turns one configured stream into the file the guest sees.
pub(crate) fn open(stdio: Stdio, stream: Stream) -> Result<BoxedFile, EngineError> {
    let file = match stdio {
        Stdio::Null => return Ok(Box::new(NullFile::default())),
        Stdio::File(file) => file,
        Stdio::Inherit => {
            let fd = match stream {
                Stream::Stdin => io::stdin().as_fd().try_clone_to_owned(),
                Stream::Stdout => io::stdout().as_fd().try_clone_to_owned(),
                Stream::Stderr => io::stderr().as_fd().try_clone_to_owned(),
            };
            File::from(fd.map_err(|e| {
                EngineError::WasiSetup(format!("cannot duplicate the process's {stream:?}: {e}"))
            })?)
        }
    };
    Ok(Box::new(HostStream { file }))
}

/// A host descriptor used synchronously (see the module docs).
#[derive(Debug)]
struct HostStream {
    file: File,
}

impl AsyncRead for HostStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = (&self.file).read(buf.initialize_unfilled());
        Poll::Ready(read.map(|n| buf.advance(n)))
    }
}

impl AsyncWrite for HostStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready((&self.file).write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for HostStream {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        (&self.file).seek(position).map(|_| ())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        // Pipes and terminals have no position; report 0 rather than failing the guest's call.
        Poll::Ready(Ok((&self.file).stream_position().unwrap_or(0)))
    }
}

impl VirtualFile for HostStream {
    fn last_accessed(&self) -> u64 {
        0
    }

    fn last_modified(&self) -> u64 {
        0
    }

    fn created_time(&self) -> u64 {
        0
    }

    fn size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn set_len(&mut self, _new_size: u64) -> virtual_fs::Result<()> {
        Err(virtual_fs::FsError::PermissionDenied)
    }

    fn unlink(&mut self) -> virtual_fs::Result<()> {
        Ok(())
    }

    fn poll_read_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Reads block on the guest's thread, so a stream is always "ready".
        Poll::Ready(Ok(1))
    }

    fn poll_write_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(8192))
    }
}
