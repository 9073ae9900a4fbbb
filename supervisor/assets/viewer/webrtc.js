// The WebRTC transport as the page uses it: a NekoSession (signaling.js) plus neko's media,
// its "data" channel for input, cursor and pongs, and the first video frame shown. Presents
// the same events and methods as the native stream's session (native.js), so main.js drives
// either. One instance lives for one signaling WebSocket.

import { decodeServerMessage } from "./protocol.js";
import { NekoSession } from "./signaling.js";

/** Signaling worked but media never flowed: usually the media UDP port is unreachable. */
export const NO_MEDIA = "no media connection";

/** Connected but no picture by then: the video is turned off and on (a fresh key frame). */
export const FIRST_FRAME_RETRY_MS = 1500;

export class WebRtcSession {
  /**
   * - `url`: the relay's WebSocket URL; `audio`: ask neko for sound;
   * - `video`: the <video> element the track plays in;
   * - `on(event, detail)`: "session-id", "screen", "host", "input-open", "server-message",
   *   "first-frame", "painted", "frame", "render-fallback", "peer-state", "clipboard", "message", "sent", "error", "close";
   * - `mediaTimeoutMs`: close with NO_MEDIA when ICE never connects by then;
   * - `firstFrameRetryMs`: connected without a picture this long: restart the video;
   * - `frames`: what paints the video itself, reporting "painted" ({width, height}) and
   *   "frame" (each frame it painted): an RtcDecoder (rtc-decoder.js: the receiver's encoded
   *   frames decoded by the page) or a FramePainter (frame-painter.js: the track's decoded
   *   frames); null: the <video> shows them. One that cannot decode the codec hands the
   *   frames back ("render-fallback" {codec, reason}) and the <video> shows them;
   * - `NekoSessionImpl`, `MediaStreamImpl` for tests.
   */
  constructor({ url, audio = false, video, on = () => {}, frames = null, mediaTimeoutMs = 30000, firstFrameRetryMs = FIRST_FRAME_RETRY_MS, NekoSessionImpl = NekoSession, MediaStreamImpl = globalThis.MediaStream }) {
    Object.assign(this, { url, audio, video, on, frames, mediaTimeoutMs, firstFrameRetryMs, NekoSessionImpl, MediaStreamImpl });
    this.stream = null;
    this.sound = null;
    this.retryTimer = null;
    this.name = "webrtc";
    this.neko = null;
    this.everConnected = false;
    this.shownFirst = false;
    this.mediaTimer = null;
    this.fellBack = false;
    this.keyAskedAt = 0;
  }

  get opened() {
    return Boolean(this.neko && this.neko.opened);
  }

  get lastReceived() {
    return this.neko ? this.neko.lastReceived : 0;
  }

  get pc() {
    return this.neko ? this.neko.pc : null;
  }

  get dc() {
    return this.neko ? this.neko.dc : null;
  }

  get inputOpen() {
    const dc = this.dc;
    return Boolean(dc && dc.readyState === "open");
  }

  start() {
    this.neko = new this.NekoSessionImpl({ url: this.url, audio: this.audio, on: (ev, d) => this.onNeko(ev, d) });
    this.neko.start();
    this.mediaTimer = setTimeout(() => {
      if (!this.everConnected) this.close(4000, NO_MEDIA);
    }, this.mediaTimeoutMs);
  }

  onNeko(ev, d) {
    switch (ev) {
      case "init":
        this.on("session-id", d.sessionId);
        if (d.screen) this.on("screen", d.screen);
        break;
      case "track":
        this.attachTrack(d);
        break;
      case "datachannel":
        this.attachChannel(d);
        break;
      case "peer-state":
        if (d === "connected") {
          this.everConnected = true;
          this.retryFirstFrame();
        }
        this.on("peer-state", d);
        if (d === "failed") this.close(4000, "peer failed");
        break;
      case "peer-closed":
        this.on("input-open", false);
        break;
      case "close":
        clearTimeout(this.mediaTimer);
        clearTimeout(this.retryTimer);
        this.on("close", d);
        break;
      default:
        // host, screen, clipboard, message, sent, error, disconnect-message: as they are.
        this.on(ev, d);
        break;
    }
  }

  /** Until the first picture shows, the video is restarted every `firstFrameRetryMs`. */
  retryFirstFrame() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.shownFirst || !this.neko || this.neko.closed) return;
      this.neko.restartVideo();
      this.retryFirstFrame();
    }, this.firstFrameRetryMs);
  }

  attachTrack(ev) {
    const v = this.video;
    const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new this.MediaStreamImpl([ev.track]);
    this.stream = stream;
    // While the page paints the video itself the <video> plays the sound only: its video
    // track would never have a frame (the page's decoder keeps them).
    const played = this.frames && !this.fellBack ? this.soundOf(stream) : stream;
    if (v.srcObject !== played) v.srcObject = played;
    v.play().catch(() => {});
    if (ev.track && ev.track.kind !== "video") return;
    if (this.frames && !this.fellBack) {
      const started = this.frames.start(ev, {
        painted: (size) => this.painted(size),
        frame: (d) => this.on("frame", d),
        error: (e) => this.on("error", e),
        needKey: () => this.needKey(),
        fallback: (d) => this.fallBack(d),
      });
      if (started !== false) return;
      this.fallBack({ codec: null, reason: "the page cannot paint this track" });
      return;
    }
    this.watchFirstFrame();
  }

  /** A stream of `stream`'s audio tracks, the same one each time. */
  soundOf(stream) {
    if (!this.sound) this.sound = new this.MediaStreamImpl([]);
    for (const t of typeof stream.getAudioTracks === "function" ? stream.getAudioTracks() : []) {
      if (!this.sound.getTrackById(t.id)) this.sound.addTrack(t);
    }
    return this.sound;
  }

  /** The painter cannot show this stream: the <video> does, from now on. */
  fallBack(detail) {
    if (this.fellBack) return;
    this.fellBack = true;
    if (this.frames) this.frames.stop();
    if (this.stream && this.video.srcObject !== this.stream) {
      this.video.srcObject = this.stream;
      this.video.play().catch(() => {});
    }
    this.on("render-fallback", detail);
    this.watchFirstFrame();
  }

  /**
   * The page's decoder waits for a key frame (it missed one, or fell behind): neko sends one
   * when the video is turned off and on, at most once per `firstFrameRetryMs`.
   */
  needKey() {
    if (!this.neko || this.neko.closed) return;
    const now = Date.now();
    if (this.keyAskedAt && now - this.keyAskedAt < this.firstFrameRetryMs) return;
    this.keyAskedAt = now;
    this.neko.restartVideo();
  }

  /** The frame painter painted a frame of a new size (the first one included). */
  painted(size) {
    if (this.neko && this.neko.closed) return;
    this.on("painted", size);
    if (this.shownFirst) return;
    this.shownFirst = true;
    this.on("first-frame", size);
  }

  /** "first-frame" once, when the first video frame is painted (not when ICE connects). */
  watchFirstFrame() {
    if (this.shownFirst || this.watching) return;
    this.watching = true;
    const v = this.video;
    const shown = () => {
      if (this.shownFirst || (this.neko && this.neko.closed)) return;
      this.shownFirst = true;
      this.on("first-frame", { width: v.videoWidth, height: v.videoHeight });
    };
    if (typeof v.requestVideoFrameCallback === "function") v.requestVideoFrameCallback(() => shown());
    else v.addEventListener("playing", shown, { once: true });
  }

  attachChannel(dc) {
    const neko = this.neko;
    const open = () => {
      if (this.neko === neko && !neko.closed) this.on("input-open", true);
    };
    if (dc.readyState === "open") open();
    dc.addEventListener("open", open);
    dc.addEventListener("close", () => {
      if (this.neko === neko && neko.dc === dc) this.on("input-open", false);
    });
    dc.addEventListener("message", (ev) => {
      const m = decodeServerMessage(ev.data);
      if (m && m.type !== "unknown") this.on("server-message", m);
    });
  }

  sendInput(buf) {
    const dc = this.dc;
    if (!dc || dc.readyState !== "open") return false;
    dc.send(buf);
    return true;
  }

  /** Paste typed by neko, or (with `keysym`) neko's clipboard set and that key pressed. */
  paste(text, keysym = null) {
    if (!this.neko) return false;
    if (keysym === null) return this.neko.send("control/paste", { text });
    // Over the same WebSocket, so neko handles them in this order.
    this.neko.send("clipboard/set", { text });
    return this.neko.send("control/keypress", { keysym });
  }

  requestControl() {
    if (this.neko) this.neko.send("control/request");
  }

  setAudio(on) {
    this.audio = Boolean(on);
    if (this.neko) {
      this.neko.audio = this.audio;
      this.neko.send("signal/audio", { disabled: !this.audio });
    }
  }

  close(code = 1000, reason = "") {
    clearTimeout(this.mediaTimer);
    if (this.frames) this.frames.stop();
    if (this.neko) this.neko.close(code, reason);
  }

  async framesDecoded() {
    if (this.frames && !this.fellBack) return this.frames.decoded;
    const pc = this.pc;
    if (!pc) return 0;
    let frames = 0;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
    return frames;
  }
}
