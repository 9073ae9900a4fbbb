// The status line and the control-refused logic (issue 10: a viewer that loses control is not
// "view only"; a view-only page says so from the start).
import test from "node:test";
import assert from "node:assert/strict";
import { ControlTracker, controlLabel, liveDetail, stateText, unsupportedText } from "../status.js";

test("the live line names size, control, transport and round trip", () => {
  assert.equal(liveDetail({ screen: { width: 1280, height: 720 }, isHost: true, transport: "ws", rttMs: 3 }), "· 1280×720 · in control · WebSocket · 3 ms");
  assert.equal(liveDetail({ screen: { width: 1280, height: 720 }, transport: "webrtc" }), "· 1280×720 · click to control · WebRTC");
  assert.equal(liveDetail({}), "· click to control");
});

test("view access is view only from the start, whatever else is known", () => {
  assert.equal(controlLabel({ access: "view" }), "view only");
  assert.equal(controlLabel({ access: "view", isHost: true }), "view only");
  assert.equal(controlLabel({ access: "control" }), "click to control");
  assert.equal(controlLabel({ refused: true }), "view only");
});

test("a request never answered is refused", () => {
  const c = new ControlTracker();
  const t = c.request();
  assert.equal(c.settle(t, false), true);
  c.host(true);
  assert.equal(c.refused, false, "a grant later clears it");
});

test("control granted and then taken within the wait is not refused", () => {
  const c = new ControlTracker();
  const t = c.request();
  c.host(true);
  c.host(false); // another viewer acted
  assert.equal(c.settle(t, false), false);
  assert.equal(controlLabel({ isHost: false, refused: c.refused }), "click to control");
});

test("host now is never refused", () => {
  const c = new ControlTracker();
  const t = c.request();
  assert.equal(c.settle(t, true), false);
});

test("state texts and the no-WebCodecs message", () => {
  assert.equal(stateText("connecting"), "Connecting…");
  assert.match(unsupportedText("no-webcodecs", false), /HTTPS/);
  assert.match(unsupportedText("no-webcodecs", true), /WebCodecs/);
  assert.match(unsupportedText("no-webrtc", true), /WebRTC/);
});
