//! One capture + encode loop per display, shared by every viewer: encode once, send to each.
//!
//! The loop runs on a dedicated OS thread, and only while at least one viewer is connected
//! (the last one leaving ends it and closes its X connection). It sleeps in `poll` on the X
//! connection and a wake socket: damage after idle is captured at once, frames are at most
//! `max_fps` apart, a static screen encodes nothing. The pointer position is polled at the
//! frame rate while it moves and at [`POINTER_RESTING_POLL`] once it has rested for
//! [`POINTER_REST`] (a round trip to the X server 60 times a second was most of the idle
//! cost), and not at all while neko's feed is the only viewer (it draws no cursor). One
//! refinement frame follows the last change by [`REFINE_AFTER`], so a picture that settled
//! is sent once more at the encoder's better quality (the rate controller spends more bits
//! when the picture stops changing). A small
//! change also goes out at once as pixels, and a box of one colour as a fill, ahead of its
//! encoded frame ([`super::tile`]); for neko's feed, the changed macroblocks' samples
//! ([`super::macroblocks`]), until the encoder's frame carries the change.
//!
//! A viewer asks for H.264 or, if its browser has no WebCodecs, JPEG images of the changed
//! boxes ([`super::image`]); each is made only while a viewer wants it, once for all of them.
//!
//! Each viewer has a bounded queue ([`VIEWER_QUEUE`] messages). A viewer whose queue is full
//! has frames dropped until the next key frame, which is requested once its queue has room
//! again; memory per viewer is bounded by the queue. A joining viewer gets a key frame (and
//! the `hello` configuration, the cursor image and position) at once.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::capture::Capture;
use super::capture::{Damage, Rect};
use super::clipboard;
use super::convert::I420;
use super::encoder::{codec_string, Encoder, EncoderSettings};
use super::image::{self, Dirty};
use super::macroblocks::{self, Macroblocks};
use super::protocol::{self, Codec};
use super::scroll;
use super::tile;
use crate::metrics::Metrics;

/// Messages queued per viewer (video frames, cursor, configuration).
pub const VIEWER_QUEUE: usize = 16;
/// The most changed macroblocks sent to neko's feed ahead of the encoder's frame (about
/// 18 KiB of samples); a larger change waits for the encoder.
pub const MAX_PATCH_MACROBLOCKS: usize = 48;
/// The refinement frame comes this long after the last change.
pub const REFINE_AFTER: Duration = Duration::from_millis(150);

/// How long the pointer must not move before it is polled at [`POINTER_RESTING_POLL`].
pub const POINTER_REST: Duration = Duration::from_secs(1);

/// The pointer poll period once it rests: the first move after a rest shows this late at most.
pub const POINTER_RESTING_POLL: Duration = Duration::from_millis(100);

/// When to ask the X server for the pointer again: at the frame interval while it moves, less
/// often once it has rested (never less often than the frame interval itself).
fn pointer_poll_period(since_moved: Duration, frame_interval: Duration) -> Duration {
    if since_moved >= POINTER_REST {
        POINTER_RESTING_POLL.max(frame_interval)
    } else {
        frame_interval
    }
}

/// What a viewer's connection is asked to send.
#[derive(Debug, Clone)]
pub enum Out {
    /// The stream's size and codec: `hello` when first, `resize` after.
    Config {
        width: u16,
        height: u16,
        codec: String,
    },
    /// A ready binary message (video frame, cursor).
    Binary(Bytes),
    /// neko's feed only: the macroblocks changed since the last H.264 frame, as they are now
    /// (every one changed since, so they are shown with that frame's picture).
    Macroblocks(Arc<Macroblocks>),
    /// The desktop's clipboard has this text now (control viewers only).
    Clipboard(String),
    /// The display went away or cannot be streamed; close with 4503.
    Closed(String),
}

struct ViewerSlot {
    id: u64,
    codec: Codec,
    /// May send input, and is told the desktop's clipboard.
    control: bool,
    /// neko's video feed: takes the H.264 frames only (no tiles, cursor or clipboard).
    feed: bool,
    tx: mpsc::Sender<Out>,
    /// Waiting for a key frame (joined, or frames were dropped).
    needs_key: bool,
    /// The size and codec this viewer was last told.
    told: Option<(u16, u16, String)>,
    needs_cursor: bool,
}

#[derive(Default)]
struct State {
    viewers: Vec<ViewerSlot>,
    running: bool,
    next_id: u64,
    /// A viewer asked for a key frame.
    key_requested: bool,
}

struct Shared {
    display: String,
    settings: EncoderSettings,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Writing a byte here wakes the loop.
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

/// The stream of one display.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// A connected viewer: its queue; leaving (drop) removes it.
pub struct Viewer {
    pub id: u64,
    pub rx: mpsc::Receiver<Out>,
    hub: Hub,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut state = lock(&self.hub.shared.state);
        state.viewers.retain(|v| v.id != self.id);
        drop(state);
        self.hub.wake();
    }
}

impl Viewer {
    /// The queue and the hub, borrowed at once (a reader and a writer task).
    pub fn parts(&mut self) -> (&mut mpsc::Receiver<Out>, &Hub) {
        (&mut self.rx, &self.hub)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn new(
        display: &str,
        settings: EncoderSettings,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Hub> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Hub {
            shared: Arc::new(Shared {
                display: display.to_string(),
                settings,
                metrics,
                state: Mutex::new(State::default()),
                wake_tx,
                wake_rx,
            }),
        })
    }

    /// Viewer `id` asks for a key frame (after a decoder error).
    pub fn request_key_frame(&self, id: u64) {
        let mut state = lock(&self.shared.state);
        if let Some(v) = state.viewers.iter_mut().find(|v| v.id == id) {
            v.needs_key = true;
        }
        state.key_requested = true;
        drop(state);
        self.wake();
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        lock(&self.shared.state).viewers.len()
    }

    /// Adds a viewer of `codec` (`control`: not view-only), starting the loop if it is not
    /// running.
    pub fn join(&self, codec: Codec, control: bool) -> std::io::Result<Viewer> {
        self.add(codec, control, false)
    }

    /// Adds neko's video feed ([`crate::neko_feed`]): a consumer of the H.264 frames alone,
    /// with a key frame at once.
    pub fn join_feed(&self) -> std::io::Result<Viewer> {
        self.add(Codec::H264, false, true)
    }

    fn add(&self, codec: Codec, control: bool, feed: bool) -> std::io::Result<Viewer> {
        let (tx, rx) = mpsc::channel(VIEWER_QUEUE);
        let mut state = lock(&self.shared.state);
        state.next_id += 1;
        let id = state.next_id;
        state.viewers.push(ViewerSlot {
            id,
            codec,
            control,
            feed,
            tx,
            needs_key: true,
            told: None,
            needs_cursor: !feed,
        });
        if !state.running {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name("deskd-stream".into())
                .spawn(move || run(shared))?;
            state.running = true;
        }
        drop(state);
        self.wake();
        Ok(Viewer {
            id,
            rx,
            hub: self.clone(),
        })
    }

    fn wake(&self) {
        use std::io::Write as _;
        let _ = (&self.shared.wake_tx).write(&[1]);
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn even(v: u16) -> u16 {
    (v & !1).max(2)
}

/// The loop; ends when the last viewer left or the display failed.
fn run(shared: Arc<Shared>) {
    let told = shared.clone();
    let _clipboard =
        clipboard::Watcher::start(&shared.display, move |text| tell_clipboard(&told, text))
            .map_err(|e| tracing::warn!("clipboard watch not started: {e}"))
            .ok();
    if let Err(reason) = stream(&shared) {
        tracing::warn!(display = %shared.display, "native stream stopped: {reason}");
        let mut state = lock(&shared.state);
        for v in state.viewers.drain(..) {
            let _ = v.tx.try_send(Out::Closed(reason.clone()));
        }
        state.running = false;
    }
}

struct Frame {
    pic: I420,
    /// Macroblocks of `pic` changed since the encoder last coded it.
    changed: macroblocks::Dirty,
    width: u16,
    height: u16,
    codec: Option<String>,
    cursor: Option<Bytes>,
    pointer: Option<(i16, i16)>,
}

/// What the viewers want this turn of the loop.
struct Wants {
    h264: bool,
    jpeg: bool,
    /// A viewer of that codec waits for a key frame (a whole picture) and has room for it.
    h264_key: bool,
    jpeg_key: bool,
    /// A viewer draws the cursor (any but neko's feed): the pointer is polled for it.
    cursor: bool,
}

/// The JPEG side of the loop ([`image`]).
#[derive(Default)]
struct Images {
    /// Changed since the last update and not delivered to every image viewer by a tile.
    dirty: Dirty,
    /// Sent at [`image::QUALITY`] since the last refinement.
    coarse: Option<Rect>,
    /// The whole screen is due (the screen changed size).
    full: bool,
    seq: u32,
    /// The screen as the image viewers have it (exact pixels; theirs may be JPEG's), to find
    /// what scrolled and what did not change. Empty until the first whole picture.
    shown: Vec<u8>,
}

impl Images {
    /// The image viewers now have `rect` of `pixels`.
    fn sent(&mut self, pixels: &[u8], stride: usize, rect: Rect) {
        if self.shown.len() != pixels.len() {
            return;
        }
        let (x, w) = (usize::from(rect.x) * 4, usize::from(rect.width) * 4);
        for y in usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height) {
            let i = y * stride + x;
            if let (Some(dst), Some(src)) = (self.shown.get_mut(i..i + w), pixels.get(i..i + w)) {
                dst.copy_from_slice(src);
            }
        }
    }
}

fn stream(shared: &Shared) -> Result<(), String> {
    let mut cap =
        Capture::connect(&shared.display).map_err(|e| format!("{}: {e}", shared.display))?;
    let mut encoder = Encoder::new(&shared.settings).map_err(|e| e.to_string())?;
    let new_frame = |cap: &Capture| {
        let (w, h) = cap.size();
        let (width, height) = (even(w), even(h));
        Frame {
            pic: I420::new(usize::from(width), usize::from(height)),
            changed: macroblocks::Dirty::new(usize::from(width), usize::from(height)),
            width,
            height,
            codec: None,
            cursor: None,
            pointer: None,
        }
    };
    let mut f = new_frame(&cap);
    let interval = Duration::from_secs(1) / shared.settings.max_fps.max(1);
    let mut last_encode: Option<Instant> = None;
    let mut refine_at: Option<Instant> = None;
    let mut next_pointer = Instant::now();
    let mut pointer_moved_at = Instant::now();
    let mut seq: u32 = 0;
    let mut tiles = tile::Budget::new(Instant::now());
    let mut images = Images::default();
    // Pixels read into the frame and not encoded yet: since when (µs since the epoch).
    let mut changed_since: Option<u64> = None;
    tracing::debug!(display = %shared.display, "native stream started");
    loop {
        // Viewers: stop when none is left; who needs a key frame now.
        let wants = {
            let mut state = lock(&shared.state);
            state.viewers.retain(|v| !v.tx.is_closed());
            if state.viewers.is_empty() {
                state.running = false;
                tracing::debug!(display = %shared.display, "native stream idle: no viewers");
                return Ok(());
            }
            let asked = std::mem::take(&mut state.key_requested);
            let of = |c: Codec| state.viewers.iter().filter(move |v| v.codec == c);
            let ready = |v: &ViewerSlot| v.needs_key && v.tx.capacity() >= 3;
            Wants {
                h264: of(Codec::H264).next().is_some(),
                jpeg: of(Codec::Jpeg).next().is_some(),
                h264_key: of(Codec::H264).any(ready) || (asked && of(Codec::H264).next().is_some()),
                jpeg_key: of(Codec::Jpeg).any(ready),
                cursor: state.viewers.iter().any(|v| !v.feed),
            }
        };
        let want_key = wants.h264_key || wants.jpeg_key || images.full;
        let now = Instant::now();
        let next_frame = last_encode.map_or(now, |t| t + interval);
        let refine_due = refine_at.is_some_and(|t| now >= t);
        let timeout = if changed_since.is_some() || cap.damaged() || want_key || refine_due {
            next_frame.saturating_duration_since(now)
        } else {
            let mut t = if wants.cursor {
                next_pointer.saturating_duration_since(now)
            } else {
                Duration::MAX
            };
            if let Some(r) = refine_at {
                t = t.min(r.saturating_duration_since(now));
            }
            t
        };
        cap.wait_with(timeout, Some(shared.wake_rx.as_fd()))
            .map_err(|e| e.to_string())?;
        drain_wake(&shared.wake_rx);
        if cap.take_resized() {
            f = new_frame(&cap);
            encoder.request_key_frame();
            images = Images {
                full: true,
                ..Images::default()
            };
            changed_since = None;
            tracing::info!(display = %shared.display, width = f.width, height = f.height, "screen size changed");
        }
        if cap.cursor_changed() {
            let image = cap.cursor_image().map_err(|e| e.to_string())?;
            f.cursor = protocol::cursor_image(&image);
            if let Some(msg) = &f.cursor {
                broadcast(shared, msg, true);
            }
        }
        let now = Instant::now();
        if wants.cursor && now >= next_pointer {
            shared.metrics.stream_pointer_polled();
            let p = cap.pointer().map_err(|e| e.to_string())?;
            if f.pointer != Some(p) {
                f.pointer = Some(p);
                pointer_moved_at = now;
                broadcast(shared, &protocol::cursor_position(p.0, p.1), false);
            }
            next_pointer = now + pointer_poll_period(now - pointer_moved_at, interval);
        }
        // A small change is read and sent as a tile the moment it happens, between frames
        // too; a large one waits for the frame-rate cap.
        if now < next_frame {
            let started = unix_us();
            if let Some(d) = cap
                .grab_small(tile::MAX_TILE_PIXELS)
                .map_err(|e| e.to_string())?
            {
                take_change(shared, &cap, d, &mut f, seq, &mut tiles, &mut images);
                changed_since.get_or_insert(started);
            }
        }
        let refine_due = refine_at.is_some_and(|t| now >= t);
        if !(changed_since.is_some() || cap.damaged() || want_key || refine_due) || now < next_frame
        {
            continue;
        }
        let started = unix_us();
        if let Some(d) = cap.grab().map_err(|e| e.to_string())? {
            take_change(shared, &cap, d, &mut f, seq, &mut tiles, &mut images);
            changed_since.get_or_insert(started);
        }
        // When capture of what this frame shows began.
        let capture_us = changed_since.unwrap_or(started);
        let changed = changed_since.take().is_some();
        if !(changed || want_key || refine_due) {
            continue;
        }
        last_encode = Some(now);
        refine_at = changed.then(|| now + REFINE_AFTER);
        if wants.h264 && (changed || wants.h264_key || refine_due) {
            if wants.h264_key {
                encoder.request_key_frame();
            }
            let started = Instant::now();
            let encoded = encoder.encode(&f.pic).map_err(|e| e.to_string())?;
            f.changed.clear();
            shared
                .metrics
                .stream_encoded(encoded.key, started.elapsed(), encoded.data.len());
            if !encoded.data.is_empty() {
                if encoded.key {
                    f.codec = codec_string(&encoded.data).or(f.codec.take());
                }
                seq = seq.wrapping_add(1);
                let msg = protocol::video(
                    encoded.key,
                    seq,
                    capture_us,
                    f.width,
                    f.height,
                    &encoded.data,
                );
                deliver(shared, &f, Codec::H264, &[msg], encoded.key);
            }
        }
        if wants.jpeg {
            let full = wants.jpeg_key || images.full;
            if send_images(shared, &cap, &f, &mut images, full, refine_due, capture_us)? {
                // A coarse picture is refined once the screen settled.
                refine_at.get_or_insert(now + REFINE_AFTER);
            }
        } else {
            images = Images::default();
        }
    }
}

fn drain_wake(rx: &UnixStream) {
    use std::io::Read as _;
    let mut buf = [0u8; 64];
    while matches!((&*rx).read(&mut buf), Ok(n) if n > 0) {}
}

/// Puts what `damage` read into the frame's picture, and sends it as a tile first when it is
/// small or of one colour. `seq` is the last frame sent: the next one, `seq + 1`, carries the
/// change. Image viewers that did not all get the tile get the box as an image.
fn take_change(
    shared: &Shared,
    cap: &Capture,
    damage: Damage,
    f: &mut Frame,
    seq: u32,
    tiles: &mut tile::Budget,
    images: &mut Images,
) {
    let clipped = tile::clip(damage.rect, (f.width, f.height));
    if let Some(r) = clipped {
        if send_tile(shared, cap, r, f, seq.wrapping_add(1), tiles) {
            images.sent(cap.pixels(), cap.stride(), r);
        } else {
            images.dirty.add(r);
        }
    }
    let rows = damage.rows.start..damage.rows.end.min(usize::from(f.height));
    f.pic.convert_rows(cap.pixels(), cap.stride(), rows);
    if let Some(r) = clipped {
        f.changed.add(r);
        send_macroblocks(shared, f);
    }
}

/// Whether neko's feed `v` is shown the picture now, with room for a patch as well.
fn takes_macroblocks(v: &ViewerSlot) -> bool {
    v.feed && v.told.is_some() && !v.needs_key && v.tx.capacity() > VIEWER_QUEUE / 2
}

/// Gives neko's feeds the macroblocks changed since the last H.264 frame, when there are
/// at most [`MAX_PATCH_MACROBLOCKS`].
fn send_macroblocks(shared: &Shared, f: &Frame) {
    if !lock(&shared.state).viewers.iter().any(takes_macroblocks) {
        return;
    }
    // Cut out of the picture outside the lock.
    let Some(mbs) = f.changed.samples(&f.pic, MAX_PATCH_MACROBLOCKS) else {
        return;
    };
    let mbs = Arc::new(mbs);
    let state = lock(&shared.state);
    for v in state.viewers.iter().filter(|v| takes_macroblocks(v)) {
        let _ = v.tx.try_send(Out::Macroblocks(mbs.clone()));
    }
}

/// Whether viewer `v` is shown the picture now, with room in its queue for a tile as well.
fn takes_tiles(v: &ViewerSlot) -> bool {
    !v.feed && v.told.is_some() && !v.needs_key && v.tx.capacity() > VIEWER_QUEUE / 2
}

/// Sends the changed box `rect` ahead of its frame to the viewers that take one ([`tile`]): as
/// a fill when it is one colour, as pixels when it is small, if the byte budget allows. True
/// when every image viewer has it (or will get the whole screen anyway).
fn send_tile(
    shared: &Shared,
    cap: &Capture,
    rect: Rect,
    f: &Frame,
    seq: u32,
    budget: &mut tile::Budget,
) -> bool {
    let Some(rect) = tile::clip(rect, (f.width, f.height)) else {
        return true;
    };
    let image_viewers_have_it = |state: &State, took: &[u64]| {
        state
            .viewers
            .iter()
            .filter(|v| v.codec == Codec::Jpeg && !v.needs_key)
            .all(|v| took.contains(&v.id))
    };
    {
        let state = lock(&shared.state);
        if !state.viewers.iter().any(takes_tiles) {
            return image_viewers_have_it(&state, &[]);
        }
    }
    let kind = tile::kind(cap.pixels(), cap.stride(), rect);
    let msg = kind
        .filter(|k| budget.take(k.bytes(rect), Instant::now()))
        // Built outside the lock: a 128x128 tile is 64 KiB to cut out.
        .and_then(|k| tile::message(seq, k, cap.pixels(), cap.stride(), rect));
    let mut state = lock(&shared.state);
    let Some(msg) = msg else {
        return image_viewers_have_it(&state, &[]);
    };
    let mut took = Vec::new();
    for v in state.viewers.iter_mut().filter(|v| takes_tiles(v)) {
        // For an H.264 viewer a tile that does not fit is only lost time: the video carries
        // the same change. An image viewer gets the box as an image instead.
        if v.tx.try_send(Out::Binary(msg.clone())).is_ok() {
            took.push(v.id);
        }
    }
    shared.metrics.stream_tile(took.len(), msg.len());
    image_viewers_have_it(&state, &took)
}

/// Sends the image viewers their update: the whole screen when `full` (a viewer joined or fell
/// behind, the screen changed size), else the changed boxes, else, when `refine`, the boxes
/// sent coarse since the last refinement at the finer quality. True when a JPEG went out
/// coarse (a refinement is due).
fn send_images(
    shared: &Shared,
    cap: &Capture,
    f: &Frame,
    images: &mut Images,
    full: bool,
    refine: bool,
    capture_us: u64,
) -> Result<bool, String> {
    let screen = Rect {
        x: 0,
        y: 0,
        width: f.width,
        height: f.height,
    };
    let (boxes, fine) = if full {
        images.dirty.clear();
        images.full = false;
        images.shown = cap.pixels().to_vec();
        (vec![screen], false)
    } else if !images.dirty.is_empty() {
        (images.dirty.take(), false)
    } else if refine {
        (images.coarse.take().into_iter().collect(), true)
    } else {
        return Ok(false);
    };
    let (pixels, stride) = (cap.pixels(), cap.stride());
    // What the viewers have already: rows that scrolled are copied, rows that did not change
    // are not sent (one or two boxes, as a terminal or a page makes; more go as they are).
    let mut copies = Vec::new();
    let mut parts = Vec::new();
    for b in boxes
        .into_iter()
        .filter_map(|b| tile::clip(b, (f.width, f.height)))
    {
        if full || fine {
            parts.push(b);
            continue;
        }
        let Some(b) = scroll::trim(&images.shown, pixels, stride, b) else {
            continue;
        };
        match (copies.len() < 2)
            .then(|| scroll::find(&images.shown, pixels, stride, b))
            .flatten()
        {
            Some(s) => {
                copies.push(s);
                parts.extend(scroll::rest(b, &s));
            }
            None => parts.push(b),
        }
    }
    if copies.is_empty() && parts.is_empty() {
        return Ok(false);
    }
    images.seq = images.seq.wrapping_add(1);
    let count = copies.len() + parts.len();
    let flags = |i: usize| {
        let mut flags = 0;
        if full {
            flags |= protocol::IMAGE_FULL;
        }
        if i + 1 == count {
            flags |= protocol::IMAGE_LAST;
        }
        flags
    };
    let mut msgs = Vec::with_capacity(count);
    let mut coarse = false;
    for (i, c) in copies.iter().enumerate() {
        msgs.push(protocol::copy(flags(i), images.seq, c));
        images.sent(pixels, stride, c.dst());
        // Moved pictures keep their quality: what was coarse is coarse where it went.
        if let Some(was) = images.coarse {
            images.coarse = Some(image::union(was, c.dst()));
        }
    }
    for (i, b) in parts.iter().enumerate() {
        let started = Instant::now();
        let (format, data) = image::encode(pixels, stride, *b, fine).map_err(|e| e.to_string())?;
        shared.metrics.stream_image(started.elapsed(), data.len());
        let png = if format == image::Format::Png {
            protocol::IMAGE_PNG
        } else {
            0
        };
        msgs.push(protocol::image(
            flags(copies.len() + i) | png,
            images.seq,
            capture_us,
            *b,
            &data,
        ));
        images.sent(pixels, stride, *b);
        // A PNG is exact: nothing to refine.
        if !fine && format == image::Format::Jpeg {
            images.coarse = Some(images.coarse.map_or(*b, |c| image::union(c, *b)));
            coarse = true;
        }
    }
    deliver(shared, f, Codec::Jpeg, &msgs, full);
    Ok(coarse)
}

/// Tells the control viewers that have a picture the desktop's new clipboard text. One whose
/// queue is full misses it (the next copy tells it again).
fn tell_clipboard(shared: &Shared, text: String) {
    let state = lock(&shared.state);
    for v in state
        .viewers
        .iter()
        .filter(|v| v.control && v.told.is_some())
    {
        let _ = v.tx.try_send(Out::Clipboard(text.clone()));
    }
}

/// Sends a cursor message to every viewer that has had its first key frame (the others get
/// the current cursor with it). An image that does not fit is sent again later.
fn broadcast(shared: &Shared, msg: &Bytes, image: bool) {
    let mut state = lock(&shared.state);
    for v in state
        .viewers
        .iter_mut()
        .filter(|v| v.told.is_some() && !v.feed)
    {
        if v.tx.try_send(Out::Binary(msg.clone())).is_err() && image {
            v.needs_cursor = true;
        }
    }
}

/// Gives the messages of one update (an H.264 frame, or a screen's worth of images) to each
/// viewer of `codec` that can take them; `key`: a picture a viewer can start from.
fn deliver(shared: &Shared, f: &Frame, codec: Codec, msgs: &[Bytes], key: bool) {
    let mut state = lock(&shared.state);
    let name = match codec {
        Codec::H264 => f.codec.clone().unwrap_or_default(),
        Codec::Jpeg => "jpeg".to_string(),
    };
    for v in state.viewers.iter_mut().filter(|v| v.codec == codec) {
        if v.needs_key && !key {
            shared.metrics.stream_dropped();
            continue;
        }
        let told = (f.width, f.height, name.clone());
        if key && v.told.as_ref() != Some(&told) {
            if v.tx.capacity() < 2 + msgs.len() {
                shared.metrics.stream_dropped();
                v.needs_key = true;
                continue;
            }
            let _ = v.tx.try_send(Out::Config {
                width: f.width,
                height: f.height,
                codec: name.clone(),
            });
            v.told = Some(told);
        }
        if v.tx.capacity() < msgs.len() {
            // Full: skip to the next key frame, asked for once the queue drains.
            shared.metrics.stream_dropped();
            v.needs_key = true;
            continue;
        }
        for m in msgs {
            let _ = v.tx.try_send(Out::Binary(m.clone()));
        }
        if key {
            v.needs_key = false;
        }
        if v.needs_cursor {
            let sent_image = f
                .cursor
                .as_ref()
                .is_none_or(|c| v.tx.try_send(Out::Binary(c.clone())).is_ok());
            if let Some(p) = f.pointer {
                let _ =
                    v.tx.try_send(Out::Binary(protocol::cursor_position(p.0, p.1)));
            }
            v.needs_cursor = !sent_image;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resting_pointer_is_polled_less_often() {
        let frame = Duration::from_secs(1) / 60;
        assert_eq!(pointer_poll_period(Duration::ZERO, frame), frame);
        assert_eq!(
            pointer_poll_period(Duration::from_millis(999), frame),
            frame
        );
        assert_eq!(
            pointer_poll_period(POINTER_REST, frame),
            POINTER_RESTING_POLL
        );
        // a frame rate below the resting poll's keeps its own period
        let slow = Duration::from_secs(1);
        assert_eq!(pointer_poll_period(POINTER_REST, slow), slow);
    }
}
