// Which transport the page uses: `?transport=ws|webrtc` forces one; otherwise GET /api/session
// (docs/native-stream.md) says what the server offers, and the browser what it can do. An
// older deskd without /api/session gets WebRTC, as before.

export const WEBRTC = "webrtc";
export const WS = "ws";
/** WebRTC that has not shown live video by then gives way to the native stream. */
export const WEBRTC_FALLBACK_MS = 3000;

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

/**
 * The choice for one connection attempt:
 * - `forced`: the `?transport=` value or null;
 * - `session`: parseSession's result, or null (no /api/session: an older deskd);
 * - `can`: `{webcodecs, webrtc}`, what this browser has;
 * - `gaveUpWebrtc`: WebRTC already failed to show video on this page.
 * Returns `{transport, fallback, problem}`: `transport` null when nothing can work here;
 * `fallback` true when WebRTC should give way to the native stream after WEBRTC_FALLBACK_MS;
 * `problem` "no-webcodecs" / "no-webrtc" names what this browser lacks for the choice.
 */
export function chooseTransport({ forced = null, session = null, can = { webcodecs: true, webrtc: true }, gaveUpWebrtc = false }) {
  const none = (problem) => ({ transport: null, fallback: false, problem });
  if (forced === WS) return can.webcodecs ? { transport: WS, fallback: false, problem: null } : none("no-webcodecs");
  if (forced === WEBRTC) return can.webrtc ? { transport: WEBRTC, fallback: false, problem: null } : none("no-webrtc");
  if (!session) return can.webrtc ? { transport: WEBRTC, fallback: false, problem: null } : none("no-webrtc");
  const ws = session.ws.enabled && can.webcodecs;
  const rtc = session.webrtc.configured && can.webrtc;
  if (ws && (!rtc || !session.webrtc.ready || gaveUpWebrtc)) return { transport: WS, fallback: false, problem: null };
  if (rtc) return { transport: WEBRTC, fallback: ws, problem: session.ws.enabled && !can.webcodecs ? "no-webcodecs" : null };
  if (session.ws.enabled) return none("no-webcodecs");
  // Nothing on offer (no [neko], native stream off): WebRTC's retry loop says "unavailable".
  return can.webrtc ? { transport: WEBRTC, fallback: false, problem: null } : none("no-webrtc");
}

/** What the status line calls a transport. */
export function transportLabel(t) {
  return t === WS ? "WebSocket" : t === WEBRTC ? "WebRTC" : "";
}
