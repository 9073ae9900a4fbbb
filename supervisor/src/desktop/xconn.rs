//! X connections with a deadline: every wait on the X server (a reply, room to write, the
//! connection setup) gives up after [`X_TIMEOUT`] without progress, so a server that stopped
//! answering (SIGSTOP, a client holding a server grab) costs a request at most that long and
//! ends in [`DesktopError::NoAnswer`] (`504`) instead of hanging a worker thread.
//!
//! Built from x11rb's parts: the display is parsed and the socket opened as `x11rb::connect`
//! does, but the stream's `poll` has a timeout. A connection that timed out is not used again
//! (a late reply would be out of step); callers drop it and reconnect.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use x11rb::errors::{ConnectError, ConnectionError};
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::reexports::x11rb_protocol::xauth::get_auth;
use x11rb::rust_connection::{DefaultStream, PollMode, RustConnection, Stream};
use x11rb::utils::RawFdContainer;

use super::DesktopError;

/// How long deskd waits for the X server at any one point.
pub const X_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection whose every wait has a deadline.
pub type XConn = RustConnection<DeadlineStream>;

/// x11rb's stream with a timeout on `poll`.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: DefaultStream,
    timeout: Duration,
}

/// The error of a wait that ran out; recognised by [`is_no_answer`].
#[derive(Debug, thiserror::Error)]
#[error("the X server did not answer within {}s", .0.as_secs())]
struct NoAnswer(Duration);

impl AsFd for DeadlineStream {
    /// The socket, for callers that wait on it themselves (the native stream's capture loop).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Stream for DeadlineStream {
    fn poll(&self, mode: PollMode) -> io::Result<()> {
        let mut flags = PollFlags::empty();
        if mode.readable() {
            flags |= PollFlags::POLLIN;
        }
        if mode.writable() {
            flags |= PollFlags::POLLOUT;
        }
        let ms = u16::try_from(self.timeout.as_millis()).unwrap_or(u16::MAX);
        loop {
            let mut fds = [PollFd::new(self.inner.as_fd(), flags)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        NoAnswer(self.timeout),
                    ))
                }
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read(&self, buf: &mut [u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.read(buf, fds)
    }

    fn write(&self, buf: &[u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.write(buf, fds)
    }

    fn write_vectored(
        &self,
        bufs: &[IoSlice<'_>],
        fds: &mut Vec<RawFdContainer>,
    ) -> io::Result<usize> {
        self.inner.write_vectored(bufs, fds)
    }
}

/// Whether `e` is a wait that ran out of time.
pub(crate) fn is_no_answer(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut && e.get_ref().is_some_and(|inner| inner.is::<NoAnswer>())
}

/// Connects to `display` as `x11rb::connect` does (same addresses, same Xauthority lookup),
/// with [`X_TIMEOUT`] on every wait, the connection setup included.
pub(crate) fn connect(display: &str) -> Result<(XConn, usize), DesktopError> {
    connect_within(display, X_TIMEOUT)
}

/// [`connect`] with another timeout.
pub(crate) fn connect_within(
    display: &str,
    timeout: Duration,
) -> Result<(XConn, usize), DesktopError> {
    let parsed = parse_display(Some(display))
        .map_err(|e| DesktopError::Unavailable(format!("X display {display:?}: {e}")))?;
    let screen = usize::from(parsed.screen);
    let mut last = None;
    for addr in parsed.connect_instruction() {
        match DefaultStream::connect(&addr) {
            Ok((inner, (family, address))) => {
                let (name, data) = get_auth(family, &address, parsed.display)
                    .unwrap_or(None)
                    .unwrap_or_default();
                let stream = DeadlineStream { inner, timeout };
                return RustConnection::connect_to_stream_with_auth_info(
                    stream, screen, name, data,
                )
                .map(|conn| (conn, screen))
                .map_err(|e| connect_error(e, display));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(DesktopError::Unavailable(match last {
        Some(e) => format!("cannot connect to X display {display}: {e}"),
        None => format!("no way to connect to X display {display}"),
    }))
}

fn connect_error(e: ConnectError, display: &str) -> DesktopError {
    match e {
        ConnectError::IoError(io) if is_no_answer(&io) => DesktopError::NoAnswer(format!(
            "the X server on {display} did not answer within {}s (connection setup)",
            X_TIMEOUT.as_secs()
        )),
        other => DesktopError::Unavailable(format!("{display}: {other}")),
    }
}

/// Whether a connection error is a wait that ran out.
pub(crate) fn is_timeout(e: &ConnectionError) -> bool {
    matches!(e, ConnectionError::IoError(io) if is_no_answer(io))
}
