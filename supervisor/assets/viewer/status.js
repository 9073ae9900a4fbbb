// The status line's words, and whether this viewer is refused control. Pure: main.js gives it
// the state and puts the text on the page.

import { transportLabel } from "./transport.js";

/** How long a control request may go unanswered before the page says "view only". */
export const CONTROL_WAIT_MS = 2500;

/**
 * "in control", "view only" or "click to control":
 * - `access`: "view" (known from /api/session or the stream's hello) is view only at once;
 * - `isHost`: this viewer has control now;
 * - `refused`: a request for control went unanswered (an older deskd that does not say the
 *   access).
 */
export function controlLabel({ access = null, isHost = false, refused = false }) {
  if (access === "view") return "view only";
  if (isHost) return "in control";
  return refused ? "view only" : "click to control";
}

/** "· 1280×720 · in control · WebSocket · 3 ms" */
export function liveDetail({ screen = null, access = null, isHost = false, refused = false, transport = null, codec = null, rttMs = null }) {
  const parts = [];
  if (screen) parts.push(`${screen.width}×${screen.height}`);
  parts.push(controlLabel({ access, isHost, refused }));
  const t = transportLabel(transport, codec);
  if (t) parts.push(t);
  if (rttMs !== null && rttMs !== undefined) parts.push(`${rttMs} ms`);
  return `· ${parts.join(" · ")}`;
}

/**
 * Tracks control requests: a request is refused only if control was not granted at any time
 * after it was made. A viewer that got control and then lost it to someone else (implicit
 * hosting: the last to act is host) is not refused: its next input takes control back.
 */
export class ControlTracker {
  constructor() {
    this.grants = 0;
    this.refused = false;
  }

  /** A request went out; returns the ticket to check later. */
  request() {
    return this.grants;
  }

  /** neko said who the host is. */
  host(isHost) {
    if (isHost) {
      this.grants += 1;
      this.refused = false;
    }
  }

  /** The wait after a request ended: sets and returns `refused`. */
  settle(ticket, isHostNow) {
    if (!isHostNow && this.grants === ticket) this.refused = true;
    return this.refused;
  }

  reset() {
    this.refused = false;
  }
}

const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Connection lost — reconnecting",
  unauthorized: "Not authorized — open the link with the access token again",
  unavailable: "Desktop unavailable — retrying",
  unsupported: "This browser cannot show the desktop",
};

/** The head of the status text for a state. */
export function stateText(state) {
  return STATE_TEXT[state] || state;
}

/** Why the native stream cannot run here, in words a person can act on. */
export function unsupportedText(problem, secureContext) {
  if (problem === "no-webcodecs") {
    return secureContext
      ? "This browser cannot show the desktop: it has no WebCodecs video decoder (use a current Chrome, Edge, Firefox or Safari)"
      : "This browser cannot show the desktop: its WebCodecs video decoder works only over HTTPS or on localhost — open the page over HTTPS";
  }
  if (problem === "no-webrtc") return "This browser cannot show the desktop: it has no WebRTC";
  return "This browser cannot show the desktop";
}
