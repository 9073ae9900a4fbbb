// The WebRTC session adapter: neko's events mapped to the page's, the track attached, the
// first painted frame reported once, the data channel carrying input and cursor messages,
// paste and control over signaling, and the no-media timeout.
import test from "node:test";
import assert from "node:assert/strict";
import { NO_MEDIA, WebRtcSession } from "../webrtc.js";

class FakeNeko {
  constructor(opts) {
    Object.assign(this, opts);
    this.sent = [];
    this.opened = true;
    this.closed = false;
    this.lastReceived = 42;
    this.pc = null;
    this.dc = null;
    FakeNeko.last = this;
  }
  start() {}
  send(event, payload) {
    this.sent.push(payload === undefined ? { event } : { event, payload });
    return true;
  }
  close(code, reason) {
    this.closed = true;
    this.on("close", { code, reason, opened: true, local: true });
  }
}

class FakeChannel {
  constructor() {
    this.readyState = "connecting";
    this.listeners = {};
    this.sent = [];
  }
  addEventListener(name, fn) {
    (this.listeners[name] ||= []).push(fn);
  }
  fire(name, ev = {}) {
    for (const fn of this.listeners[name] || []) fn(ev);
  }
  send(buf) {
    this.sent.push([...new Uint8Array(buf)]);
  }
}

function video() {
  return {
    srcObject: null,
    videoWidth: 1280,
    videoHeight: 720,
    plays: 0,
    play() {
      this.plays += 1;
      return Promise.resolve();
    },
    requestVideoFrameCallback(fn) {
      this.frameCallback = fn;
    },
  };
}

function rig(opts = {}) {
  const events = [];
  const v = video();
  const s = new WebRtcSession({ url: "ws://h/stream/signaling", video: v, on: (ev, d) => events.push([ev, d]), NekoSessionImpl: FakeNeko, MediaStreamImpl: FakeStream, ...opts });
  s.start();
  return { s, v, neko: FakeNeko.last, events };
}

const named = (events, name) => events.filter(([e]) => e === name).map(([, d]) => d);

test("init gives the session id and the screen; host passes through", () => {
  const { s, neko, events } = rig();
  neko.on("init", { sessionId: "viewer-1", screen: { width: 1280, height: 720, rate: 25 } });
  neko.on("host", { isHost: true, hostId: "viewer-1" });
  assert.deepEqual(named(events, "session-id"), ["viewer-1"]);
  assert.deepEqual(named(events, "screen"), [{ width: 1280, height: 720, rate: 25 }]);
  assert.deepEqual(named(events, "host"), [{ isHost: true, hostId: "viewer-1" }]);
  s.close();
});

test("the track plays in the video; the first painted frame is reported once", () => {
  const { s, v, neko, events } = rig();
  const stream = { id: "main" };
  neko.on("track", { streams: [stream], track: { kind: "video" } });
  assert.equal(v.srcObject, stream);
  assert.equal(v.plays, 1);
  assert.deepEqual(named(events, "first-frame"), []);
  v.frameCallback();
  v.frameCallback();
  assert.deepEqual(named(events, "first-frame"), [{ width: 1280, height: 720 }]);
  assert.equal(s.shownFirst, true);
  s.close();
});

test("the data channel: input out, cursor and pong in, open and close reported", () => {
  const { s, neko, events } = rig();
  const dc = new FakeChannel();
  neko.dc = dc;
  neko.on("datachannel", dc);
  assert.equal(s.sendInput(new Uint8Array([1, 0, 4, 0, 1, 0, 2]).buffer), false, "not open yet");
  dc.readyState = "open";
  dc.fire("open");
  assert.equal(s.inputOpen, true);
  assert.equal(s.sendInput(new Uint8Array([1, 0, 4, 0, 1, 0, 2]).buffer), true);
  assert.deepEqual(dc.sent, [[1, 0, 4, 0, 1, 0, 2]]);
  dc.fire("message", { data: new Uint8Array([1, 0, 7, 0, 10, 0, 20]).buffer });
  dc.fire("message", { data: new Uint8Array([0x42, 0, 3]).buffer });
  assert.deepEqual(named(events, "server-message"), [{ type: "cursor-position", x: 10, y: 20 }]);
  dc.readyState = "closed";
  dc.fire("close");
  assert.deepEqual(named(events, "input-open"), [true, false]);
  s.close();
});

test("paste, control and sound go over signaling", () => {
  const { s, neko } = rig();
  s.paste("héllo");
  s.paste("x", 0x76);
  s.requestControl();
  s.setAudio(true);
  assert.deepEqual(neko.sent, [
    { event: "control/paste", payload: { text: "héllo" } },
    { event: "clipboard/set", payload: { text: "x" } },
    { event: "control/keypress", payload: { keysym: 0x76 } },
    { event: "control/request" },
    { event: "signal/audio", payload: { disabled: false } },
  ]);
  assert.equal(neko.audio, true);
  s.close();
});

test("a peer that never connects is closed as no media; a failed one at once", async () => {
  const { neko, events } = rig({ mediaTimeoutMs: 10 });
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(named(events, "close"), [{ code: 4000, reason: NO_MEDIA, opened: true, local: true }]);
  assert.equal(neko.closed, true);

  const t = rig();
  t.neko.on("peer-state", "connected");
  t.neko.on("peer-state", "failed");
  assert.deepEqual(named(t.events, "peer-state"), ["connected", "failed"]);
  assert.equal(named(t.events, "close")[0].reason, "peer failed");
});

test("connected without a picture: the video is restarted until one shows", async () => {
  const events = [];
  const s = new WebRtcSession({ url: "ws://h/stream/signaling", video: video(), on: (ev, d) => events.push([ev, d]), firstFrameRetryMs: 10, NekoSessionImpl: FakeNeko });
  s.start();
  const neko = FakeNeko.last;
  neko.restarts = 0;
  neko.restartVideo = () => (neko.restarts += 1);
  neko.on("track", { track: { kind: "video" }, streams: [{}] });
  neko.on("peer-state", "connected");
  await new Promise((r) => setTimeout(r, 35));
  assert.ok(neko.restarts >= 2, `restarted ${neko.restarts} times`);
  s.video.frameCallback();
  const after = neko.restarts;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(neko.restarts, after, "not once the picture shows");
  s.close(1000, "done");
});

test("with a frame painter: the video track's frames go to it; its first frame is the first frame", async () => {
  const starts = [];
  let stopped = 0;
  const frames = {
    decoded: 7,
    start: (ev, handlers) => starts.push({ ev, ...handlers }),
    stop: () => (stopped += 1),
  };
  const { s, v, neko, events } = rig({ frames });
  const ev = { streams: [{ id: "main" }], track: { kind: "video" }, receiver: { id: "r" } };
  neko.on("track", { streams: [{ id: "main" }], track: { kind: "audio" } });
  assert.equal(starts.length, 0, "not the audio track");
  neko.on("track", ev);
  assert.equal(starts.length, 1);
  assert.equal(starts[0].ev, ev, "the whole track event: its track and its receiver");
  assert.equal(v.frameCallback, undefined, "the <video> is not watched");
  starts[0].painted({ width: 1280, height: 720 });
  starts[0].painted({ width: 640, height: 360 });
  starts[0].frame({ width: 640, height: 360, decodedEpochMs: 5 });
  starts[0].error("painting a frame: x");
  assert.deepEqual(named(events, "first-frame"), [{ width: 1280, height: 720 }]);
  assert.deepEqual(named(events, "painted"), [
    { width: 1280, height: 720 },
    { width: 640, height: 360 },
  ]);
  assert.deepEqual(named(events, "frame"), [{ width: 640, height: 360, decodedEpochMs: 5 }]);
  assert.deepEqual(named(events, "error"), ["painting a frame: x"]);
  assert.equal(await s.framesDecoded(), 7, "the painter's count, not the receiver's stats");
  s.close();
  assert.equal(stopped, 1);
});

class FakeStream {
  constructor(tracks = []) {
    this.tracks = [...tracks];
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === "audio");
  }
  getTrackById(id) {
    return this.tracks.find((t) => t.id === id) || null;
  }
  addTrack(t) {
    this.tracks.push(t);
  }
}

test("while the page paints the video, the <video> plays a stream of the sound only", () => {
  const frames = { decoded: 0, start: () => true, stop: () => {} };
  const { s, v, neko, events } = rig({ frames, MediaStreamImpl: FakeStream });
  const audio = { kind: "audio", id: "a" };
  const videoTrack = { kind: "video", id: "v" };
  const stream = new FakeStream([audio, videoTrack]);
  neko.on("track", { streams: [stream], track: audio });
  neko.on("track", { streams: [stream], track: videoTrack });
  assert.notEqual(v.srcObject, stream);
  assert.deepEqual(v.srcObject.tracks, [audio], "the sound, once");
  assert.ok(v.plays >= 1);
  // The painter gives up: the <video> gets the whole stream.
  s.fallBack({ codec: "x", reason: "y" });
  assert.equal(v.srcObject, stream);
  assert.equal(named(events, "render-fallback").length, 1);
  s.close();
});

test("a painter that cannot decode the codec hands over to the <video>", () => {
  const starts = [];
  let stopped = 0;
  const frames = { decoded: 0, start: (ev, handlers) => starts.push(handlers), stop: () => (stopped += 1) };
  const { s, v, neko, events } = rig({ frames });
  neko.on("track", { streams: [{ id: "main" }], track: { kind: "video" } });
  starts[0].fallback({ codec: "av01.0.04M.08", reason: "this browser does not decode it" });
  assert.deepEqual(named(events, "render-fallback"), [{ codec: "av01.0.04M.08", reason: "this browser does not decode it" }]);
  assert.equal(stopped, 1, "the painter is stopped");
  assert.equal(typeof v.frameCallback, "function", "the <video>'s first frame is watched");
  v.frameCallback();
  assert.deepEqual(named(events, "first-frame"), [{ width: 1280, height: 720 }]);
  // A later track goes straight to the <video>.
  neko.on("track", { streams: [{ id: "main" }], track: { kind: "video" } });
  assert.equal(starts.length, 1);
  s.close();
});

test("a painter that refuses the track hands over to the <video> at once", () => {
  const frames = { decoded: 0, start: () => false, stop: () => {} };
  const { s, v, neko, events } = rig({ frames });
  neko.on("track", { streams: [{ id: "main" }], track: { kind: "video" } });
  assert.equal(named(events, "render-fallback").length, 1);
  assert.equal(typeof v.frameCallback, "function");
  s.close();
});

test("a decoder waiting for a key frame restarts the video, at most once per retry period", () => {
  const starts = [];
  const frames = { decoded: 0, start: (ev, handlers) => starts.push(handlers), stop: () => {} };
  const { s, neko } = rig({ frames, firstFrameRetryMs: 60000 });
  let restarts = 0;
  neko.restartVideo = () => (restarts += 1);
  neko.on("track", { streams: [{ id: "main" }], track: { kind: "video" } });
  starts[0].needKey();
  starts[0].needKey();
  assert.equal(restarts, 1);
  s.close();
});
