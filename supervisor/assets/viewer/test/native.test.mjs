// The native-stream session against fake WebSocket and VideoDecoder objects: hello, decoding
// key/delta frames, waiting for a key frame after a gap or a decoder error (and asking for
// one), input and paste on the socket.
import test from "node:test";
import assert from "node:assert/strict";
import { NativeSession } from "../native.js";

class FakeWS {
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    FakeWS.last = this;
  }
  send(data) {
    this.sent.push(typeof data === "string" ? JSON.parse(data) : [...new Uint8Array(data)]);
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  text(obj) {
    this.onmessage({ data: JSON.stringify(obj) });
  }
  binary(buf) {
    this.onmessage({ data: buf });
  }
}

class FakeDecoder {
  constructor({ output, error }) {
    Object.assign(this, { output, error });
    this.state = "unconfigured";
    this.decodeQueueSize = 0;
    this.chunks = [];
    FakeDecoder.all.push(this);
  }
  configure(config) {
    if (config.codec.startsWith("bogus")) throw new TypeError("unsupported codec");
    this.config = config;
    this.state = "configured";
  }
  decode(chunk) {
    this.chunks.push(chunk);
    // Synchronous output keeps the test simple; a real decoder answers later.
    this.output({ timestamp: chunk.timestamp, close() { this.closed = true; } });
  }
  close() {
    this.state = "closed";
  }
}
FakeDecoder.all = [];

class Chunk {
  constructor(init) {
    Object.assign(this, init);
  }
}

function frame(seq, key, captureUs = 1000 + seq) {
  const buf = new Uint8Array(22);
  const v = new DataView(buf.buffer);
  v.setUint8(0, 0x10);
  v.setUint8(1, key ? 1 : 0);
  v.setUint32(2, seq);
  v.setBigUint64(6, BigInt(captureUs));
  v.setUint16(14, 1280);
  v.setUint16(16, 720);
  buf.set([0, 0, 0, 1], 18);
  return buf.buffer;
}

const HELLO = { type: "hello", protocol: 1, access: "control", width: 1280, height: 720, codec: "avc1.42e01f" };

/** A decoder that answers when told to, as a real one does later. */
class LateDecoder extends FakeDecoder {
  decode(chunk) {
    this.chunks.push(chunk);
  }
  answer() {
    const chunk = this.chunks.shift();
    this.output({ timestamp: chunk.timestamp, close() {} });
  }
}

function tile(seq, x, y, width, height, fill = 9) {
  const buf = new Uint8Array(13 + width * height * 4).fill(fill);
  const v = new DataView(buf.buffer);
  v.setUint8(0, 0x11);
  v.setUint32(1, seq);
  v.setUint16(5, x);
  v.setUint16(7, y);
  v.setUint16(9, width);
  v.setUint16(11, height);
  return buf.buffer;
}

function session(VideoDecoderImpl = FakeDecoder) {
  FakeDecoder.all = [];
  const events = [];
  const drawn = [];
  const s = new NativeSession({
    url: "ws://h/stream/ws",
    on: (ev, d) => events.push([ev, d]),
    draw: (f, meta) => drawn.push(meta.seq),
    drawTile: (t) => drawn.push(`tile ${t.seq} at ${t.x},${t.y}`),
    WebSocketImpl: FakeWS,
    VideoDecoderImpl,
    EncodedVideoChunkImpl: Chunk,
  });
  s.start();
  const ws = FakeWS.last;
  ws.onopen();
  return { s, ws, events, drawn };
}

const named = (events, name) => events.filter(([e]) => e === name).map(([, d]) => d);

test("hello configures a low-latency decoder and opens input for a control client", () => {
  const { s, ws, events } = session();
  assert.equal(ws.binaryType, "arraybuffer");
  assert.equal(s.inputOpen, false);
  ws.text(HELLO);
  assert.deepEqual(named(events, "access"), ["control"]);
  assert.deepEqual(named(events, "screen"), [{ width: 1280, height: 720 }]);
  assert.deepEqual(named(events, "host"), [{ isHost: true }]);
  assert.deepEqual(named(events, "input-open"), [true]);
  assert.deepEqual(FakeDecoder.all[0].config, { codec: "avc1.42e01f", codedWidth: 1280, codedHeight: 720, optimizeForLatency: true });
  assert.equal(s.inputOpen, true);
});

test("a view client is never host", () => {
  const { ws, events } = session();
  ws.text({ ...HELLO, access: "view" });
  assert.deepEqual(named(events, "host"), [{ isHost: false }]);
  assert.deepEqual(named(events, "access"), ["view"]);
});

test("key and delta frames are decoded in order; deltas before the first key are dropped", () => {
  const { s, ws, events, drawn } = session();
  ws.text(HELLO);
  ws.binary(frame(4, false));
  ws.binary(frame(5, true));
  ws.binary(frame(6, false));
  const d = FakeDecoder.all[0];
  assert.deepEqual(d.chunks.map((c) => [c.type, c.timestamp, [...c.data]]), [["key", 5, [0, 0, 0, 1]], ["delta", 6, [0, 0, 0, 1]]]);
  assert.deepEqual(drawn, [5, 6]);
  assert.deepEqual(named(events, "frame").map((m) => [m.seq, m.captureUs, m.key]), [[5, 1005, true], [6, 1006, false]]);
  assert.equal(s.stats.dropped, 1);
});

test("a tile is painted at once and over older frames until its own frame is shown", () => {
  const { s, ws, drawn } = session(LateDecoder);
  ws.text(HELLO);
  const d = FakeDecoder.all[0];
  ws.binary(frame(1, true));
  d.answer();
  ws.binary(frame(2, false)); // encoded before the change: still in the decoder
  ws.binary(tile(3, 16, 32, 8, 16));
  assert.deepEqual(drawn, [1, "tile 3 at 16,32"], "painted the moment it arrives");
  ws.binary(frame(3, false)); // carries the same change
  d.answer();
  assert.deepEqual(drawn.slice(2), [2, "tile 3 at 16,32"], "frame 2 is older: the tile goes over it again");
  d.answer();
  assert.deepEqual(drawn.slice(4), [3], "frame 3 has the change: the tile is forgotten");
  assert.equal(s.tiles.length, 0);
  assert.equal(s.stats.tiles, 1);
  // a tile whose pixels do not match its size is not a tile
  ws.binary(tile(4, 0, 0, 2, 2).slice(0, 20));
  assert.equal(s.stats.tiles, 1);
});

test("pending tiles are bounded, and a new decoder forgets them", () => {
  const { s, ws } = session(LateDecoder);
  ws.text(HELLO);
  for (let i = 0; i < 40; i++) ws.binary(tile(100 + i, i, 0, 1, 1));
  assert.equal(s.tiles.length, 32);
  assert.equal(s.tiles[0].seq, 108, "the oldest went first");
  ws.text({ type: "resize", width: 800, height: 600, codec: "avc1.42e01f" });
  assert.equal(s.tiles.length, 0);
});

test("a gap in seq waits for the next key frame", () => {
  const { s, ws, drawn } = session();
  ws.text(HELLO);
  ws.binary(frame(1, true));
  ws.binary(frame(2, false));
  ws.binary(frame(5, false)); // 3 and 4 skipped by the server
  ws.binary(frame(6, false));
  ws.binary(frame(7, true));
  ws.binary(frame(8, false));
  assert.deepEqual(drawn, [1, 2, 7, 8]);
  assert.equal(s.stats.gaps, 1);
  // seq wraps around without counting as a gap
  ws.binary(frame(0xffffffff, true));
  ws.binary(frame(0, false));
  assert.deepEqual(drawn.slice(-2), [0xffffffff, 0]);
  assert.equal(s.stats.gaps, 2, "8 → 0xffffffff is a gap, 0xffffffff → 0 is not");
});

test("a decoder error resets the decoder, asks for a key frame and waits for it", () => {
  const { s, ws, events, drawn } = session();
  ws.text(HELLO);
  ws.binary(frame(1, true));
  const first = FakeDecoder.all[0];
  first.error(new Error("broken bitstream"));
  assert.equal(first.state, "closed");
  assert.equal(FakeDecoder.all.length, 2);
  assert.deepEqual(ws.sent, [{ type: "keyframe" }]);
  ws.binary(frame(2, false));
  ws.binary(frame(3, true));
  assert.deepEqual(drawn, [1, 3]);
  assert.equal(s.stats.resets, 1);
  assert.ok(named(events, "error").some((e) => /broken bitstream/.test(e)));
  // A late error from the old decoder changes nothing.
  first.error(new Error("late"));
  assert.equal(FakeDecoder.all.length, 2);
});

test("a decoder that falls behind is reset to the next key frame", () => {
  const { ws, drawn } = session();
  ws.text(HELLO);
  ws.binary(frame(1, true));
  FakeDecoder.all[0].decodeQueueSize = 100;
  ws.binary(frame(2, false));
  assert.equal(FakeDecoder.all.length, 2);
  assert.deepEqual(ws.sent, [{ type: "keyframe" }]);
  ws.binary(frame(3, false));
  ws.binary(frame(4, true));
  assert.deepEqual(drawn, [1, 4]);
});

test("resize reconfigures and waits for a key frame", () => {
  const { ws, events, drawn } = session();
  ws.text(HELLO);
  ws.binary(frame(1, true));
  ws.text({ type: "resize", width: 800, height: 600, codec: "avc1.42e01f" });
  assert.deepEqual(named(events, "screen").pop(), { width: 800, height: 600 });
  assert.equal(FakeDecoder.all[1].config.codedWidth, 800);
  ws.binary(frame(2, false));
  ws.binary(frame(3, true));
  assert.deepEqual(drawn, [1, 3]);
});

test("an unsupported codec is reported", () => {
  const { ws, events } = session();
  ws.text({ ...HELLO, codec: "bogus.1" });
  assert.equal(named(events, "unsupported")[0].codec, "bogus.1");
  ws.binary(frame(1, true)); // no decoder: dropped, no crash
});

test("cursor and pong messages are passed on; garbage is reported, not thrown", () => {
  const { ws, events } = session();
  ws.text(HELLO);
  ws.binary(new Uint8Array([0x01, 0, 4, 0, 10, 0, 20]).buffer);
  assert.deepEqual(named(events, "server-message"), [{ type: "cursor-position", x: 10, y: 20 }]);
  ws.onmessage({ data: "not json" });
  assert.equal(named(events, "error").length, 1);
});

test("input and paste go out on the socket; nothing before hello", () => {
  const { s, ws } = session();
  assert.equal(s.sendInput(new Uint8Array([1, 0, 4, 0, 1, 0, 2]).buffer), false);
  ws.text(HELLO);
  assert.equal(s.sendInput(new Uint8Array([1, 0, 4, 0, 1, 0, 2]).buffer), true);
  s.paste("héllo");
  s.paste("x", 0x76);
  assert.deepEqual(ws.sent, [
    [1, 0, 4, 0, 1, 0, 2],
    { type: "paste", text: "héllo" },
    { type: "clipboard", text: "x" },
    [3, 0, 4, 0, 0, 0, 0x76],
    [4, 0, 4, 0, 0, 0, 0x76],
  ]);
});

test("close is reported once, with the server's code, and the decoder is closed", () => {
  const { s, ws, events } = session();
  ws.text(HELLO);
  ws.onclose({ code: 4503, reason: "display gone" });
  s.close(4000, "again");
  assert.deepEqual(named(events, "close"), [{ code: 4503, reason: "display gone", opened: true }]);
  assert.equal(FakeDecoder.all[0].state, "closed");
  const t = session();
  t.s.close(4000, "stale connection");
  assert.equal(t.ws.closedWith, 4000);
  assert.deepEqual(named(t.events, "close"), [{ code: 4000, reason: "stale connection", opened: true, local: true }]);
});

// ---- JPEG mode: images decoded in parallel, painted in the order they came ----

function image(seq, { full = false, last = true, x = 0, y = 0, width = 1280, height = 720 } = {}) {
  const buf = new Uint8Array(24);
  const v = new DataView(buf.buffer);
  v.setUint8(0, 0x13);
  v.setUint8(1, (full ? 1 : 0) | (last ? 2 : 0));
  v.setUint32(2, seq);
  v.setBigUint64(6, BigInt(5000 + seq));
  v.setUint16(14, x);
  v.setUint16(16, y);
  v.setUint16(18, width);
  v.setUint16(20, height);
  buf.set([0xff, 0xd8], 22);
  return buf.buffer;
}

/** A session in JPEG mode whose image decodes finish when the test says (`decodes[i].done()`). */
function jpegSession() {
  const events = [];
  const drawn = [];
  const decodes = [];
  const s = new NativeSession({
    url: "ws://h/stream/ws?codec=jpeg",
    on: (ev, d) => events.push([ev, d]),
    draw: (img, meta) => drawn.push(`image ${meta.seq} at ${img.x},${img.y}${img.full ? " full" : ""} of ${img.displayWidth}x${img.displayHeight}`),
    drawTile: (t) => drawn.push(`tile ${t.seq} at ${t.x},${t.y}`),
    drawCopy: (c) => drawn.push(`copy ${c.seq} ${c.sy}->${c.dy} x${c.height}`),
    WebSocketImpl: FakeWS,
    VideoDecoderImpl: undefined,
    createImageBitmapImpl: (blob) =>
      new Promise((resolve, reject) => {
        const bitmap = { blob, close() { this.closed = true; } };
        decodes.push({ bitmap, done: () => resolve(bitmap), fail: () => reject(new Error("corrupt JPEG")) });
      }),
    BlobImpl: class {
      constructor(parts, opts) {
        Object.assign(this, { parts, opts });
      }
    },
  });
  s.start();
  const ws = FakeWS.last;
  ws.onopen();
  ws.text({ ...HELLO, codec: "jpeg" });
  return { s, ws, events, drawn, decodes };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

test("JPEG mode: no video decoder; parts before a whole picture are dropped", async () => {
  const { s, ws, events, drawn, decodes } = jpegSession();
  assert.equal(s.decoder, null);
  assert.deepEqual(named(events, "unsupported"), []);
  ws.binary(image(1, { x: 10, y: 10, width: 20, height: 20 }));
  assert.equal(decodes.length, 0, "a part before any whole picture is not decoded");
  ws.binary(image(2, { full: true }));
  assert.equal(decodes[0].bitmap.blob.opts.type, "image/jpeg");
  decodes[0].done();
  await settle();
  assert.deepEqual(drawn, ["image 2 at 0,0 full of 1280x720"]);
  assert.equal(decodes[0].bitmap.closed, true, "the bitmap is closed once painted");
  assert.deepEqual(named(events, "frame").map((f) => [f.seq, f.key, f.captureUs]), [[2, true, 5002]]);
});

test("JPEG mode: images and tiles are painted in the order they came, whatever order they decode in", async () => {
  const { ws, events, drawn, decodes } = jpegSession();
  ws.binary(image(1, { full: true }));
  ws.binary(image(2, { x: 100, y: 0, width: 50, height: 50, last: false }));
  ws.binary(tile(0, 5, 6, 1, 1));
  ws.binary(image(2, { x: 300, y: 0, width: 50, height: 50 }));
  decodes[2].done();
  decodes[1].done();
  await settle();
  assert.deepEqual(drawn, [], "nothing before the first image is decoded");
  decodes[0].done();
  await settle();
  assert.deepEqual(drawn, ["image 1 at 0,0 full of 1280x720", "image 2 at 100,0 of 1280x720", "tile 0 at 5,6", "image 2 at 300,0 of 1280x720"]);
  assert.deepEqual(named(events, "frame").map((f) => f.seq), [1, 2], "one frame per update, at its last image");
  ws.binary(image(3, { x: 1, y: 1, width: 2, height: 2 }));
  decodes[3].done();
  await settle();
  assert.equal(drawn.length, 5, "no tile is painted again over a later image");
});

test("JPEG mode: a failed decode drops what waits and asks for the whole screen", async () => {
  const { s, ws, events, drawn, decodes } = jpegSession();
  ws.binary(image(1, { full: true }));
  ws.binary(image(2, { x: 8, y: 8, width: 8, height: 8 }));
  decodes[0].fail();
  decodes[1].done();
  await settle();
  assert.deepEqual(drawn, []);
  assert.match(named(events, "error")[0], /image decode: corrupt JPEG/);
  assert.deepEqual(ws.sent.filter((m) => m.type === "keyframe").length, 1);
  assert.equal(decodes[1].bitmap.closed, true, "a dropped image's bitmap is closed too");
  ws.binary(image(3, { x: 8, y: 8, width: 8, height: 8 }));
  assert.equal(decodes.length, 2, "parts wait for the whole screen again");
  ws.binary(image(4, { full: true }));
  decodes[2].done();
  await settle();
  assert.deepEqual(drawn, ["image 4 at 0,0 full of 1280x720"]);
  assert.equal(s.stats.resets, 1);
});

test("JPEG mode: a page that cannot keep up skips to the whole screen, bounded", async () => {
  const { s, ws, decodes } = jpegSession();
  ws.binary(image(1, { full: true }));
  for (let i = 0; i < 40; i += 1) ws.binary(image(2 + i, { x: i, y: 0, width: 1, height: 1 }));
  assert.equal(decodes.length, 32, "at most 32 wait to be painted");
  assert.equal(ws.sent.filter((m) => m.type === "keyframe").length, 1);
  assert.ok(s.stats.dropped >= 8);
  for (const d of decodes) d.done();
  await settle();
  assert.equal(s.paintQueue, 0);
});

function copy(seq, sy, dy, height, last = false) {
  const buf = new Uint8Array(18);
  const v = new DataView(buf.buffer);
  v.setUint8(0, 0x14);
  v.setUint8(1, last ? 2 : 0);
  v.setUint32(2, seq);
  v.setUint16(6, 0);
  v.setUint16(8, sy);
  v.setUint16(10, 1280);
  v.setUint16(12, height);
  v.setUint16(14, 0);
  v.setUint16(16, dy);
  return buf.buffer;
}

test("JPEG mode: a copy (rows that scrolled) is painted in turn, and ends its update when last", async () => {
  const { ws, events, drawn, decodes } = jpegSession();
  ws.binary(copy(1, 16, 0, 700, true));
  assert.deepEqual(drawn, [], "nothing to copy before a whole picture");
  ws.binary(image(2, { full: true }));
  ws.binary(copy(3, 16, 0, 690));
  ws.binary(image(3, { y: 690, height: 30 }));
  ws.binary(copy(4, 0, 16, 700, true));
  decodes[1].done();
  decodes[0].done();
  await settle();
  assert.deepEqual(drawn, ["image 2 at 0,0 full of 1280x720", "copy 3 16->0 x690", "image 3 at 0,690 of 1280x720", "copy 4 0->16 x700"]);
  assert.deepEqual(named(events, "frame").map((f) => f.seq), [2, 3, 4]);
});

test("the desktop's clipboard is passed on; a clipboard message without text is refused", () => {
  const { ws, events } = session();
  ws.text(HELLO);
  ws.text({ type: "clipboard", text: "copied on the desktop" });
  ws.text({ type: "clipboard", text: 7 });
  assert.deepEqual(named(events, "clipboard"), ["copied on the desktop"]);
  assert.equal(named(events, "error").length, 1, "the bad one is reported");
});
