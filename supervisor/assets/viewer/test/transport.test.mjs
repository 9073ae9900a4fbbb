// Transport choice (docs/native-stream.md "Choosing a transport").
import test from "node:test";
import assert from "node:assert/strict";
import { chooseRender, chooseTransport, forcedCodec, forcedTransport, parseSession, RENDER_CANVAS, RENDER_DECODER, RENDER_VIDEO, transportLabel, WS, WEBRTC } from "../transport.js";

const session = (webrtc, ws, access = "control") => parseSession({ access, transports: { webrtc, ws: { enabled: ws } } });
const both = { webcodecs: true, images: true, webrtc: true };

test("?transport= forces one", () => {
  assert.equal(forcedTransport("?transport=ws"), WS);
  assert.equal(forcedTransport("?a=1&transport=WebRTC"), WEBRTC);
  assert.equal(forcedTransport("?transport=websocket"), WS);
  assert.equal(forcedTransport("?transport=carrier-pigeon"), null);
  assert.equal(forcedTransport(""), null);
  const s = session({ configured: true, ready: true }, true);
  assert.deepEqual(chooseTransport({ forced: WS, session: s, can: both }), { transport: WS, codec: "h264", problem: null });
  assert.deepEqual(chooseTransport({ forced: WEBRTC, session: session({ configured: false }, true), can: both }), { transport: WEBRTC, codec: null, problem: null });
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

test("the native stream in H.264 first, though neko is ready: it is faster", () => {
  const s = session({ configured: true, ready: true }, true);
  assert.deepEqual(chooseTransport({ session: s, can: both }), { transport: WS, codec: "h264", problem: null });
});

test("WebRTC when the native stream is off", () => {
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: true }, false), can: both }), { transport: WEBRTC, codec: null, problem: null });
  assert.equal(chooseTransport({ session: session({ configured: true, ready: false }, false), can: both }).transport, WEBRTC);
});

test("an older deskd without /api/session gets WebRTC", () => {
  assert.deepEqual(chooseTransport({ session: null, can: both }), { transport: WEBRTC, codec: null, problem: null });
});

test("a browser without WebCodecs gets JPEG images on the native stream", () => {
  const noCodecs = { webcodecs: false, images: true, webrtc: true };
  const jpeg = { transport: WS, codec: "jpeg", problem: null };
  assert.deepEqual(chooseTransport({ forced: WS, session: null, can: noCodecs }), jpeg);
  assert.deepEqual(chooseTransport({ session: session({ configured: false }, true), can: noCodecs }), jpeg);
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: false }, true), can: noCodecs }), jpeg);
  // Images even when neko is ready: faster than WebRTC there too.
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: true }, true), can: noCodecs }), jpeg);
  // ?codec=h264 insists on WebCodecs; ?codec=jpeg takes images even with WebCodecs.
  assert.deepEqual(chooseTransport({ forced: WS, codec: "h264", session: null, can: noCodecs }), { transport: null, codec: null, problem: "no-webcodecs" });
  assert.deepEqual(chooseTransport({ codec: "jpeg", session: session({ configured: false }, true), can: both }), jpeg);
});

test("a browser that decodes neither", () => {
  const nothing = { webcodecs: false, images: false, webrtc: true };
  assert.deepEqual(chooseTransport({ forced: WS, session: null, can: nothing }), { transport: null, codec: null, problem: "no-webcodecs" });
  assert.deepEqual(chooseTransport({ session: session({ configured: false }, true), can: nothing }), { transport: null, codec: null, problem: "no-webcodecs" });
  // WebRTC if the server has it, even when not ready yet (it retries), and says why not native.
  assert.deepEqual(chooseTransport({ session: session({ configured: true, ready: false }, true), can: nothing }), { transport: WEBRTC, codec: null, problem: "no-webcodecs" });
  assert.deepEqual(chooseTransport({ forced: WEBRTC, session: null, can: { webcodecs: true, images: true, webrtc: false } }), { transport: null, codec: null, problem: "no-webrtc" });
});

test("?codec= forces the native stream's codec", () => {
  assert.equal(forcedCodec("?codec=jpeg"), "jpeg");
  assert.equal(forcedCodec("?transport=ws&codec=H264"), "h264");
  assert.equal(forcedCodec("?codec=vp9"), null);
  assert.equal(forcedCodec(""), null);
});

test("labels", () => {
  assert.equal(transportLabel(WS), "WebSocket");
  assert.equal(transportLabel(WS, "h264"), "WebSocket");
  assert.equal(transportLabel(WS, "jpeg"), "WebSocket (JPEG)");
  assert.equal(transportLabel(WEBRTC), "WebRTC");
  assert.equal(transportLabel(null), "");
});

test("the WebRTC renderer: the page's decoder by default, the others when asked and there", () => {
  const all = { decoder: true, canvas: true };
  assert.equal(chooseRender(null, all), RENDER_DECODER);
  assert.equal(chooseRender("", all), RENDER_DECODER);
  assert.equal(chooseRender("decoder", all), RENDER_DECODER);
  assert.equal(chooseRender("bogus", all), RENDER_DECODER);
  assert.equal(chooseRender(" Canvas ", all), RENDER_CANVAS);
  assert.equal(chooseRender("video", all), RENDER_VIDEO);
  assert.equal(chooseRender(null, { decoder: false, canvas: true }), RENDER_VIDEO, "no WebCodecs (plain HTTP) or no transforms");
  assert.equal(chooseRender("canvas", { decoder: true, canvas: false }), RENDER_VIDEO);
});
