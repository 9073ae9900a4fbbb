// Painting the native stream onto a canvas (an HTMLCanvasElement in the page, or an
// OffscreenCanvas in the stream worker): decoded VideoFrames at their own size, and tiles
// (small changes sent as RGBA, boxes of one colour as fills, ahead of their frame) over them. No DOM, so workers import it.

export class Painter {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = null;
    this.drawn = false;
  }

  /**
   * Paints a decoded VideoFrame, or an image of the native stream's JPEG mode
   * ({bitmap, x, y, full, displayWidth, displayHeight}: the screen's size); true when the
   * canvas changed size. An image of part of the screen is painted only over a picture.
   */
  frame(frame) {
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (frame.bitmap && !frame.full && !this.drawn) return false;
    const resized = this.fit(w, h);
    if (frame.bitmap) this.ctx.drawImage(frame.bitmap, frame.x, frame.y);
    else this.ctx.drawImage(frame, 0, 0, w, h);
    this.drawn = true;
    return resized;
  }

  /** The canvas at `w`x`h` with its context; true when its size changed. */
  fit(w, h) {
    let resized = false;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      resized = true;
    }
    if (!this.ctx) this.ctx = this.canvas.getContext("2d", { alpha: false, desynchronized: true });
    return resized;
  }

  /**
   * Whether `frame` (a VideoFrame) converts to RGBA with copyTo: libyuv's conversion plus
   * putImageData cost a quarter of drawImage's (about 1.8 ms against 6 for 1280x720 in
   * software, measured in Chromium 156 without a GPU), which converts the whole frame into
   * an image even for a part of it. A browser that ignores copyTo's `format` would copy
   * I420: its allocationSize says so.
   */
  static convertsToRgba(frame) {
    try {
      return typeof frame.copyTo === "function" && frame.allocationSize({ format: "RGBA" }) === frame.displayWidth * frame.displayHeight * 4 && frame.visibleRect && frame.visibleRect.width === frame.displayWidth && frame.visibleRect.height === frame.displayHeight;
    } catch {
      return false;
    }
  }

  /**
   * Paints a decoded VideoFrame through an RGBA copy (see convertsToRgba; drawImage where it
   * does not); resolves true when the canvas changed size. The caller keeps the frame open
   * until then, and paints one frame at a time.
   */
  async frameRgba(frame) {
    if (!Painter.convertsToRgba(frame)) return this.frame(frame);
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (!this.image || this.image.width !== w || this.image.height !== h) this.image = new ImageData(w, h);
    await frame.copyTo(this.image.data, { format: "RGBA" });
    const resized = this.fit(w, h);
    this.ctx.putImageData(this.image, 0, 0);
    this.drawn = true;
    return resized;
  }

  /** Copies a box of the picture ({sx, sy, width, height, dx, dy}) within it; false before any frame. */
  copy(c) {
    if (!this.ctx || !this.drawn) return false;
    // A canvas drawn onto itself reads the picture as it was before the call, overlap or not.
    this.ctx.drawImage(this.canvas, c.sx, c.sy, c.width, c.height, c.dx, c.dy, c.width, c.height);
    return true;
  }

  /**
   * Paints a tile ({x, y, width, height} and `rgba` pixels or a `fill` colour [r, g, b]) over
   * the picture; false before any frame.
   */
  tile(t) {
    if (!this.ctx || !this.drawn) return false;
    if (t.fill) {
      this.ctx.fillStyle = `rgb(${t.fill[0]}, ${t.fill[1]}, ${t.fill[2]})`;
      this.ctx.fillRect(t.x, t.y, t.width, t.height);
    } else {
      this.ctx.putImageData(new ImageData(t.rgba, t.width, t.height), t.x, t.y);
    }
    return true;
  }
}
