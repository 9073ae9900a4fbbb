// The native stream's page-side session when the stream runs in a worker: the canvas handed
// over as an OffscreenCanvas, events and state from the worker, input and paste to it, close
// reported once at once, a worker that fails to load reported so the page stops using one.
// Also the painter both sides share.
import test from "node:test";
import assert from "node:assert/strict";
import { available, RemoteNativeSession, startWorker } from "../native-remote.js";
import { Painter } from "../paint.js";

class FakeWorker {
  static modules = true;
  constructor(url, opts) {
    // A browser with module workers reads `type`; an older one does not.
    Object.assign(this, { url, opts, type: FakeWorker.modules ? opts.type : undefined });
    this.posted = [];
    this.terminated = false;
    FakeWorker.last = this;
  }
  postMessage(m, transfer) {
    this.posted.push([m, transfer]);
  }
  terminate() {
    this.terminated = true;
  }
  emit(m) {
    this.onmessage({ data: m });
  }
}

function rig() {
  const events = [];
  const offscreen = { offscreen: true };
  const canvas = { transferControlToOffscreen: () => offscreen };
  const s = new RemoteNativeSession({ url: "ws://h/stream/ws", canvas, on: (ev, d) => events.push([ev, d]), WorkerImpl: FakeWorker });
  s.start();
  return { s, w: FakeWorker.last, events, offscreen };
}

test("the worker is a module next to this one and gets the URL and the canvas, transferred", () => {
  const { w, offscreen } = rig();
  assert.match(w.url, /\/stream-worker\.js$/);
  assert.equal(w.type, "module");
  assert.deepEqual(w.posted, [[{ type: "start", url: "ws://h/stream/ws", canvas: offscreen }, [offscreen]]]);
});

test("events pass through with the worker's state; input only once it is open", () => {
  const { s, w, events } = rig();
  assert.equal(s.sendInput(new ArrayBuffer(3)), false, "nothing before hello");
  w.emit({ event: "state", state: { opened: true, lastReceived: 1234, inputOpen: false, stats: { decoded: 0 } } });
  assert.equal(s.opened, true);
  assert.equal(s.lastReceived, 1234);
  assert.deepEqual(events, [], "a state update is not an event");
  w.emit({ event: "hello", detail: { width: 1280 }, state: { opened: true, lastReceived: 1300, inputOpen: true, stats: { decoded: 0 } } });
  w.emit({ event: "frame", detail: { seq: 1, decodedEpochMs: 1400, width: 1280, height: 720 }, state: { opened: true, lastReceived: 1400, inputOpen: true, stats: { decoded: 1 } } });
  assert.deepEqual(events.map(([e]) => e), ["hello", "frame"]);
  assert.equal(s.stats.decoded, 1);
  const buf = new Uint8Array([3, 0, 4]).buffer;
  assert.equal(s.sendInput(buf), true);
  assert.equal(s.paste("hi", 0x76), true);
  assert.deepEqual(w.posted.slice(1).map(([m]) => m), [{ type: "input", buf }, { type: "paste", text: "hi", keysym: 0x76 }]);
});

test("close is reported once, at once; the worker's own close after it is not", () => {
  const { s, w, events } = rig();
  s.close(4000, "open timeout");
  s.close(1000, "again");
  w.emit({ event: "close", detail: { code: 1006 } });
  assert.deepEqual(events, [["close", { code: 4000, reason: "open timeout", opened: false, local: true }]]);
  assert.deepEqual(w.posted.at(-1)[0], { type: "close", code: 4000, reason: "open timeout" });
  assert.equal(s.sendInput(new ArrayBuffer(1)), false);
});

test("a close from the server passes through and ends input", () => {
  const { s, w, events } = rig();
  w.emit({ event: "hello", detail: {}, state: { opened: true, lastReceived: 1, inputOpen: true, stats: {} } });
  w.emit({ event: "close", detail: { code: 4503, reason: "display gone", opened: true }, state: { opened: true, lastReceived: 2, inputOpen: true, stats: {} } });
  assert.deepEqual(events.at(-1), ["close", { code: 4503, reason: "display gone", opened: true }]);
  assert.equal(s.inputOpen, false);
  assert.equal(s.closed, true);
});

test("a session's worker does not outlive it, whoever closed it", async () => {
  const server = rig();
  server.w.emit({ event: "close", detail: { code: 4503, reason: "display gone", opened: true } });
  const local = rig();
  local.s.close(4000, "stale connection");
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal(server.w.terminated, true, "closed by the server");
  assert.equal(local.w.terminated, true, "closed by the page");
});

test("a worker that fails (its script not fetched while deskd restarts) closes the session for a retry", () => {
  const { w, events } = rig();
  let prevented = false;
  w.onerror({ message: "failed to fetch", preventDefault: () => (prevented = true) });
  assert.equal(prevented, true);
  assert.deepEqual(events.map(([e]) => e), ["error", "close"]);
  assert.equal(events[1][1].code, 4000);
});

test("a browser without module workers gets no worker, and a session says why", () => {
  FakeWorker.modules = false;
  try {
    assert.equal(startWorker(FakeWorker), null);
    assert.equal(FakeWorker.last.terminated, true);
    const { events } = rig();
    assert.deepEqual(events.map(([e]) => e), ["error", "close"]);
    assert.match(events[0][1], /module workers/);
  } finally {
    FakeWorker.modules = true;
  }
});

test("available() needs workers and OffscreenCanvas", () => {
  class Canvas {}
  Canvas.prototype.transferControlToOffscreen = () => {};
  assert.equal(available({ Worker: FakeWorker, OffscreenCanvas: class {}, HTMLCanvasElement: Canvas }), true);
  assert.equal(available({ Worker: FakeWorker, HTMLCanvasElement: Canvas }), false);
  assert.equal(available({ Worker: FakeWorker, OffscreenCanvas: class {}, HTMLCanvasElement: class {} }), false);
  assert.equal(available({}), false);
});

test("the painter sizes the canvas to the frame and paints tiles only over a picture", () => {
  const calls = [];
  const ctx = {
    drawImage: (...a) => calls.push(["drawImage", ...a.slice(1)]),
    putImageData: (img, x, y) => calls.push(["putImageData", img.width, img.height, x, y]),
    fillRect: (...a) => calls.push(["fillRect", ctx.fillStyle, ...a]),
  };
  const canvas = { width: 300, height: 150, getContext: (kind, opts) => (calls.push(["getContext", kind, opts]), ctx) };
  const p = new Painter(canvas);
  globalThis.ImageData ??= class {
    constructor(data, width, height) {
      Object.assign(this, { data, width, height });
    }
  };
  const tile = { x: 4, y: 8, width: 1, height: 1, rgba: new Uint8ClampedArray(4) };
  assert.equal(p.tile(tile), false, "nothing to paint over yet");
  assert.equal(p.frame({ displayWidth: 1280, displayHeight: 720 }), true);
  assert.equal(p.frame({ displayWidth: 1280, displayHeight: 720 }), false);
  assert.equal(p.tile(tile), true);
  assert.equal(p.tile({ x: 0, y: 10, width: 1280, height: 700, fill: [255, 0, 17] }), true);
  assert.equal(p.copy({ sx: 0, sy: 16, width: 1280, height: 700, dx: 0, dy: 0 }), true);
  assert.deepEqual([canvas.width, canvas.height], [1280, 720]);
  assert.deepEqual(calls, [
    ["getContext", "2d", { alpha: false, desynchronized: true }],
    ["drawImage", 0, 0, 1280, 720],
    ["drawImage", 0, 0, 1280, 720],
    ["putImageData", 1, 1, 4, 8],
    ["fillRect", "rgb(255, 0, 17)", 0, 10, 1280, 700],
    ["drawImage", 0, 16, 1280, 700, 0, 0, 1280, 700],
  ]);
});
