// The neko v3 exchange (neko-protocol.md §2 "Minimal sequence") against fake WebSocket and
// RTCPeerConnection objects that record what the session does, in order.
import test from "node:test";
import assert from "node:assert/strict";
import { NekoSession, iceServersFrom } from "../signaling.js";

const log = [];

class FakeWS {
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    FakeWS.last = this;
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  receive(event, payload) {
    this.onmessage({ data: JSON.stringify(payload === undefined ? { event } : { event, payload }) });
  }
}

class FakePC {
  constructor(config) {
    this.config = config;
    this.remoteDescription = null;
    this.localDescription = null;
    this.added = [];
    FakePC.all.push(this);
  }
  async setRemoteDescription(d) {
    await new Promise((r) => setTimeout(r, 5)); // slow, like a browser
    log.push(`setRemote ${d.type}`);
    this.remoteDescription = d;
  }
  async createAnswer() {
    return { type: "answer", sdp: "v=0 answer" };
  }
  async setLocalDescription(d) {
    log.push("setLocal");
    this.localDescription = d;
  }
  async addIceCandidate(c) {
    log.push(`addCandidate ${c.candidate}`);
    if (!this.remoteDescription) throw new Error("no remote description");
    this.added.push(c);
  }
  close() {
    this.closed = true;
  }
}
FakePC.all = [];

const settle = () => new Promise((r) => setTimeout(r, 30));

function start(audio = false) {
  log.length = 0;
  FakePC.all = [];
  const events = [];
  const s = new NekoSession({
    url: "ws://host/stream/signaling",
    audio,
    on: (ev, d) => events.push([ev, d]),
    WebSocketImpl: FakeWS,
    RTCPeerConnectionImpl: FakePC,
  });
  s.start();
  const ws = FakeWS.last;
  ws.onopen();
  return { s, ws, events };
}

const init = {
  session_id: "viewer-abcde",
  control_host: { id: "", has_host: false },
  screen_size: { width: 1280, height: 720, rate: 30 },
  sessions: {},
  settings: {},
};

test("system/init → signal/request with the video off until connected, audio per setting", async () => {
  const { s, ws } = start(false);
  assert.equal(ws.binaryType, "arraybuffer");
  ws.receive("system/init", init);
  ws.receive("system/heartbeat");
  await settle();
  assert.deepEqual(ws.sent, [{ event: "signal/request", payload: { video: { disabled: true }, audio: { disabled: true } } }]);
  assert.equal(s.sessionId, "viewer-abcde");
  assert.deepEqual(s.screen, { width: 1280, height: 720, rate: 30 });

  const b = start(true);
  b.ws.receive("system/init", init);
  await settle();
  assert.deepEqual(b.ws.sent[0].payload.audio, { disabled: false });
});

test("the video is turned on once the peer connection is connected, once per connection", async () => {
  const { s, ws } = start();
  ws.receive("system/init", init);
  ws.receive("signal/provide", { sdp: "v=0 offer", video: { disabled: true, id: "main" }, audio: { disabled: true } });
  await settle();
  const pc = FakePC.all[0];
  const video = () => ws.sent.filter((m) => m.event === "signal/video").map((m) => m.payload);
  pc.connectionState = "connecting";
  pc.onconnectionstatechange();
  assert.deepEqual(video(), [], "not before ICE and DTLS are up: that key frame would be lost");
  pc.connectionState = "connected";
  pc.onconnectionstatechange();
  pc.connectionState = "disconnected";
  pc.onconnectionstatechange();
  pc.connectionState = "connected";
  pc.onconnectionstatechange();
  assert.deepEqual(video(), [{ disabled: false }], "once: ICE recovering keeps the pipeline");
  // A stalled picture: off and on again, neko's only key frame on demand.
  s.restartVideo();
  assert.deepEqual(video(), [{ disabled: false }, { disabled: true }, { disabled: false }]);
  // A new peer connection starts with the video off again.
  ws.receive("signal/provide", { sdp: "v=0 offer", video: { disabled: true, id: "main" }, audio: { disabled: true } });
  await settle();
  assert.equal(s.videoOn, false);
  s.restartVideo();
  assert.equal(video().length, 3, "nothing to restart before it is on");
});

test("provide → answer; early remote candidates buffered; local candidates after the answer", async () => {
  const { s, ws, events } = start();
  ws.receive("system/init", init);
  // neko may send a candidate before the offer
  ws.receive("signal/candidate", { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" });
  ws.receive("signal/provide", {
    sdp: "v=0 offer",
    iceservers: [{ urls: ["stun:stun.example:3478"] }, { urls: ["turn:t.example"], username: "u", credential: "p" }, { urls: [] }],
    video: { disabled: false, id: "main", auto: false },
    audio: { disabled: true },
  });
  ws.receive("signal/candidate", { candidate: "candidate:2 1 udp 1 127.0.0.1 5001 typ host", sdpMid: "0", sdpMLineIndex: 0 });
  // a local candidate gathered before the answer went out
  await new Promise((r) => setTimeout(r, 1));
  const pc = FakePC.all[0];
  pc.onicecandidate({ candidate: { toJSON: () => ({ candidate: "candidate:9 local", sdpMid: "0", sdpMLineIndex: 0 }) } });
  await settle();

  assert.deepEqual(pc.config, { iceServers: [{ urls: ["stun:stun.example:3478"] }, { urls: ["turn:t.example"], username: "u", credential: "p" }] });
  assert.deepEqual(log, [
    "setRemote offer",
    "addCandidate candidate:1 1 udp 1 127.0.0.1 5000 typ host",
    "setLocal",
    "addCandidate candidate:2 1 udp 1 127.0.0.1 5001 typ host",
  ]);
  assert.deepEqual(ws.sent.map((m) => m.event), ["signal/request", "signal/answer", "signal/candidate"]);
  assert.deepEqual(ws.sent[1].payload, { sdp: "v=0 answer" });
  assert.deepEqual(ws.sent[2].payload, { candidate: "candidate:9 local", sdpMid: "0", sdpMLineIndex: 0 });

  // after the answer, local candidates go out at once; null ends gathering silently
  pc.onicecandidate({ candidate: { candidate: "candidate:10 local" } });
  pc.onicecandidate({ candidate: null });
  assert.equal(ws.sent.length, 4);

  // only neko's "data" channel is taken
  pc.ondatachannel({ channel: { label: "other" } });
  const dc = { label: "data" };
  pc.ondatachannel({ channel: dc });
  assert.equal(s.dc, dc);
  assert.equal(dc.binaryType, "arraybuffer");
  assert.equal(events.filter(([e]) => e === "datachannel").length, 1);
});

test("server renegotiation offers are answered", async () => {
  const { ws } = start();
  ws.receive("system/init", init);
  ws.receive("signal/provide", { sdp: "v=0 offer", iceservers: [] });
  ws.receive("signal/offer", { sdp: "v=0 offer 2" });
  ws.receive("signal/restart", { sdp: "v=0 offer 3" });
  // Three slow setRemoteDescription calls in a row: wait for them, not a fixed time (a busy
  // machine runs the timers late).
  for (let i = 0; i < 100 && ws.sent.length < 4; i++) await settle();
  assert.deepEqual(ws.sent.map((m) => m.event), ["signal/request", "signal/answer", "signal/answer", "signal/answer"]);
});

test("control/host decides whether this session is host", async () => {
  const { s, ws, events } = start();
  ws.receive("system/init", { ...init, control_host: { id: "x", has_host: true, host_id: "other-1" } });
  await settle();
  assert.equal(s.isHost, false);
  ws.receive("control/host", { id: "viewer-abcde", has_host: true, host_id: "viewer-abcde" });
  await settle();
  assert.equal(s.isHost, true);
  ws.receive("control/host", { id: "viewer-abcde", has_host: false });
  await settle();
  assert.equal(s.isHost, false);
  assert.deepEqual(events.filter(([e]) => e === "host").map(([, d]) => d.isHost), [false, true, false]);
});

test("signal/close starts again at signal/request", async () => {
  const { ws } = start();
  ws.receive("system/init", init);
  ws.receive("signal/provide", { sdp: "v=0 offer", iceservers: [] });
  await settle();
  ws.receive("signal/close", null);
  await settle();
  assert.equal(FakePC.all[0].closed, true);
  assert.deepEqual(ws.sent.map((m) => m.event), ["signal/request", "signal/answer", "signal/request"]);
});

test("garbage frames are ignored; close is reported once", async () => {
  const { s, ws, events } = start();
  ws.onmessage({ data: "not json" });
  ws.onmessage({ data: "{}" });
  ws.onmessage({ data: new ArrayBuffer(3) });
  ws.receive("signal/provide", null);
  ws.receive("screen/updated", { width: -1 });
  ws.receive("screen/updated", { id: "a", width: 1920, height: 1080, rate: 60 });
  await settle();
  assert.deepEqual(s.screen, { width: 1920, height: 1080, rate: 60 });
  s.close(4000, "stale");
  ws.onclose({ code: 1006, reason: "" });
  const closes = events.filter(([e]) => e === "close");
  assert.equal(closes.length, 1);
  assert.equal(closes[0][1].code, 4000);
  assert.equal(ws.closedWith, 4000);
});

test("iceServersFrom keeps only valid entries", () => {
  assert.deepEqual(iceServersFrom(null), []);
  assert.deepEqual(iceServersFrom([null, { urls: "stun:a" }, { urls: [1, "stun:b"], username: "" }]), [{ urls: ["stun:a"] }, { urls: ["stun:b"] }]);
});
