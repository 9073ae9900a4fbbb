// The picture on the page: which element shows the desktop (the <video> for WebRTC, the
// <canvas> for the native stream; that one carries id="screen", so tools and tests find it),
// the still (index.html's <img>) shown until the first live frame (same letterboxing: every
// element is object-fit: contain over the same box), and the picture size that letterboxing
// and pointer mapping use. The native stream paints the canvas itself (paint.js) in the page, or from the
// stream worker through an OffscreenCanvas: a canvas serves one such session, so each one gets
// a fresh canvas element in the old one's place.

import { Painter } from "./paint.js";

export class ScreenView {
  constructor({ video, canvas, still }) {
    Object.assign(this, { video, canvas, still });
    this.transport = "webrtc";
    this.onCanvas = false;
    this.painter = new Painter(canvas);
    /** The size of the picture a worker painted last (its canvas cannot be read here). */
    this.remoteSize = null;
    this.everLive = false;
    this.stillReady = false;
  }

  /**
   * Puts id="screen" on the element of `transport`: the canvas for the native stream ("ws")
   * and for WebRTC frames the page paints itself (`canvas`), else the video.
   */
  use(transport, { canvas = transport === "ws" } = {}) {
    this.transport = transport;
    this.onCanvas = canvas;
    const [on, off] = canvas ? [this.canvas, this.video] : [this.video, this.canvas];
    off.id = canvas ? "screen-video" : "screen-canvas";
    on.id = "screen";
    on.hidden = false;
    off.hidden = true;
    if (transport === "ws" && this.video.srcObject) this.video.srcObject = null;
  }

  /**
   * The still element has its picture (index.html asks for it): shown until the first live
   * frame; false (and hidden) if video came first.
   */
  adoptStill() {
    if (this.everLive) {
      this.dropStill();
      return false;
    }
    this.stillReady = true;
    this.still.hidden = false;
    return true;
  }

  /** The still has no picture (it failed): out of the way. */
  noStill() {
    this.dropStill();
  }

  get stillShown() {
    return Boolean(this.stillReady) && !this.still.hidden;
  }

  /** The first live frame is on screen: the still goes. */
  firstFrame() {
    this.everLive = true;
    this.dropStill();
  }

  dropStill() {
    this.stillReady = false;
    this.still.hidden = true;
    // Without srcset and src the element lets go of the image (and asks for no other).
    this.still.removeAttribute("srcset");
    this.still.removeAttribute("src");
  }

  /** Paints a decoded VideoFrame on the canvas; true when the canvas changed size. */
  draw(frame) {
    return this.painter.frame(frame);
  }

  /** Paints a tile ({x, y, width, height, rgba}) over the canvas; false before any frame. */
  drawTile(t) {
    return this.painter.tile(t);
  }

  /**
   * A canvas never drawn on, in place of the current one (same id, classes, visibility), for
   * a session that paints from a worker; `remotePainted` then reports what it shows.
   */
  freshCanvas() {
    const c = this.canvas.cloneNode(false);
    this.canvas.replaceWith(c);
    this.canvas = c;
    this.painter = new Painter(c);
    this.remoteSize = null;
    return c;
  }

  /** The worker painted a frame of this size; true when the size changed. */
  remotePainted(width, height) {
    const changed = !this.remoteSize || this.remoteSize.width !== width || this.remoteSize.height !== height;
    this.remoteSize = { width, height };
    return changed;
  }

  /** The intrinsic size of what is shown now (its aspect ratio is the picture's). */
  size() {
    if (this.stillShown) return { width: this.still.naturalWidth, height: this.still.naturalHeight };
    if (this.onCanvas) {
      if (this.remoteSize) return { ...this.remoteSize };
      return this.painter.drawn ? { width: this.canvas.width, height: this.canvas.height } : { width: 0, height: 0 };
    }
    return { width: this.video.videoWidth, height: this.video.videoHeight };
  }
}
