// The still's URL and the element swap between the video and the canvas.
import test from "node:test";
import assert from "node:assert/strict";
import { ScreenView } from "../screen.js";
import { readFileSync } from "node:fs";
import { STILL_WIDTHS, stillLoaded, stillSrcset, stillUrl, stillWidthFor } from "../still.js";

test("index.html asks for the still itself, at every width still.js names", () => {
  const html = readFileSync(new URL("../index.html", import.meta.url), "utf8");
  const img = html.match(/<img id="still"[^>]*>/s);
  assert.ok(img, "the still's <img> is in the page");
  const srcset = img[0].match(/srcset="([^"]*)"/s)[1].replace(/&amp;/g, "&").replace(/\s+/g, " ");
  assert.equal(srcset, stillSrcset());
  assert.match(img[0], /sizes="100vw"/);
  assert.doesNotMatch(img[0], /\shidden/, "shown as soon as the browser has it");
  assert.equal(stillUrl(1280), "/api/screenshot?format=jpeg&quality=75&max_width=1280");
  assert.deepEqual(STILL_WIDTHS, [...STILL_WIDTHS].sort((a, b) => a - b));
});

test("a still asked for again has the width the srcset would give", () => {
  assert.equal(stillWidthFor(1280, 1), 1280);
  assert.equal(stillWidthFor(1281, 1), 1920);
  assert.equal(stillWidthFor(420, 3), 1280);
  assert.equal(stillWidthFor(0, NaN), 640);
  assert.equal(stillWidthFor(5000, 2), 3840);
});

test("stillLoaded settles at once for a settled element, else on load or error", async () => {
  assert.equal(await stillLoaded({ complete: true, naturalWidth: 1280 }), true);
  assert.equal(await stillLoaded({ complete: true, naturalWidth: 0 }), false, "a broken image");
  const waiting = () => {
    const on = {};
    return { complete: false, naturalWidth: 0, on, addEventListener: (ev, f) => (on[ev] = f) };
  };
  const a = waiting();
  const pa = stillLoaded(a);
  a.naturalWidth = 640;
  a.on.load();
  assert.equal(await pa, true);
  const b = waiting();
  const pb = stillLoaded(b);
  b.on.error();
  assert.equal(await pb, false);
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
  // WebRTC painted by the page: the canvas shows it, the <video> keeps its stream (sound).
  const stream = {};
  video.srcObject = stream;
  v.use("webrtc", { canvas: true });
  assert.deepEqual([video.id, canvas.id, video.hidden, canvas.hidden, video.srcObject], ["screen-video", "screen", true, false, stream]);
  assert.equal(v.remotePainted(1280, 720), true);
  assert.deepEqual(v.size(), { width: 1280, height: 720 }, "the painted size, not the video's");
});

test("the still's size counts until the first frame, then the canvas's", async () => {
  const drawnWith = [];
  const canvas = el({ width: 300, height: 150, getContext: () => ({ drawImage: (...a) => drawnWith.push(a.slice(1)) }) });
  const removed = [];
  const still = el({ naturalWidth: 1280, naturalHeight: 720, removeAttribute: (a) => removed.push(a) });
  const v = new ScreenView({ video: el(), canvas, still });
  v.use("ws");
  assert.equal(v.stillShown, false, "not before it has its picture");
  assert.equal(v.adoptStill(), true);
  assert.equal(v.stillShown, true);
  assert.deepEqual(v.size(), { width: 1280, height: 720 });
  assert.equal(v.draw({ displayWidth: 1280, displayHeight: 720 }), true);
  assert.equal(v.draw({ displayWidth: 1280, displayHeight: 720 }), false);
  v.firstFrame();
  assert.equal(still.hidden, true);
  assert.deepEqual(removed, ["srcset", "src"], "the still lets go of its image");
  assert.deepEqual(v.size(), { width: 1280, height: 720 });
  assert.deepEqual(drawnWith[0], [0, 0, 1280, 720]);
  // A still that arrives after live video is not shown.
  assert.equal(v.adoptStill(), false);
  assert.equal(still.hidden, true);
});
