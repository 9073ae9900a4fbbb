//! neko's video from deskd's own encoder: neko sends over WebRTC the H.264 frames the native
//! stream already makes, instead of capturing and encoding the screen a second time.
//!
//! neko's video pipeline becomes `tcpclientsrc` from a loopback port deskd listens on (chosen
//! at start, given in neko's command line, see [`crate::neko`]) through `h264parse` to its
//! appsink. Each connection is one neko pipeline, which neko makes for its first WebRTC viewer
//! and ends with its last: the connection joins the native stream's hub as a consumer of
//! H.264 frames only, so the screen is captured and encoded once for every viewer of either
//! kind, only when it changes, and not at all while nobody watches.
//!
//! - [`h264`]: the encoder's frames framed for `h264parse`, repeat frames, and patch frames
//!   (repeats that carry the macroblocks of a small change the encoder has not coded yet,
//!   sent in place of repeats until its frame comes: the change is shown at the next tick,
//!   not one encode later).
//! - [`pace`]: when each access unit goes and how long it lasts (half a frame period while
//!   the screen changes, a whole one while it does not), because that is what neko's
//!   timestamps say; [`timing`] makes `h264parse` give each unit that duration.
//! - [`units`]: one connection's state, and the bytes it sends at each tick.
//!
//! neko never passes a browser's key frame request on (its RTCP reader only feeds metrics),
//! and a viewer joining a running pipeline waits for a key frame. The signaling relay sees
//! neko tell a browser its video is on, and asks ([`NekoFeed::request_key_frames`]) for a
//! key frame then and once more [`KEY_AGAIN`] later, for a browser whose peer connection was
//! not up yet.
//!
//! The port is on 127.0.0.1 and takes at most [`MAX_CONNECTIONS`] at once; it carries the
//! picture of the screen, which any local process that may open the X display can read too.

pub mod h264;
pub mod pace;
pub mod timing;
mod units;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::stream::hub::{Hub, Out};
use crate::stream::protocol;
use units::Feed;

/// Connections served at once: neko runs one pipeline per video id (deskd gives it one);
/// the second is for a pipeline made while the last one is still closing.
pub const MAX_CONNECTIONS: usize = 2;

/// How long after the last change of the picture its access units last half a period.
pub const ACTIVE_FOR: Duration = Duration::from_secs(1);

/// The second key frame after neko turned a browser's video on.
pub const KEY_AGAIN: Duration = Duration::from_secs(1);

/// A write to neko that takes longer than this ends the connection (neko is stuck; its
/// pipeline is made again by the next viewer).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The feed of one display.
pub struct NekoFeed {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    hub: Hub,
    /// Hub ids of the connections now open.
    sessions: Mutex<Vec<u64>>,
    /// When the second key frame of the last request is due.
    again_at: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn key_frames_now(&self) {
        for &id in lock(&self.sessions).iter() {
            self.hub.request_key_frame(id);
        }
    }

    /// The second key frame, once due.
    fn key_frames_due(&self, now: Instant) {
        let due = {
            let mut again = lock(&self.again_at);
            let due = again.is_some_and(|t| t <= now);
            if due {
                *again = None;
            }
            due
        };
        if due {
            self.key_frames_now();
        }
    }
}

impl NekoFeed {
    /// Listens on a free loopback port and serves neko's connections to it with `hub`'s
    /// frames, one access unit every `1/fps` s, until `closing` is cancelled.
    pub async fn start(
        hub: Hub,
        fps: u32,
        closing: CancellationToken,
    ) -> std::io::Result<NekoFeed> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hub,
            sessions: Mutex::new(Vec::new()),
            again_at: Mutex::new(None),
        });
        tokio::spawn(accept(listener, shared.clone(), fps.max(1), closing));
        tracing::info!(%addr, fps, "neko video feed listening");
        Ok(NekoFeed { addr, shared })
    }

    /// Where neko's pipeline connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A browser's video was turned on: a key frame for it now, and one more [`KEY_AGAIN`]
    /// later.
    pub fn request_key_frames(&self) {
        *lock(&self.shared.again_at) = Some(Instant::now() + KEY_AGAIN);
        self.shared.key_frames_now();
    }
}

impl std::fmt::Debug for NekoFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NekoFeed")
            .field("addr", &self.addr)
            .finish()
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, fps: u32, closing: CancellationToken) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (conn, peer) = tokio::select! {
            _ = closing.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!(error = %e, "neko video feed: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, "neko video feed: refused a connection, {MAX_CONNECTIONS} are open already");
            continue;
        }
        let (shared, open, closing) = (shared.clone(), open.clone(), closing.clone());
        tokio::spawn(async move {
            if let Err(reason) = serve(&shared, conn, fps, &closing).await {
                tracing::info!(%peer, "neko video feed connection ended: {reason}");
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Removes a connection's hub id from the open sessions when it ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.shared.sessions).retain(|&i| i != self.id);
    }
}

/// One neko pipeline: frames out at the pace of [`pace::Pace`] until neko closes, the
/// stream ends or deskd stops.
async fn serve(
    shared: &Shared,
    mut conn: TcpStream,
    fps: u32,
    closing: &CancellationToken,
) -> Result<(), String> {
    let _ = conn.set_nodelay(true);
    let mut viewer = shared
        .hub
        .join_feed()
        .map_err(|e| format!("native stream: {e}"))?;
    lock(&shared.sessions).push(viewer.id);
    let _registered = Registered {
        shared,
        id: viewer.id,
    };
    tracing::info!("neko video feed connected");
    write(&mut conn, &h264::stream_start()).await?;
    let mut feed = Feed::new(fps);
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            _ = closing.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(feed.pace.next().into()) => {
                let now = Instant::now();
                shared.key_frames_due(now);
                if let Some(out) = feed.units(now) {
                    write(&mut conn, &out).await?;
                }
            }
            msg = viewer.rx.recv() => match msg {
                Some(Out::Binary(b)) => {
                    if let Some((_, au)) = protocol::video_payload(&b) {
                        feed.frame(au, Instant::now());
                        if let Some(tick) = feed.early(Instant::now()) {
                            if let Some(out) = feed.units(tick) {
                                write(&mut conn, &out).await?;
                            }
                        }
                    }
                }
                Some(Out::Macroblocks(mbs)) => feed.macroblocks(mbs, Instant::now()),
                Some(Out::Closed(reason)) => return Err(format!("native stream: {reason}")),
                Some(_) => {}
                None => return Err("native stream ended".into()),
            },
            r = conn.read(&mut scratch) => match r {
                // neko only reads; its end closing is the pipeline ending.
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
        }
    }
}

async fn write(conn: &mut TcpStream, data: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, conn.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "neko read nothing for {}s",
            WRITE_TIMEOUT.as_secs()
        )),
    }
}
