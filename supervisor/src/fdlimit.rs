//! The open-files limit (`RLIMIT_NOFILE`): as an init, deskd raises its own soft limit to the
//! hard one at start ([`raise`]), so HTTP clients and services' pipes have room, and hands
//! every service the limit it would have had without deskd ([`for_services`], restored in the
//! child before exec: programs that `select()` on descriptors expect the usual 1024).
//! [`http_reserve`] is what the HTTP server leaves unused for supervision.

use std::sync::OnceLock;

use nix::libc;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// deskd's limit (soft, hard) before [`raise`]: what services get.
static ORIGINAL: OnceLock<(libc::rlim_t, libc::rlim_t)> = OnceLock::new();

/// Descriptors the HTTP server never hands to clients, at least: services' pipes, X
/// connections, the relay's WebSockets (which leave the HTTP connection count).
pub const MIN_RESERVE: u64 = 128;

/// Raises the soft open-files limit to the hard limit, remembering the original for services.
/// Returns (original soft, new soft). A failure leaves the limit as it was (and says why).
pub fn raise() -> Result<(u64, u64), String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    let _ = ORIGINAL.set((soft, hard));
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| format!("raising the open-files limit from {soft} to {hard}: {e}"))?;
    }
    Ok((soft, hard))
}

/// The limit (soft, hard) to set in a service before exec, if deskd changed its own.
pub fn for_services() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let (soft, hard) = *ORIGINAL.get()?;
    let current = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    (current != (soft, hard)).then_some((soft, hard))
}

/// deskd's soft open-files limit now.
pub fn soft_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Descriptors the HTTP server leaves for supervision out of a soft limit of `limit`: a
/// quarter, at least [`MIN_RESERVE`].
pub fn http_reserve(limit: u64) -> u64 {
    (limit / 4).max(MIN_RESERVE)
}

/// HTTP connections allowed at once: `configured`, but never more than the soft limit minus
/// [`http_reserve`] (at least 1).
pub fn http_connection_cap(configured: usize, limit: u64) -> usize {
    let room = limit.saturating_sub(http_reserve(limit)).max(1);
    configured
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_follows_the_limit() {
        assert_eq!(http_connection_cap(1024, 1024), 768);
        assert_eq!(http_connection_cap(1024, 1 << 20), 1024);
        assert_eq!(http_connection_cap(1024, 400), 272);
        assert_eq!(http_connection_cap(1024, 100), 1);
        assert_eq!(http_connection_cap(16, 1024), 16);
    }
}
