// Opening and closing and coming back: a session's socket (opened the same way by both
// transports), closing it with a code the browser accepts, what a close means, and the reconnect delays: exponential, capped, with jitter so many viewers do not
// come back in step after a restart ("equal jitter": half the delay fixed, half random).

export const DEFAULTS = Object.freeze({ base: 500, factor: 2, cap: 15000, jitter: 0.5 });

/** The delay in ms before attempt `n` (0-based), given `r` in [0, 1). */
export function backoffDelay(n, r, opts = DEFAULTS) {
  const { base, factor, cap, jitter } = { ...DEFAULTS, ...opts };
  const attempt = Math.max(0, Math.floor(n));
  const raw = Math.min(cap, base * Math.pow(factor, Math.min(attempt, 60)));
  const rr = Math.min(Math.max(Number(r) || 0, 0), 1);
  return Math.round(raw * (1 - jitter) + raw * jitter * rr);
}

export class Backoff {
  constructor(opts = {}, random = Math.random) {
    this.opts = { ...DEFAULTS, ...opts };
    this.random = random;
    this.attempt = 0;
  }

  /** The next delay; each call moves one step up the schedule. */
  next() {
    const d = backoffDelay(this.attempt, this.random(), this.opts);
    this.attempt += 1;
    return d;
  }

  reset() {
    this.attempt = 0;
  }
}

/**
 * What a closed stream socket means for the viewer:
 * - "unauthorized": stop, show the message (the token is wrong or missing);
 * - "unavailable": the desktop's stream (neko, or the display for the native stream) is not
 *   running or not ready; retry with backoff;
 * - "retry": anything else (network drop, restart, too slow, a protocol error); retry with
 *   backoff.
 * `probeStatus` is the HTTP status of a plain GET on the socket's URL after a socket that
 * never opened (the browser hides the refusal's status), or undefined. On the relay
 * (`transport` "webrtc") 1008 is the relay's policy refusal; on the native stream ("ws") it is
 * a protocol violation, worth a retry.
 */
export function classifyClose(code, probeStatus, transport = "webrtc") {
  if (code === 4401 || code === 4403) return "unauthorized";
  if (code === 1008 && transport !== "ws") return "unauthorized";
  if (code === 4503 || code === 4502 || code === 4504 || code === 1013) return "unavailable";
  if (probeStatus === 401 || probeStatus === 403) return "unauthorized";
  if (probeStatus === 502 || probeStatus === 503 || probeStatus === 504) return "unavailable";
  return "retry";
}

/**
 * Closes a WebSocket that is connecting or open. Browsers accept only 1000 and 4000–4999
 * from a page; any other code closes with 1000.
 */
export function closeSocket(ws, code = 1000, reason = "") {
  if (!ws || ws.readyState > 1) return;
  try {
    ws.close(code >= 4000 || code === 1000 ? code : 1000, reason);
  } catch {
    ws.close();
  }
}

/**
 * Opens `session.url` with `session.WebSocketImpl` as both transports' sessions do: binary
 * messages as ArrayBuffers, `opened`/`lastReceived` kept for the stale watchdog, each message
 * passed to `onMessage(data)`, and one `close` event ({code, reason, opened}) after
 * `session.teardown()`, unless the session was already closed.
 */
export function openSocket(session, onMessage) {
  const ws = new session.WebSocketImpl(session.url);
  session.ws = ws;
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    session.opened = true;
    session.lastReceived = session.now();
  };
  ws.onmessage = (ev) => {
    session.lastReceived = session.now();
    onMessage(ev.data);
  };
  ws.onclose = (ev) => {
    session.teardown();
    if (session.closed) return;
    session.closed = true;
    session.on("close", { code: ev.code, reason: ev.reason || "", opened: session.opened });
  };
  ws.onerror = () => {};
  return ws;
}

/**
 * Ends a session: `session.teardown()`, one `close` event ({code, reason, opened, local}) if
 * the session was not closed yet, and its socket closed with a code the browser accepts.
 */
export function closeSession(session, code = 1000, reason = "") {
  const ws = session.ws;
  session.teardown();
  if (!session.closed) {
    session.closed = true;
    session.on("close", { code, reason, opened: session.opened, local: true });
  }
  closeSocket(ws, code, reason);
}
