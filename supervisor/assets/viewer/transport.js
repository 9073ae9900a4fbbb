// Which transport the page uses: `?transport=ws|webrtc` forces one; otherwise GET /api/session
// (docs/native-stream.md) says what the server offers, and the browser what it can do. An
// older deskd without /api/session gets WebRTC, as before. deskd's own stream comes first: in
// H.264 where the browser has WebCodecs, in PNG/JPEG images where it has not (a page over
// plain HTTP to a LAN address); `?codec=h264|jpeg` forces its codec. WebRTC is for a deskd
// without the native stream.

export const WEBRTC = "webrtc";
export const WS = "ws";

/** `?transport=` from a query string: "ws", "webrtc" or null. */
export function forcedTransport(search) {
  const v = new URLSearchParams(search || "").get("transport");
  if (v === null) return null;
  const t = v.trim().toLowerCase();
  if (t === "ws" || t === "websocket" || t === "native") return WS;
  if (t === "webrtc") return WEBRTC;
  return null;
}

/** The body of GET /api/session, validated; null when it is not one. */
export function parseSession(body) {
  if (!body || typeof body !== "object") return null;
  const access = body.access === "view" ? "view" : body.access === "control" ? "control" : null;
  if (!access) return null;
  const t = body.transports && typeof body.transports === "object" ? body.transports : {};
  const w = t.webrtc && typeof t.webrtc === "object" ? t.webrtc : {};
  const s = t.ws && typeof t.ws === "object" ? t.ws : {};
  return {
    access,
    webrtc: { configured: w.configured === true, ready: w.ready === true },
    ws: { enabled: s.enabled === true },
  };
}

/** `?codec=` from a query string: "h264", "jpeg" or null. */
export function forcedCodec(search) {
  const v = (new URLSearchParams(search || "").get("codec") || "").trim().toLowerCase();
  return v === "h264" || v === "jpeg" ? v : null;
}

/**
 * The choice for one connection attempt:
 * - `forced`: the `?transport=` value or null; `codec`: the `?codec=` value or null;
 * - `session`: parseSession's result, or null (no /api/session: an older deskd);
 * - `can`: `{webcodecs, images, webrtc}`, what this browser has (`images`: it decodes JPEG
 *   with createImageBitmap, which needs no secure context).
 * Returns `{transport, codec, problem}`: `transport` null when nothing can work here; `codec`
 * the native stream's ("h264" with WebCodecs, else "jpeg": images), null for WebRTC;
 * `problem` "no-webcodecs" / "no-webrtc" names what this browser lacks for the choice.
 */
export function chooseTransport({ forced = null, codec = null, session = null, can = { webcodecs: true, images: true, webrtc: true } }) {
  const none = (problem) => ({ transport: null, codec: null, problem });
  const wsCodec = codec === "jpeg" ? (can.images ? "jpeg" : null) : can.webcodecs ? "h264" : codec === null && can.images ? "jpeg" : null;
  const ws = { transport: WS, codec: wsCodec, problem: null };
  const rtc = { transport: WEBRTC, codec: null, problem: null };
  if (forced === WS) return wsCodec ? ws : none("no-webcodecs");
  if (forced === WEBRTC) return can.webrtc ? rtc : none("no-webrtc");
  if (!session) return can.webrtc ? rtc : none("no-webrtc");
  // deskd's own stream beats WebRTC on latency, time to first picture and idle cost, in H.264
  // and in images alike (docs/streaming.md, the stream bench): whenever it is there. Sound
  // comes beside it (sound.js).
  if (session.ws.enabled && wsCodec !== null) return ws;
  if (session.webrtc.configured && can.webrtc) return { ...rtc, problem: session.ws.enabled ? "no-webcodecs" : null };
  if (session.ws.enabled) return none("no-webcodecs");
  // Nothing on offer (no [neko], native stream off): WebRTC's retry loop says "unavailable".
  return can.webrtc ? rtc : none("no-webrtc");
}

/** What the status line calls a transport (and the native stream's codec when it is JPEG). */
export function transportLabel(t, codec = null) {
  if (t === WS) return codec === "jpeg" ? "WebSocket (JPEG)" : "WebSocket";
  return t === WEBRTC ? "WebRTC" : "";
}

/** How the page shows WebRTC's video: its own decoder, its canvas, or the <video>. */
export const RENDER_DECODER = "decoder";
export const RENDER_CANVAS = "canvas";
export const RENDER_VIDEO = "video";

/**
 * The WebRTC renderer from `?render=` (`param`, or null) and what this browser has (`can`:
 * `{decoder, canvas}`): the page's own decoder by default (rtc-decoder.js: the lowest
 * latency and nothing spent on a still screen, docs/viewer.md), `?render=canvas` for frames
 * the browser decoded painted by the page, `?render=video` for the <video>; the <video>
 * wherever the choice is not there.
 */
export function chooseRender(param, can = { decoder: true, canvas: true }) {
  const v = String(param || "").trim().toLowerCase();
  if (v === RENDER_VIDEO) return RENDER_VIDEO;
  if (v === RENDER_CANVAS) return can.canvas ? RENDER_CANVAS : RENDER_VIDEO;
  return can.decoder ? RENDER_DECODER : RENDER_VIDEO;
}
