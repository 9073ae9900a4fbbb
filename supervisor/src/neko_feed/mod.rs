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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::stream::hub::{Hub, Out};
use crate::stream::macroblocks::Macroblocks;
use crate::stream::protocol;
use pace::Slot;

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
    let mut bits = h264::Bitstream::default();
    let mut waiting: Vec<Bytes> = Vec::new();
    // The macroblocks changed since the last of the encoder's frames that came.
    let mut changed: Option<Arc<Macroblocks>> = None;
    let mut pace = pace::Pace::new(Instant::now(), Duration::from_secs(1) / fps);
    let mut timing = Some(timing::Retimer::new(fps));
    // The last change of the picture the feed heard of (a frame after the connection's first,
    // or changed macroblocks).
    let mut changed_at: Option<Instant> = None;
    let mut said_unsupported = false;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            _ = closing.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(pace.next().into()) => {
                let now = Instant::now();
                shared.key_frames_due(now);
                let slot = match (&timing, changed_at) {
                    (Some(_), Some(t)) if now.duration_since(t) < ACTIVE_FOR => Slot::Short,
                    _ => Slot::Long,
                };
                let Some(plan) = pace.plan(now, waiting.len(), slot) else {
                    continue;
                };
                let mut out = Vec::new();
                // A slot of its own shows the newest picture: the encoder's last frame with
                // the macroblocks changed since. Slots caught up before waiting frames
                // repeat what was shown.
                let repeat = match &changed {
                    Some(mbs) if waiting.is_empty() => bits.patch(mbs).or_else(|| bits.repeat()),
                    _ => bits.repeat(),
                };
                let mut ticks = plan.catch_up;
                if waiting.is_empty() {
                    ticks += slot.ticks();
                }
                // Before the first picture there is nothing to repeat, and nothing stamped
                // yet: those slots pass unsent.
                if let Some(r) = &repeat {
                    for s in pace::catch_up(plan.catch_up) {
                        out.extend(h264::frame(&timed(&mut timing, r, s)));
                    }
                    if waiting.is_empty() {
                        out.extend(h264::frame(&timed(&mut timing, r, slot)));
                    }
                }
                for au in waiting.drain(..) {
                    if let Err(e) = bits.saw(&au) {
                        if !said_unsupported {
                            tracing::warn!("neko video feed: no repeat frames for this stream: {e}");
                            said_unsupported = true;
                        }
                    }
                    out.extend(h264::frame(&timed(&mut timing, &au, slot)));
                    ticks += slot.ticks();
                }
                pace.sent(ticks);
                if !out.is_empty() {
                    write(&mut conn, &out).await?;
                }
            }
            msg = viewer.rx.recv() => match msg {
                Some(Out::Binary(b)) => {
                    if let Some((_, au)) = protocol::video_payload(&b) {
                        // The connection's first frame is the picture as it is, not a
                        // change. (A key frame asked for later counts as one: the encoder
                        // makes key frames of large changes too.)
                        if !bits.is_empty() || !waiting.is_empty() {
                            changed_at = Some(Instant::now());
                        }
                        waiting.push(au);
                        // It carries every change before it.
                        changed = None;
                    }
                }
                Some(Out::Macroblocks(mbs)) => {
                    changed = Some(mbs);
                    changed_at = Some(Instant::now());
                }
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

/// `au` lasting `slot`, while the stream can be retimed; as it is (a whole period) once it
/// cannot, for the rest of the connection.
fn timed(timing: &mut Option<timing::Retimer>, au: &[u8], slot: Slot) -> Vec<u8> {
    if let Some(t) = timing {
        match t.access_unit(au, slot) {
            Ok(timed) => return timed,
            Err(e) => {
                tracing::warn!("neko video feed: frames last one period from now on: {e}");
                *timing = None;
            }
        }
    }
    au.to_vec()
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
