// WebRTC's picture painted by the page as each frame is decoded (`?render=canvas`), instead
// of shown by the <video>. Chromium's <video> shows a WebRTC frame at the render time its
// receiver gives it, which counts a 10 ms render delay the page cannot lower; a
// MediaStreamTrackProcessor hands the page each frame once it is decoded. Every frame is
// painted, on the main thread, so it costs CPU; docs/viewer.md has the figures and why it is
// not the default. The <video> still plays the stream: its sound.
//
// In the page, not a worker: this Chromium cannot transfer a MediaStreamTrack to a worker,
// and a processor's stream transferred there still passes each frame through the page's
// main thread, which Chromium holds after a key press until its next frame is out (measured:
// flip p50 88 ms from a worker against 58 ms in the page).

import { Painter } from "./paint.js";

/** Whether this browser hands a page a video track's decoded frames. */
export function canPaintFrames(g = globalThis) {
  return typeof g.MediaStreamTrackProcessor === "function";
}

export class FramePainter {
  /**
   * - `canvas`: the canvas to paint (a fresh one: never handed to a worker);
   * - `isHidden()`: true while the page is not visible (its frames are not painted; the next
   *   one after it shows is);
   * - `Processor` for tests.
   */
  constructor({ canvas, isHidden = () => document.visibilityState === "hidden", Processor = globalThis.MediaStreamTrackProcessor }) {
    Object.assign(this, { canvas, isHidden, Processor });
    this.painter = new Painter(canvas);
    this.reader = null;
    this.stopped = false;
    /** Frames painted, and frames passed over while the page was hidden. */
    this.painted = 0;
    this.skipped = 0;
  }

  /**
   * Paints `track`'s frames from now on (in place of an earlier track's). `handlers`:
   * `painted({width, height})` for its first frame and each change of size, `error(text)`
   * when one fails. The same shape as RtcDecoder's (rtc-decoder.js).
   */
  start({ track }, { painted: onPainted = () => {}, error: onError = () => {} } = {}) {
    if (this.stopped) return false;
    let readable;
    try {
      readable = new this.Processor({ track }).readable;
    } catch (e) {
      onError(`frame painter: ${e && e.message ? e.message : e}`);
      return false;
    }
    this.pump(readable.getReader(), onPainted, onError);
    return true;
  }

  async pump(reader, onPainted, onError) {
    if (this.reader) this.reader.cancel().catch(() => {});
    this.reader = reader;
    let size = null;
    for (;;) {
      let next;
      try {
        next = await reader.read();
      } catch {
        return;
      }
      if (next.done) return;
      const frame = next.value;
      if (this.reader !== reader || this.stopped) {
        frame.close();
        return;
      }
      const width = frame.displayWidth;
      const height = frame.displayHeight;
      const resized = !size || size.width !== width || size.height !== height;
      if (!resized && this.isHidden()) {
        this.skipped += 1;
        frame.close();
        continue;
      }
      try {
        this.painter.frame(frame);
        this.painted += 1;
      } catch (e) {
        onError(`painting a frame: ${e && e.message ? e.message : e}`);
        continue;
      } finally {
        frame.close();
      }
      if (resized) {
        size = { width, height };
        onPainted(size);
      }
    }
  }

  /** Frames painted so far. */
  get decoded() {
    return this.painted;
  }

  /** Stops painting; the canvas keeps the last picture. */
  stop() {
    this.stopped = true;
    if (this.reader) this.reader.cancel().catch(() => {});
    this.reader = null;
  }
}
