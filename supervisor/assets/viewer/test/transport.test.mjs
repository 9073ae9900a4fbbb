// Transport choice (docs/native-stream.md "Choosing a transport").
import test from "node:test";
import assert from "node:assert/strict";
import { chooseTransport, forcedTransport, parseSession, transportLabel, WS, WEBRTC } from "../transport.js";

const session = (webrtc, ws, access = "control") => parseSession({ access, transports: { webrtc, ws: { enabled: ws } } });
const both = { webcodecs: true, webrtc: true };

test("?transport= forces one", () => {
  assert.equal(forcedTransport("?transport=ws"), WS);
  assert.equal(forcedTransport("?a=1&transport=WebRTC"), WEBRTC);
  assert.equal(forcedTransport("?transport=websocket"), WS);
  assert.equal(forcedTransport("?transport=carrier-pigeon"), null);
  assert.equal(forcedTransport(""), null);
  const s = session({ configured: true, ready: true }, true);
  assert.deepEqual(chooseTransport({ forced: WS, session: s, can: both }), { transport: WS, fallback: false, problem: null });
  assert.deepEqual(chooseTransport({ forced: WEBRTC, session: session({ configured: false }, true), can: both }), { transport: WEBRTC, fallback: false, problem: null });
});

test("/api/session is validated", () => {
  assert.deepEqual(parseSession({ access: "view", transports: { webrtc: { configured: true, ready: false }, ws: { enabled: true } } }), {
    access: "view", webrtc: { configured: true, ready: false }, ws: { enabled: true },
  });
  assert.deepEqual(parseSession({ access: "control" }), { access: "control", webrtc: { configured: false, ready: false }, ws: { enabled: false } });
  for (const bad of [null, "x", {}, { access: "root" }]) assert.equal(parseSession(bad), null);
});

test("the native stream when neko is not configured or not ready", () => {
  assert.equal(chooseTransport({ session: session({ configured: false, ready: false }, true), can: both }).transport, WS);
  assert.equal(chooseTransport({ session: session({ configured: true, ready: false }, true), can: both }).transport, WS);
});

test("WebRTC when neko is ready, giving way to the native stream if it shows no video", () => {
  const s = session({ configured: true, ready: true }, true);
  assert.deepEqual(chooseTransport({ session: s, can: both }), { transport: WEBRTC, fallback: true, problem: null });
  assert.equal(chooseTransport({ session: s, can: both, gaveUpWebrtc: true }).transport, WS);
  // Without the native stream there is nothing to fall back to.
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: true }, false), can: both }), { transport: WEBRTC, fallback: false, problem: null });
  assert.equal(chooseTransport({ session: session({ configured: true, ready: false }, false), can: both }).transport, WEBRTC);
});

test("an older deskd without /api/session gets WebRTC", () => {
  assert.deepEqual(chooseTransport({ session: null, can: both }), { transport: WEBRTC, fallback: false, problem: null });
});

test("a browser without WebCodecs", () => {
  const noCodecs = { webcodecs: false, webrtc: true };
  assert.deepEqual(chooseTransport({ forced: WS, session: null, can: noCodecs }), { transport: null, fallback: false, problem: "no-webcodecs" });
  assert.deepEqual(chooseTransport({ session: session({ configured: false }, true), can: noCodecs }), { transport: null, fallback: false, problem: "no-webcodecs" });
  // WebRTC if the server has it, even when not ready yet (it retries), and says why not native.
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: false }, true), can: noCodecs }), { transport: WEBRTC, fallback: false, problem: "no-webcodecs" });
  assert.deepEqual(chooseTransport({ forced: WEBRTC, session: null, can: { webcodecs: true, webrtc: false } }), { transport: null, fallback: false, problem: "no-webrtc" });
});

test("labels", () => {
  assert.equal(transportLabel(WS), "WebSocket");
  assert.equal(transportLabel(WEBRTC), "WebRTC");
  assert.equal(transportLabel(null), "");
});
