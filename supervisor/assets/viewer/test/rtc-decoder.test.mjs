// The page's side of its own WebRTC decoder: what the browser must have, the receiver's
// transform pointed at one worker that owns the canvas, the worker's events mapped to the
// session's handlers, and the worker ended with the session.
import test from "node:test";
import assert from "node:assert/strict";
import { canDecodeRtc, RtcDecoder } from "../rtc-decoder.js";

class FakeWorker {
  static made = [];
  constructor(url, opts) {
    Object.assign(this, { url, opts });
    this.posted = [];
    this.terminated = false;
    FakeWorker.made.push(this);
  }
  postMessage(m, transfer) {
    this.posted.push({ m, transfer });
  }
  terminate() {
    this.terminated = true;
  }
}

class FakeTransform {
  constructor(worker, options) {
    Object.assign(this, { worker, options });
  }
}

const canvas = () => ({ transferControlToOffscreen: () => ({ offscreen: true }) });

function rig() {
  FakeWorker.made = [];
  const d = new RtcDecoder({ canvas: canvas(), WorkerImpl: FakeWorker, TransformImpl: FakeTransform, workerUrl: "w.js" });
  const calls = [];
  const handlers = {};
  for (const name of ["painted", "frame", "needKey", "fallback", "error"]) handlers[name] = (d) => calls.push([name, d]);
  return { d, calls, handlers };
}

test("what the browser must have", () => {
  class Canvas {}
  Canvas.prototype.transferControlToOffscreen = () => {};
  const all = { RTCRtpScriptTransform: class {}, VideoDecoder: class {}, Worker: class {}, HTMLCanvasElement: Canvas };
  assert.equal(canDecodeRtc(all), true);
  for (const k of Object.keys(all)) assert.equal(canDecodeRtc({ ...all, [k]: undefined }), false, k);
});

test("a worker that cannot start is the reason a track is refused", () => {
  class NoWorker {
    constructor() {
      throw new Error("module workers are off");
    }
  }
  const d = new RtcDecoder({ canvas: canvas(), WorkerImpl: NoWorker, TransformImpl: FakeTransform, workerUrl: "w.js" });
  const errors = [];
  assert.equal(d.start({ receiver: { transform: null } }, { error: (e) => errors.push(e) }), false);
  assert.deepEqual(errors, ["frame decoder: module workers are off"]);
});

test("the receiver's transform goes to one worker, started with the decoder, which gets the canvas", () => {
  const { d, handlers } = rig();
  assert.equal(FakeWorker.made.length, 1, "started before any track");
  const r1 = { transform: null };
  const r2 = { transform: null };
  assert.equal(d.start({ receiver: r1 }, handlers), true);
  assert.equal(d.start({ receiver: r2 }, handlers), true);
  assert.equal(FakeWorker.made.length, 1, "one worker for the session");
  const w = FakeWorker.made[0];
  assert.deepEqual(w.opts, { type: "module", name: "deskd-rtc-decoder" });
  assert.deepEqual(w.posted[0].m, { type: "canvas", canvas: { offscreen: true } });
  assert.deepEqual(w.posted[0].transfer, [{ offscreen: true }]);
  assert.ok(r1.transform instanceof FakeTransform && r1.transform.worker === w);
  assert.ok(r2.transform instanceof FakeTransform && r2.transform.worker === w);
  d.stop();
  assert.equal(w.terminated, true);
  assert.equal(d.start({ receiver: { transform: null } }, handlers), false, "not once stopped");
});

test("a receiver without transforms is refused with a reason", () => {
  const { d, calls, handlers } = rig();
  assert.equal(d.start({ receiver: {} }, handlers), false);
  assert.equal(d.start({}, handlers), false);
  assert.deepEqual(calls.map(([n]) => n), ["error", "error"]);
});

test("the worker's events: sizes when they change, every frame, key requests, fallback, errors", () => {
  const { d, calls, handlers } = rig();
  d.start({ receiver: { transform: null } }, handlers);
  const w = FakeWorker.made[0];
  const frame = { width: 1280, height: 720, rtpTimestamp: 1, receivedMs: 2, decodedEpochMs: 3, key: true };
  w.onmessage({ data: { event: "painted", detail: frame } });
  w.onmessage({ data: { event: "painted", detail: { ...frame, key: false } } });
  w.onmessage({ data: { event: "painted", detail: { ...frame, width: 640, height: 360 } } });
  w.onmessage({ data: { event: "need-key" } });
  w.onmessage({ data: { event: "unsupported", detail: { codec: "vp8", reason: "x" } } });
  w.onmessage({ data: { event: "error", detail: "decoder: corrupt" } });
  w.onmessage({ data: { event: "stats", detail: { decoded: 3 } } });
  w.onmessage({ data: "junk" });
  assert.deepEqual(
    calls.map(([n, x]) => (n === "frame" ? [n, x.width] : [n, x])),
    [
      ["painted", { width: 1280, height: 720 }],
      ["frame", 1280],
      ["frame", 1280],
      ["painted", { width: 640, height: 360 }],
      ["frame", 640],
      ["needKey", undefined],
      ["fallback", { codec: "vp8", reason: "x" }],
      ["error", "frame decoder: decoder: corrupt"],
    ],
  );
  assert.equal(d.decoded, 3);
  assert.deepEqual(d.stats, { decoded: 3 });
});
