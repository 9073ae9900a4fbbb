// The still's URL and the element swap between the video and the canvas.
import test from "node:test";
import assert from "node:assert/strict";
import { ScreenView } from "../screen.js";
import { earlyStill, fetchStill, stillUrl } from "../still.js";

test("the still is asked for at the stage's width in device pixels", () => {
  assert.equal(stillUrl(1280, 1), "/api/screenshot?format=jpeg&quality=75&max_width=1280");
  assert.equal(stillUrl(420, 3), "/api/screenshot?format=jpeg&quality=75&max_width=1260");
  assert.equal(stillUrl(0, NaN), "/api/screenshot?format=jpeg&quality=75&max_width=64");
  assert.equal(stillUrl(5000, 2, 60), "/api/screenshot?format=jpeg&quality=60&max_width=3840");
  assert.equal(earlyStill, null, "no request outside a page");
});

test("fetchStill takes images only and never throws", async () => {
  const answer = (status, type) => async () => ({ ok: status === 200, status, headers: { get: () => type }, blob: async () => "BLOB" });
  assert.deepEqual(await fetchStill("/s", answer(200, "image/jpeg")), { blob: "BLOB" });
  assert.deepEqual(await fetchStill("/s", answer(503, "application/json")), { error: "503 application/json" });
  assert.deepEqual(await fetchStill("/s", answer(200, "text/html")), { error: "200 text/html" });
  assert.deepEqual(await fetchStill("/s", async () => { throw new TypeError("network down"); }), { error: "network down" });
});

const el = (props = {}) => ({ id: "", hidden: false, ...props });

test("id=screen follows the transport's element", () => {
  const video = el({ id: "screen", videoWidth: 0, videoHeight: 0, srcObject: {} });
  const canvas = el({ id: "screen-canvas", hidden: true, width: 300, height: 150 });
  const still = el({ hidden: true });
  const v = new ScreenView({ video, canvas, still });
  v.use("ws");
  assert.deepEqual([video.id, canvas.id, video.hidden, canvas.hidden, video.srcObject], ["screen-video", "screen", true, false, null]);
  assert.deepEqual(v.size(), { width: 0, height: 0 }, "an undrawn canvas has no picture size");
  v.use("webrtc");
  assert.deepEqual([video.id, canvas.id, video.hidden, canvas.hidden], ["screen", "screen-canvas", false, true]);
});

test("the still's size counts until the first frame, then the canvas's", async () => {
  const drawnWith = [];
  const canvas = el({ width: 300, height: 150, getContext: () => ({ drawImage: (...a) => drawnWith.push(a.slice(1)) }) });
  const still = el({ hidden: true, naturalWidth: 1280, naturalHeight: 720, decode: async () => {}, removeAttribute() {} });
  const v = new ScreenView({ video: el(), canvas, still });
  v.use("ws");
  globalThis.URL.revokeObjectURL = () => {};
  assert.equal(await v.showStill("blob:x"), true);
  assert.deepEqual(v.size(), { width: 1280, height: 720 });
  assert.equal(v.draw({ displayWidth: 1280, displayHeight: 720 }), true);
  assert.equal(v.draw({ displayWidth: 1280, displayHeight: 720 }), false);
  v.firstFrame();
  assert.equal(still.hidden, true);
  assert.deepEqual(v.size(), { width: 1280, height: 720 });
  assert.deepEqual(drawnWith[0], [0, 0, 1280, 720]);
  // A still that arrives after live video is not shown.
  assert.equal(await v.showStill("blob:y"), false);
  assert.equal(still.hidden, true);
});
