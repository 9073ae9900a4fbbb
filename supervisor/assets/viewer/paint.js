// Painting the native stream onto a canvas (an HTMLCanvasElement in the page, or an
// OffscreenCanvas in the stream worker): decoded VideoFrames at their own size, and tiles
// (small changes sent as RGBA ahead of their frame) over them. No DOM, so workers import it.

export class Painter {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = null;
    this.drawn = false;
  }

  /** Paints a decoded VideoFrame; true when the canvas changed size. */
  frame(frame) {
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

  /** Paints a tile ({x, y, width, height, rgba}) over the picture; false before any frame. */
  tile(t) {
    if (!this.ctx || !this.drawn) return false;
    this.ctx.putImageData(new ImageData(t.rgba, t.width, t.height), t.x, t.y);
    return true;
  }
}
