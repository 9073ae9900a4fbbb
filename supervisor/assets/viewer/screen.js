// The picture on the page: which element shows the desktop (the <video> for WebRTC, the
// <canvas> for the native stream; that one carries id="screen", so tools and tests find it),
// the still shown until the first live frame (same letterboxing: every element is
// object-fit: contain over the same box), and the picture size that letterboxing and pointer
// mapping use.

export class ScreenView {
  constructor({ video, canvas, still }) {
    Object.assign(this, { video, canvas, still });
    this.transport = "webrtc";
    this.ctx = null;
    this.drawn = false;
    this.everLive = false;
    this.stillUrl = null;
  }

  /** Puts id="screen" on the element of `transport` ("ws": the canvas, else the video). */
  use(transport) {
    this.transport = transport;
    const native = transport === "ws";
    const [on, off] = native ? [this.canvas, this.video] : [this.video, this.canvas];
    off.id = native ? "screen-video" : "screen-canvas";
    on.id = "screen";
    on.hidden = false;
    off.hidden = true;
    if (native && this.video.srcObject) this.video.srcObject = null;
  }

  /** Shows a still (an object URL) until the first live frame; false if video came first. */
  async showStill(url) {
    if (this.everLive) return false;
    this.still.src = url;
    await this.still.decode(); // throws when it is not an image
    if (this.everLive) return false;
    this.stillUrl = url;
    this.still.hidden = false;
    return true;
  }

  get stillShown() {
    return !this.still.hidden;
  }

  /** The first live frame is on screen: the still goes. */
  firstFrame() {
    this.everLive = true;
    this.still.hidden = true;
    if (this.stillUrl) {
      this.still.removeAttribute("src");
      URL.revokeObjectURL(this.stillUrl);
      this.stillUrl = null;
    }
  }

  /** Paints a decoded VideoFrame on the canvas; true when the canvas changed size. */
  draw(frame) {
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    let resized = false;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      resized = true;
    }
    if (!this.ctx) this.ctx = this.canvas.getContext("2d", { alpha: false, desynchronized: true });
    this.ctx.drawImage(frame, 0, 0, w, h);
    this.drawn = true;
    return resized;
  }

  /** Paints a tile ({x, y, width, height, rgba}) over the canvas; false before any frame. */
  drawTile(t) {
    if (!this.ctx || !this.drawn) return false;
    this.ctx.putImageData(new ImageData(t.rgba, t.width, t.height), t.x, t.y);
    return true;
  }

  /** The intrinsic size of what is shown now (its aspect ratio is the picture's). */
  size() {
    if (this.stillShown) return { width: this.still.naturalWidth, height: this.still.naturalHeight };
    if (this.transport === "ws") return this.drawn ? { width: this.canvas.width, height: this.canvas.height } : { width: 0, height: 0 };
    return { width: this.video.videoWidth, height: this.video.videoHeight };
  }
}
