// WebRTC's frames painted by the page: every frame painted and closed, the first frame and
// each new size reported, none painted while the page is hidden, a new track replacing the
// old one, a frame that fails reported without ending the painting.
import test from "node:test";
import assert from "node:assert/strict";
import { canPaintFrames, FramePainter } from "../frame-painter.js";

/** A track's frames as a MediaStreamTrackProcessor gives them: `push` a frame, `end`. */
class FakeProcessor {
  constructor({ track }) {
    this.track = track;
    const queue = [];
    let wake = null;
    this.cancelled = false;
    const self = this;
    this.readable = {
      getReader: () => ({
        read: () =>
          new Promise((resolve) => {
            if (queue.length) resolve(queue.shift());
            else wake = resolve;
          }),
        cancel: () => {
          self.cancelled = true;
          if (wake) wake({ done: true });
          return Promise.resolve();
        },
      }),
    };
    this.push = (v) => {
      const item = v === null ? { done: true } : { done: false, value: v };
      if (wake) {
        const w = wake;
        wake = null;
        w(item);
      } else queue.push(item);
    };
    FakeProcessor.made.push(this);
  }
}
FakeProcessor.made = [];

class Frame {
  constructor(w = 1280, h = 720) {
    this.displayWidth = w;
    this.displayHeight = h;
    this.closed = false;
  }
  close() {
    this.closed = true;
  }
}

function canvas() {
  const drawn = [];
  const ctx = { drawImage: (f) => drawn.push(f) };
  return { width: 300, height: 150, drawn, getContext: () => ctx, transferControlToOffscreen: () => ({ offscreen: true }) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test("what the browser must have", () => {
  assert.equal(canPaintFrames({}), false);
  assert.equal(canPaintFrames({ MediaStreamTrackProcessor: class {} }), true);
});

test("in the page: every frame painted and closed, sizes reported when they change", async () => {
  FakeProcessor.made = [];
  const c = canvas();
  const p = new FramePainter({ canvas: c, isHidden: () => false, Processor: FakeProcessor });
  const sizes = [];
  p.start({ track: { id: "t1" } }, { painted: (s) => sizes.push(s) });
  const src = FakeProcessor.made[0];
  const frames = [new Frame(), new Frame(), new Frame(640, 360)];
  for (const f of frames) src.push(f);
  await tick();
  await tick();
  assert.deepEqual(c.drawn, frames);
  assert.ok(frames.every((f) => f.closed), "each frame closed after painting");
  assert.deepEqual(sizes, [
    { width: 1280, height: 720 },
    { width: 640, height: 360 },
  ]);
  // A new track replaces the old: the old stream is cancelled.
  p.start({ track: { id: "t2" } }, { painted: (s) => sizes.push(s) });
  assert.equal(src.cancelled, true);
  const next = FakeProcessor.made[1];
  const late = new Frame();
  next.push(late);
  await tick();
  assert.equal(c.drawn.at(-1), late);
  assert.deepEqual(sizes.at(-1), { width: 1280, height: 720 }, "the new stream's first frame is reported");
  p.stop();
  assert.equal(next.cancelled, true);
});

test("in the page: a frame that fails to paint is reported and closed; painting goes on", async () => {
  FakeProcessor.made = [];
  const c = canvas();
  let fail = true;
  c.getContext = () => ({
    drawImage: (f) => {
      if (fail) {
        fail = false;
        throw new Error("detached");
      }
      c.drawn.push(f);
    },
  });
  const p = new FramePainter({ canvas: c, isHidden: () => false, Processor: FakeProcessor });
  const errors = [];
  p.start({ track: {} }, { error: (e) => errors.push(e) });
  const bad = new Frame();
  const good = new Frame();
  FakeProcessor.made[0].push(bad);
  FakeProcessor.made[0].push(good);
  await tick();
  await tick();
  assert.deepEqual(errors, ["painting a frame: detached"]);
  assert.equal(bad.closed, true);
  assert.deepEqual(c.drawn, [good]);
  p.stop();
});

test("while the page is hidden frames are closed unpainted; the first one after is painted", async () => {
  FakeProcessor.made = [];
  const c = canvas();
  let hidden = false;
  const p = new FramePainter({ canvas: c, isHidden: () => hidden, Processor: FakeProcessor });
  p.start({ track: {} });
  const src = FakeProcessor.made[0];
  const [a, b, d] = [new Frame(), new Frame(), new Frame()];
  src.push(a);
  await tick();
  hidden = true;
  src.push(b);
  await tick();
  hidden = false;
  src.push(d);
  await tick();
  assert.deepEqual(c.drawn, [a, d]);
  assert.equal(b.closed, true);
  assert.deepEqual([p.painted, p.skipped], [2, 1]);
  p.stop();
});

test("a track the browser cannot process is an error, not a throw", () => {
  const p = new FramePainter({
    canvas: canvas(),
    isHidden: () => false,
    Processor: class {
      constructor() {
        throw new TypeError("not a video track");
      }
    },
  });
  const errors = [];
  p.start({ track: {} }, { error: (e) => errors.push(e) });
  assert.deepEqual(errors, ["frame painter: not a video track"]);
});
