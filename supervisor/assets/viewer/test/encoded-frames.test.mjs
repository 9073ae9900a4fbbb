// The page's own WebRTC decoder, pure: NAL units, codec strings, the neko feed's repeats told
// from pictures, and FrameDecoder's flow (key frames, repeats skipped, codecs it cannot decode
// handed back, a failing or lagging decoder started over at a key frame).
import test from "node:test";
import assert from "node:assert/strict";
import { codecFor, FrameDecoder, isRepeat, nalUnits, PENDING_MAX, QUEUE_MAX } from "../encoded-frames.js";

const H264 = "video/H264";
const bytes = (...parts) => new Uint8Array(parts.flat());
const SC = [0, 0, 0, 1];
const SPS = [...SC, 0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40];
const PPS = [...SC, 0x68, 0xce, 0x3c, 0x80];
const IDR = [...SC, 0x65, 0x88, 0x84, 0x00, 0x33];
// The picture timing SEI the feed puts before each unit's first slice (pic_struct 0).
const SEI = [...SC, 0x06, 0x01, 0x01, 0x04, 0x80];
// A repeat for 1280x720 as the feed writes it (Bitstream::repeat, printed by its test).
const REPEAT = [...SC, 0x01, 0x9a, 0x00, 0x04, 0xa0, 0x01, 0xc2, 0x30];

test("NAL units: 3- and 4-byte start codes, none empty", () => {
  const units = nalUnits(bytes([0, 0, 1, 0x09, 0xf0], SPS, [0, 0, 0, 1]));
  assert.deepEqual(units.map((u) => [...u]), [
    [0x09, 0xf0],
    [0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40],
  ]);
  assert.deepEqual(nalUnits(bytes([1, 2, 3])), []);
});

test("codec strings: H.264's from its SPS, the others by name, null when unknown", () => {
  assert.equal(codecFor(H264, bytes(SPS, PPS, IDR)), "avc1.42c01f");
  assert.equal(codecFor("video/h264", bytes(IDR)), null, "no SPS in it");
  assert.equal(codecFor(H264, bytes([...SC, 0x67, 0x42])), null, "an SPS cut short");
  assert.equal(codecFor("video/VP8", bytes([1])), "vp8");
  assert.equal(codecFor("video/VP9", bytes([1])), "vp09.00.10.08");
  assert.equal(codecFor("video/AV1", bytes([1])), "av01.0.04M.08");
  assert.equal(codecFor("video/H265", bytes([1])), null);
  assert.equal(codecFor(undefined, bytes([1])), null);
});

test("repeats: the feed's, with or without its SEI; nothing else", () => {
  assert.equal(isRepeat(H264, bytes(SEI, REPEAT)), true);
  assert.equal(isRepeat(H264, bytes(REPEAT)), true);
  const reference = [...REPEAT];
  reference[4] = 0x21; // nal_ref_idc 1
  assert.equal(isRepeat(H264, bytes(SEI, reference)), false, "a reference picture");
  assert.equal(isRepeat(H264, bytes(SEI, IDR)), false, "a key frame");
  assert.equal(isRepeat(H264, bytes(SPS, PPS, REPEAT)), false, "parameter sets");
  const patch = [...SC, 0x01, ...new Array(400).fill(0x55)];
  assert.equal(isRepeat(H264, bytes(SEI, patch)), false, "a patch: samples of a macroblock");
  assert.equal(isRepeat(H264, bytes(SEI)), false, "no slice");
  assert.equal(isRepeat("video/VP8", bytes(REPEAT)), false, "not H.264");
});

// ---- FrameDecoder with a stand-in VideoDecoder

class FakeDecoder {
  static supported = true;
  static asked = [];
  static made = [];
  static isConfigSupported(config) {
    FakeDecoder.asked.push(config);
    return Promise.resolve({ supported: FakeDecoder.supported, config });
  }
  constructor({ output, error }) {
    Object.assign(this, { output, error });
    this.state = "unconfigured";
    this.chunks = [];
    this.decodeQueueSize = 0;
    FakeDecoder.made.push(this);
  }
  configure(config) {
    this.config = config;
    this.state = "configured";
  }
  decode(chunk) {
    this.chunks.push(chunk);
  }
  /** Outputs the oldest chunk not yet output, as a VideoFrame. */
  emit() {
    const c = this.chunks[this.out ?? 0];
    this.out = (this.out ?? 0) + 1;
    const vf = { timestamp: c.timestamp, displayWidth: 1280, displayHeight: 720, closed: false, close() { this.closed = true; } };
    this.output(vf);
    return vf;
  }
  close() {
    this.state = "closed";
  }
}

class Chunk {
  constructor(init) {
    Object.assign(this, init);
  }
}

let rtp = 1000;
function frame(type, data, mimeType = H264) {
  rtp += 1500;
  const ts = rtp;
  return { type, data: new Uint8Array(data.flat(2)).buffer, getMetadata: () => ({ mimeType, rtpTimestamp: ts }) };
}

function rig() {
  FakeDecoder.made = [];
  FakeDecoder.asked = [];
  FakeDecoder.supported = true;
  const drawn = [];
  const passed = [];
  const events = [];
  const d = new FrameDecoder({
    draw: (vf, meta) => drawn.push({ vf, meta }),
    pass: (f) => passed.push(f),
    on: (event, detail) => events.push([event, detail]),
    VideoDecoderImpl: FakeDecoder,
    EncodedVideoChunkImpl: Chunk,
    now: () => 77,
  });
  return { d, drawn, passed, events, names: () => events.map(([e]) => e) };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

test("a key frame opens the decoder; pictures are decoded and drawn, repeats skipped", async () => {
  const { d, drawn, passed, events } = rig();
  const key = frame("key", [SPS, PPS, SEI, IDR]);
  d.take(key);
  const held = frame("delta", [SEI, [...SC, 0x21, 1, 2, 3]]);
  d.take(held);
  assert.equal(FakeDecoder.made.length, 0, "not before the browser said it decodes the codec");
  await settle();
  assert.deepEqual(FakeDecoder.asked, [{ codec: "avc1.42c01f", optimizeForLatency: true }]);
  assert.deepEqual(events, [["config", { codec: "avc1.42c01f" }]]);
  const dec = FakeDecoder.made[0];
  assert.deepEqual(dec.chunks.map((c) => c.type), ["key", "delta"], "the frames held meanwhile, in order");
  d.take(frame("delta", [SEI, REPEAT]));
  d.take(frame("delta", [SEI, REPEAT]));
  assert.equal(dec.chunks.length, 2, "repeats are not decoded");
  const vf = dec.emit();
  assert.equal(drawn.length, 1);
  assert.equal(drawn[0].vf, vf);
  assert.deepEqual(drawn[0].meta, { rtpTimestamp: key.getMetadata().rtpTimestamp, receivedMs: 77, key: true });
  assert.equal(vf.closed, true, "closed after drawing");
  dec.emit();
  assert.equal(drawn.length, 2);
  assert.equal(passed.length, 0, "nothing handed back to the browser's decoder");
  assert.deepEqual(d.stats, { received: 4, repeats: 2, decoded: 2, dropped: 0, passed: 0 });
});

test("a delta before any key frame waits for one and asks for it once", async () => {
  const { d, names } = rig();
  d.take(frame("delta", [SEI, [...SC, 0x21, 1]]));
  d.take(frame("delta", [SEI, [...SC, 0x21, 1]]));
  assert.deepEqual(names(), ["need-key"]);
  assert.equal(d.stats.dropped, 2);
  d.take(frame("key", [SPS, PPS, IDR]));
  await settle();
  assert.deepEqual(FakeDecoder.made[0].chunks.map((c) => c.type), ["key"]);
});

test("a codec this browser cannot decode: every frame goes back, the held ones first", async () => {
  const { d, passed, events } = rig();
  FakeDecoder.supported = false;
  const a = frame("key", [1, 2, 3], "video/VP9");
  const b = frame("delta", [4], "video/VP9");
  d.take(a);
  d.take(b);
  await settle();
  const c = frame("delta", [5], "video/VP9");
  d.take(c);
  assert.deepEqual(passed, [a, b, c]);
  assert.deepEqual(events, [["unsupported", { codec: "vp09.00.10.08", reason: "this browser does not decode it" }]]);
  assert.equal(FakeDecoder.made.length, 0);
});

test("a codec this page does not know goes back at once", () => {
  const { d, passed, names } = rig();
  const a = frame("key", [1], "video/H265");
  d.take(a);
  assert.deepEqual(passed, [a]);
  assert.deepEqual(names(), ["unsupported"]);
});

test("the browser never answering: past PENDING_MAX frames they go back", () => {
  const { d, passed, names } = rig();
  const asked = FakeDecoder.isConfigSupported;
  FakeDecoder.isConfigSupported = () => new Promise(() => {});
  try {
    d.take(frame("key", [SPS, PPS, IDR]));
    for (let i = 0; i < PENDING_MAX; i++) d.take(frame("delta", [[...SC, 0x21, i]]));
    assert.equal(passed.length, PENDING_MAX + 1);
    assert.deepEqual(names(), ["unsupported"]);
  } finally {
    FakeDecoder.isConfigSupported = asked;
  }
});

test("a decoder error: a fresh decoder, which waits for a key frame and asks for one", async () => {
  const { d, names } = rig();
  d.take(frame("key", [SPS, PPS, IDR]));
  await settle();
  FakeDecoder.made[0].error(new Error("corrupt"));
  assert.deepEqual(names(), ["config", "error", "need-key"]);
  assert.equal(FakeDecoder.made[0].state, "closed");
  const fresh = FakeDecoder.made[1];
  d.take(frame("delta", [[...SC, 0x21, 9]]));
  assert.equal(fresh.chunks.length, 0, "deltas wait for the key frame");
  d.take(frame("key", [SPS, PPS, IDR]));
  assert.deepEqual(fresh.chunks.map((c) => c.type), ["key"]);
});

test("a decoder that falls behind starts over at a key frame (its queue is bounded)", async () => {
  const { d, events } = rig();
  d.take(frame("key", [SPS, PPS, IDR]));
  await settle();
  FakeDecoder.made[0].decodeQueueSize = QUEUE_MAX + 1;
  d.take(frame("delta", [[...SC, 0x21, 9]]));
  assert.deepEqual(events.slice(1), [["error", "the decoder fell behind"], ["need-key", undefined]]);
  assert.equal(FakeDecoder.made.length, 2);
  assert.equal(d.stats.dropped, 1);
});

test("a frame that fails to draw is reported and closed; a stopped decoder takes nothing", async () => {
  const { d, events } = rig();
  d.draw = () => {
    throw new Error("no canvas");
  };
  d.take(frame("key", [SPS, PPS, IDR]));
  await settle();
  const vf = FakeDecoder.made[0].emit();
  assert.equal(vf.closed, true);
  assert.deepEqual(events.at(-1), ["error", "painting a frame: no canvas"]);
  d.stop();
  assert.equal(FakeDecoder.made[0].state, "closed");
  d.take(frame("delta", [[...SC, 0x21, 9]]));
  assert.equal(d.stats.received, 1);
});
