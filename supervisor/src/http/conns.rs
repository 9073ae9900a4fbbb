//! HTTP connection slots: how many connections deskd holds at once, and who gives way.
//!
//! The cap is the configured `max_connections`, but never more than the open-files limit
//! leaves after [`crate::fdlimit::http_reserve`]: descriptors clients can never take, so
//! spawning a service or connecting to X never fails because of HTTP clients. At the cap a new
//! connection closes the oldest *idle* one (no request in progress: a client that has not
//! finished its request head, or a keep-alive connection between requests), so idle
//! connections cannot lock out `/readyz` or a real request; when every connection is busy,
//! the new one is answered `503` with `Retry-After` and closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long a new connection waits for an evicted one to let go of its slot.
const EVICT_WAIT: Duration = Duration::from_secs(1);

/// What a connection refused at the cap is sent before it is closed.
pub const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 51\r\nConnection: close\r\n\r\n\
{\"error\":\"too many connections: retry in a second\"}";

/// The slots of one accept loop.
pub struct Slots {
    cap: usize,
    sem: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

/// One open connection, as the slots see it.
#[derive(Default)]
pub struct Conn {
    in_flight: AtomicUsize,
    evict: CancellationToken,
}

impl Conn {
    /// Cancelled when the connection must close to make room.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evict
    }

    /// Counts a request in progress until the guard is dropped (when its response body has
    /// been sent): a busy connection is never evicted.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in progress on a [`Conn`].
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot held by one connection; freed on drop.
pub struct Held {
    slots: Arc<Slots>,
    id: u64,
    pub conn: Arc<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.slots.open).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slots {
    /// `cap` connections at once (at least 1).
    pub fn new(cap: usize) -> Arc<Slots> {
        let cap = cap.max(1);
        Arc::new(Slots {
            cap,
            sem: Arc::new(Semaphore::new(cap)),
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for a connection just accepted: at once when one is free, else after closing
    /// the oldest idle connection; `None` when every connection is busy.
    pub async fn take(self: &Arc<Self>) -> Option<Held> {
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !self.evict_oldest_idle() {
                    return None;
                }
                tokio::time::timeout(EVICT_WAIT, self.sem.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        lock(&self.open).insert(id, conn.clone());
        Some(Held {
            slots: self.clone(),
            id,
            conn,
            _permit: permit,
        })
    }

    /// Asks the oldest idle connection not already asked to close; false if there is none.
    fn evict_oldest_idle(&self) -> bool {
        let open = lock(&self.open);
        let victim = open
            .values()
            .find(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.evict.is_cancelled());
        match victim {
            Some(c) => {
                c.evict.cancel();
                true
            }
            // Someone else's eviction may be under way: wait for it rather than refuse.
            None => open.values().any(|c| c.evict.is_cancelled()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_make_room_busy_ones_do_not() {
        let slots = Slots::new(2);
        let a = slots.take().await.expect("a");
        let b = slots.take().await.expect("b");
        let _busy_b = b.conn.busy();
        // c evicts a (idle), not b (busy); a lets go when its task sees the eviction.
        let a_conn = a.conn.clone();
        let release = tokio::spawn(async move {
            a_conn.evicted().cancelled().await;
            drop(a);
        });
        let c = slots.take().await.expect("c takes a's slot");
        release.await.unwrap();
        assert!(!b.conn.evicted().is_cancelled());
        // Now b busy and c busy: a fourth is refused.
        let _busy_c = c.conn.busy();
        assert!(slots.take().await.is_none());
    }
}
