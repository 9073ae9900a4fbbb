// One native-stream session (docs/native-stream.md): the WebSocket to /stream/ws, hello and
// resize, H.264 access units decoded with WebCodecs (`VideoDecoder`, optimizeForLatency,
// Annex B) and handed to `draw` as VideoFrames; after a decoder error, a reset or a gap in
// `seq`, delta frames are dropped until the next key frame. Tiles (small changes the server
// sends as pixels or fills ahead of the video) go to `drawTile` at once and again after every
// decoded frame older than the tile, until the frame that carries the same change is shown.
// With the codec "jpeg" (a browser without WebCodecs) the server sends JPEG images of the
// changed boxes instead: decoded in parallel with createImageBitmap and painted, with the
// tiles, strictly in the order they came. Cursor and pong messages are passed on as decoded.
// Input goes out as neko's binary messages on the same socket. Reconnecting is the caller's
// job: a session lives for one WebSocket. The browser's classes are injected for tests.

import { closeSession, openSocket } from "./backoff.js";
import { clipboardMessage, decodeStreamBinary, keyframeRequest, parseStreamText, pasteMessage, seqAfter } from "./framing.js";
import { encodeKey } from "./protocol.js";

/** Chunks in the decoder beyond this: the page cannot keep up; skip to a key frame. */
const MAX_DECODE_QUEUE = 16;
/** Frames sent to the decoder and not yet out: their seq and capture time. */
const MAX_PENDING = 64;
/** Tiles kept to paint over older frames (the server sends one per small change). */
const MAX_TILES = 32;
/** JPEG mode: images and tiles received and not painted yet, beyond which the page skips to a whole picture. */
const MAX_PAINT_QUEUE = 32;

const reason = (err) => String(err && err.message ? err.message : err);

/** A session's counters before anything happened (the worker's proxy starts from them too). */
export const emptyStats = () => ({ received: 0, decoded: 0, dropped: 0, gaps: 0, resets: 0, keyframeRequests: 0, tiles: 0, bytesIn: 0, bytesOut: 0 });

export class NativeSession {
  /**
   * - `url`: the WebSocket URL of /stream/ws;
   * - `on(event, detail)`: "hello", "access", "screen", "host", "input-open",
   *   "server-message" (cursor-image, cursor-position, pong), "clipboard" (the desktop's
   *   clipboard text), "frame" (each decoded frame's
   *   {seq, captureUs, key}), "tile" (each tile's {seq, x, y, width, height, drawn, receivedMs}), "unsupported" (the codec), "error", "close";
   * - `draw(frame, meta)`: paints a VideoFrame (closed by the session afterwards), or in JPEG
   *   mode an image {bitmap, x, y, full, displayWidth, displayHeight};
   * - `drawCopy(copy)`: JPEG mode: copies a box of the picture within it ({sx, sy, width,
   *   height, dx, dy}: rows that scrolled);
   * - `drawTile(tile)`: paints a tile ({x, y, width, height, rgba}); false if it could not
   *   (nothing drawn yet);
   * - `WebSocketImpl`, `VideoDecoderImpl`, `EncodedVideoChunkImpl`, `createImageBitmapImpl`,
   *   `BlobImpl`, `now` for tests.
   */
  constructor({
    url,
    on = () => {},
    draw = () => {},
    drawTile = () => false,
    drawCopy = () => false,
    WebSocketImpl = globalThis.WebSocket,
    VideoDecoderImpl = globalThis.VideoDecoder,
    EncodedVideoChunkImpl = globalThis.EncodedVideoChunk,
    // Called as a method of the session, so bound here (the browser's throws "Illegal invocation").
    createImageBitmapImpl = typeof globalThis.createImageBitmap === "function" ? (blob) => globalThis.createImageBitmap(blob) : undefined,
    BlobImpl = globalThis.Blob,
    now = () => Date.now(),
  }) {
    Object.assign(this, { url, on, draw, drawTile, drawCopy, WebSocketImpl, VideoDecoderImpl, EncodedVideoChunkImpl, createImageBitmapImpl, BlobImpl, now });
    this.name = "ws";
    this.ws = null;
    this.opened = false;
    this.closed = false;
    this.lastReceived = now();
    this.hello = null;
    this.config = null;
    this.decoder = null;
    this.waitKey = true;
    this.lastSeq = null;
    this.pending = new Map();
    /** Tiles not yet in a shown frame, oldest first. */
    this.tiles = [];
    /** JPEG mode: the screen's size, while the codec is "jpeg". */
    this.jpeg = null;
    /** JPEG mode: paints wait on this, in order; a new generation drops what is queued. */
    this.chain = Promise.resolve();
    this.generation = 0;
    this.paintQueue = 0;
    this.stats = emptyStats();
  }

  get inputOpen() {
    return Boolean(this.hello && this.ws && this.ws.readyState === 1);
  }

  start() {
    openSocket(this, (data) => {
      if (this.closed) return;
      this.stats.bytesIn += typeof data === "string" ? data.length : data.byteLength || 0;
      if (typeof data === "string") this.text(data);
      else this.binary(data);
    });
  }

  text(data) {
    const m = parseStreamText(data);
    if (!m) {
      this.on("error", `bad message from the server: ${String(data).slice(0, 80)}`);
      return;
    }
    if (m.type === "hello") {
      this.hello = m;
      this.on("hello", m);
      this.on("access", m.access);
      this.on("screen", { width: m.width, height: m.height });
      // No host arbitration on this transport: every control client may send input.
      this.on("host", { isHost: m.access === "control" });
      this.configure(m.codec, m.width, m.height);
      this.on("input-open", true);
    } else if (m.type === "resize") {
      this.on("screen", { width: m.width, height: m.height });
      this.configure(m.codec, m.width, m.height);
    } else if (m.type === "error") {
      this.on("error", `server: ${m.message}`);
    } else if (m.type === "clipboard") {
      // The desktop's clipboard changed (control viewers only): the page copies it locally.
      this.on("clipboard", m.text);
    }
  }

  binary(data) {
    const m = decodeStreamBinary(data);
    if (!m) return;
    if (m.type === "video") this.video(m);
    else if (m.type === "image") this.image(m);
    else if (m.type === "copy") this.copy(m);
    else if (m.type === "tile") this.tile(m);
    else if (m.type !== "unknown") this.on("server-message", m);
  }

  /** (Re)configures the decoder; the next frame it takes is a key frame. */
  configure(codec, width, height) {
    if (codec === "jpeg") {
      this.closeDecoder();
      this.config = null;
      this.tiles = [];
      this.jpeg = { width, height };
      this.generation += 1;
      this.waitKey = true;
      if (typeof this.createImageBitmapImpl !== "function" || typeof this.BlobImpl !== "function") {
        this.on("unsupported", { codec, reason: "no createImageBitmap" });
      }
      return;
    }
    this.jpeg = null;
    this.config = { codec, codedWidth: width, codedHeight: height, optimizeForLatency: true };
    this.newDecoder();
  }

  newDecoder() {
    this.closeDecoder();
    this.waitKey = true;
    this.pending.clear();
    this.tiles = [];
    if (!this.config) return;
    if (typeof this.VideoDecoderImpl !== "function") {
      this.on("unsupported", { codec: this.config.codec, reason: "no VideoDecoder" });
      return;
    }
    const d = new this.VideoDecoderImpl({
      output: (frame) => this.output(d, frame),
      error: (err) => this.decoderError(d, err),
    });
    try {
      d.configure(this.config);
    } catch (err) {
      this.on("unsupported", { codec: this.config.codec, reason: String(err && err.message ? err.message : err) });
      return;
    }
    this.decoder = d;
  }

  closeDecoder() {
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== "closed") {
      try {
        d.close();
      } catch {
        /* already closed */
      }
    }
  }

  decoderError(d, err) {
    if (d !== this.decoder || this.closed) return;
    this.on("error", `video decoder: ${err && err.message ? err.message : err}`);
    this.reset();
  }

  /** A fresh decoder that waits for a key frame, which the server is asked for. */
  reset() {
    this.stats.resets += 1;
    this.newDecoder();
    this.requestKeyframe();
  }

  requestKeyframe() {
    if (this.sendText(keyframeRequest())) this.stats.keyframeRequests += 1;
  }

  video(m) {
    this.stats.received += 1;
    const gap = this.lastSeq !== null && m.seq !== ((this.lastSeq + 1) >>> 0);
    this.lastSeq = m.seq;
    if (gap) {
      // The server skipped this viewer forward; it sends a key frame next (its own request).
      this.stats.gaps += 1;
      this.waitKey = true;
    }
    if (!this.decoder) {
      this.stats.dropped += 1;
      return;
    }
    if (!m.key && this.decoder.decodeQueueSize > MAX_DECODE_QUEUE) {
      this.stats.dropped += 1;
      this.reset();
      return;
    }
    if (this.waitKey && !m.key) {
      this.stats.dropped += 1;
      return;
    }
    this.waitKey = false;
    if (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.keys().next().value);
    this.pending.set(m.seq, { seq: m.seq, captureUs: m.captureUs, key: m.key, receivedMs: this.now() });
    try {
      this.decoder.decode(new this.EncodedVideoChunkImpl({ type: m.key ? "key" : "delta", timestamp: m.seq, data: m.data }));
    } catch (err) {
      this.on("error", `video decode: ${err && err.message ? err.message : err}`);
      this.reset();
    }
  }

  /**
   * JPEG mode: one image of a changed box, decoded now (in parallel with the others) and
   * painted after everything that came before it. Until a whole picture, parts are dropped.
   */
  image(m) {
    this.stats.received += 1;
    if (!this.jpeg || (this.waitKey && !m.full)) {
      this.stats.dropped += 1;
      return;
    }
    if (this.paintQueue >= MAX_PAINT_QUEUE) {
      this.stats.dropped += 1;
      this.skipToFullImage();
      return;
    }
    this.waitKey = false;
    const receivedMs = this.now();
    const { width, height } = this.jpeg;
    let decoded;
    try {
      decoded = this.createImageBitmapImpl(new this.BlobImpl([m.data], { type: m.png ? "image/png" : "image/jpeg" }));
    } catch (err) {
      decoded = Promise.reject(err);
    }
    this.inOrder(decoded, (bitmap) => {
      const meta = { seq: m.seq, captureUs: m.captureUs, key: m.full, receivedMs };
      this.stats.decoded += 1;
      this.draw({ bitmap, x: m.x, y: m.y, full: m.full, displayWidth: width, displayHeight: height }, meta);
      if (m.last) this.on("frame", meta);
    });
  }

  /** JPEG mode: rows the client has already, moved (a scroll), in turn with the images. */
  copy(m) {
    this.stats.received += 1;
    if (!this.jpeg || this.waitKey) {
      this.stats.dropped += 1;
      return;
    }
    const receivedMs = this.now();
    this.inOrder(null, () => {
      this.drawCopy(m);
      if (m.last) this.on("frame", { seq: m.seq, captureUs: null, key: false, receivedMs });
    });
  }

  /**
   * JPEG mode: runs `paint(value)` once `ready` resolved and everything queued before it was
   * painted; drops it if the session reset meanwhile. Closes a bitmap it was given.
   */
  inOrder(ready, paint) {
    const generation = this.generation;
    const current = () => generation === this.generation && !this.closed;
    this.paintQueue += 1;
    this.chain = this.chain
      .then(() => ready)
      .then(
        (value) => {
          try {
            if (current()) paint(value);
          } catch (err) {
            this.on("error", `paint: ${reason(err)}`);
          } finally {
            if (value && typeof value.close === "function") value.close();
          }
        },
        (err) => {
          if (!current()) return;
          this.on("error", `image decode: ${reason(err)}`);
          this.skipToFullImage();
        },
      )
      .finally(() => {
        this.paintQueue -= 1;
      });
  }

  /** JPEG mode: drops what waits to be painted and asks the server for the whole screen. */
  skipToFullImage() {
    this.stats.resets += 1;
    this.generation += 1;
    this.waitKey = true;
    this.requestKeyframe();
  }

  /** A small change ahead of the video: painted now, and kept until its frame is shown. */
  tile(m) {
    this.stats.tiles += 1;
    if (this.jpeg) {
      // Painted in turn with the images, and final: no video frame paints over it.
      const receivedMs = this.now();
      this.inOrder(null, () => {
        const drawn = this.drawTile(m);
        this.on("tile", { seq: m.seq, x: m.x, y: m.y, width: m.width, height: m.height, drawn, receivedMs });
      });
      return;
    }
    if (this.tiles.length >= MAX_TILES) this.tiles.shift();
    this.tiles.push(m);
    const drawn = this.drawTile(m);
    this.on("tile", { seq: m.seq, x: m.x, y: m.y, width: m.width, height: m.height, drawn, receivedMs: this.now() });
  }

  output(d, frame) {
    try {
      if (d !== this.decoder || this.closed) return;
      const meta = this.pending.get(frame.timestamp) || { seq: frame.timestamp, captureUs: null, key: false, receivedMs: null };
      this.pending.delete(frame.timestamp);
      this.stats.decoded += 1;
      this.draw(frame, meta);
      this.tiles = this.tiles.filter((t) => seqAfter(t.seq, meta.seq));
      for (const t of this.tiles) this.drawTile(t);
      this.on("frame", meta);
    } finally {
      frame.close();
    }
  }

  sendText(text) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.stats.bytesOut += text.length;
    this.ws.send(text);
    return true;
  }

  /** neko's binary input (protocol.js); false when the socket is not open. */
  sendInput(buf) {
    if (!this.inputOpen) return false;
    this.stats.bytesOut += buf.byteLength || 0;
    this.ws.send(buf);
    return true;
  }

  /**
   * Pastes `text`: typed by the server, or, with `keysym` (the user's own combination, e.g.
   * Ctrl+V with Ctrl held), put in the desktop's clipboard and that key pressed after it, on
   * the same socket so the server applies them in this order.
   */
  paste(text, keysym = null) {
    if (!this.inputOpen) return false;
    if (keysym === null) return this.sendText(pasteMessage(text));
    this.sendText(clipboardMessage(text));
    this.ws.send(encodeKey(true, keysym));
    this.ws.send(encodeKey(false, keysym));
    return true;
  }

  /** No host arbitration on this transport: nothing to ask for. */
  requestControl() {}

  /** Sound needs the WebRTC path. */
  setAudio() {}

  teardown() {
    this.closeDecoder();
    this.pending.clear();
    this.generation += 1;
  }

  /** Ends the session; `close` is reported once with the given code. */
  close(code = 1000, reason = "") {
    closeSession(this, code, reason);
  }
}
