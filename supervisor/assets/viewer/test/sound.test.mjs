// Sound next to the native stream: an audio-only neko session that never turns video on,
// plays its track, and is made again after a close while sound is wanted.
import test from "node:test";
import assert from "node:assert/strict";
import { SoundSession } from "../sound.js";

class FakeNeko {
  constructor(opts) {
    Object.assign(this, opts);
    this.closedWith = null;
    FakeNeko.all.push(this);
  }
  start() {
    this.started = true;
  }
  close(code, reason) {
    this.closedWith = [code, reason];
  }
}
FakeNeko.all = [];

function setup({ play = async () => {} } = {}) {
  FakeNeko.all = [];
  const states = [];
  const timers = [];
  const audio = { srcObject: null, play };
  const s = new SoundSession({
    url: "ws://h/stream/signaling",
    audio,
    on: (st) => states.push(st),
    NekoSessionImpl: FakeNeko,
    setTimeoutImpl: (f, ms) => timers.push([f, ms]),
    backoff: { next: () => 500, reset() {} },
  });
  return { s, audio, states, timers };
}

const track = (kind) => ({ track: { kind }, streams: [{ id: kind }] });
const settle = () => new Promise((r) => setTimeout(r, 0));

test("asks neko for sound and never for video, and plays the audio track", async () => {
  const { s, audio, states } = setup();
  s.start();
  s.start();
  assert.equal(FakeNeko.all.length, 1, "one session");
  const neko = FakeNeko.all[0];
  assert.deepEqual([neko.audio, neko.video, neko.started], [true, false, true]);
  neko.on("track", track("video"));
  assert.equal(audio.srcObject, null, "a video track is not played");
  neko.on("track", track("audio"));
  assert.deepEqual(audio.srcObject, { id: "audio" });
  await settle();
  assert.deepEqual(states, ["connecting", "playing"]);
});

test("a browser that wants a gesture first: blocked, then played on resume", async () => {
  let allow = false;
  const { s, states } = setup({ play: async () => { if (!allow) throw new Error("NotAllowedError"); } });
  s.start();
  FakeNeko.all[0].on("track", track("audio"));
  await settle();
  assert.equal(s.state, "blocked");
  allow = true;
  s.resume();
  await settle();
  assert.deepEqual(states, ["connecting", "blocked", "playing"]);
});

test("made again after a close while wanted; stop closes it and stays off", async () => {
  const { s, audio, states, timers } = setup();
  s.start();
  const first = FakeNeko.all[0];
  first.on("track", track("audio"));
  first.on("close", { code: 1006 });
  assert.equal(audio.srcObject, null);
  assert.equal(s.state, "retrying");
  assert.equal(timers.length, 1);
  assert.equal(timers[0][1], 500);
  timers[0][0]();
  assert.equal(FakeNeko.all.length, 2, "a new session after the delay");
  // A late event of the old session changes nothing.
  first.on("track", track("audio"));
  assert.equal(audio.srcObject, null);
  s.stop();
  assert.deepEqual(FakeNeko.all[1].closedWith, [1000, "sound off"]);
  FakeNeko.all[1].on("close", { code: 1000 });
  assert.equal(timers.length, 1, "no retry once stopped");
  assert.equal(s.state, "off");
  await settle();
  assert.ok(states.includes("retrying"));
});
