// One signaling session through the relay: neko's v3 exchange (neko-protocol.md §2 "Minimal
// sequence"): system/init → signal/request → signal/provide → answer → signal/answer, trickle
// ICE both ways (local candidates only after the answer, remote ones buffered until the remote
// description is set), neko's own "data" channel. Reconnecting is the caller's job: a session
// lives for one WebSocket. WebSocket and RTCPeerConnection are injected for tests.
//
// The video is asked for disabled and enabled (signal/video) once the peer connection is
// connected: neko forces a key frame only when a viewer's track joins its pipeline and ignores
// the browser's key frame requests, and a key frame sent before DTLS is up is lost. Joined
// after, the first frame the browser gets is a key frame (`restartVideo` does the same to
// recover from a picture that stopped decoding).

import { closeSession, openSocket } from "./backoff.js";

/** Browser-facing ICE servers from neko's `iceservers` list. */
export function iceServersFrom(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const s of list) {
    if (!s || typeof s !== "object") continue;
    const urls = Array.isArray(s.urls) ? s.urls.filter((u) => typeof u === "string") : typeof s.urls === "string" ? [s.urls] : [];
    if (urls.length === 0) continue;
    const entry = { urls };
    if (typeof s.username === "string" && s.username !== "") entry.username = s.username;
    if (typeof s.credential === "string" && s.credential !== "") entry.credential = s.credential;
    out.push(entry);
  }
  return out;
}

export class NekoSession {
  /**
   * - `url`: the relay's WebSocket URL;
   * - `audio`: ask neko for audio; `video`: false for a session that never turns the video
   *   on (sound only: neko then runs no video pipeline for it);
   * - `on(event, detail)`: "init", "host", "screen", "track", "datachannel", "peer-state",
   *   "peer-closed", "clipboard", "disconnect-message", "message", "sent", "close";
   * - `WebSocketImpl`, `RTCPeerConnectionImpl`, `now` for tests.
   */
  constructor({ url, audio = false, video = true, on = () => {}, WebSocketImpl = globalThis.WebSocket, RTCPeerConnectionImpl = globalThis.RTCPeerConnection, now = () => Date.now() }) {
    Object.assign(this, { url, audio, video, on, WebSocketImpl, RTCPeerConnectionImpl, now });
    this.ws = null;
    this.pc = null;
    this.dc = null;
    this.sessionId = null;
    this.screen = null;
    this.hostId = null;
    this.opened = false;
    this.closed = false;
    this.lastReceived = now();
    this.remoteCandidates = [];
    this.localCandidates = [];
    this.answered = false;
    /** signal/video {disabled: false} was sent for the current peer connection. */
    this.videoOn = false;
    this.chain = Promise.resolve();
  }

  get isHost() {
    return this.sessionId !== null && this.hostId === this.sessionId;
  }

  start() {
    openSocket(this, (data) => {
      if (typeof data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (!msg || typeof msg.event !== "string") return;
      this.on("message", msg);
      // One message at a time, in order: provide's async work must finish before the
      // candidates and offers behind it are handled.
      this.chain = this.chain.then(() => this.handle(msg.event, msg.payload)).catch((err) => this.fail(err));
    });
  }

  send(event, payload) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    const msg = payload === undefined ? { event } : { event, payload };
    this.ws.send(JSON.stringify(msg));
    this.on("sent", msg);
    return true;
  }

  fail(err) {
    this.on("error", err);
    this.close(4000, "viewer error");
  }

  /** Ends the session; `close` is reported once with the given code. */
  close(code = 1000, reason = "") {
    closeSession(this, code, reason);
  }

  teardown() {
    if (this.pc) {
      try {
        this.pc.close();
      } catch {
        /* already closed */
      }
    }
    this.pc = null;
    this.dc = null;
  }

  requestSignal() {
    this.send("signal/request", { video: { disabled: true }, audio: { disabled: !this.audio } });
  }

  /** Turns the video on (neko adds the track to its pipeline: a key frame comes first). */
  startVideo() {
    this.videoOn = this.send("signal/video", { disabled: false }) !== false;
  }

  /** Off and on again: neko's only way to send a key frame on demand. */
  restartVideo() {
    if (!this.videoOn) return;
    this.send("signal/video", { disabled: true });
    this.startVideo();
  }

  async handle(event, payload) {
    const p = payload && typeof payload === "object" ? payload : {};
    switch (event) {
      case "system/init":
        this.sessionId = typeof p.session_id === "string" ? p.session_id : null;
        this.screen = validScreen(p.screen_size);
        this.hostId = p.control_host && p.control_host.has_host ? p.control_host.host_id ?? null : null;
        this.on("init", { sessionId: this.sessionId, screen: this.screen, hostId: this.hostId });
        this.on("host", { isHost: this.isHost, hostId: this.hostId });
        this.requestSignal();
        break;
      case "signal/provide":
        await this.provide(p);
        break;
      case "signal/offer":
      case "signal/restart":
        if (this.pc && typeof p.sdp === "string") await this.answer(p.sdp);
        break;
      case "signal/candidate":
        await this.remoteCandidate(p);
        break;
      case "signal/close":
        this.teardown();
        this.on("peer-closed", {});
        this.remoteCandidates = [];
        this.requestSignal();
        break;
      case "control/host":
        this.hostId = p.has_host ? p.host_id ?? null : null;
        this.on("host", { isHost: this.isHost, hostId: this.hostId });
        break;
      case "screen/updated": {
        const s = validScreen(p);
        if (s) {
          this.screen = s;
          this.on("screen", s);
        }
        break;
      }
      case "clipboard/updated":
        if (typeof p.text === "string") this.on("clipboard", p.text);
        break;
      case "system/disconnect":
        this.on("disconnect-message", typeof p.message === "string" ? p.message : "");
        break;
      default:
        break;
    }
  }

  async provide(p) {
    if (typeof p.sdp !== "string") return;
    this.teardown();
    this.answered = false;
    this.videoOn = false;
    this.localCandidates = [];
    const pc = new this.RTCPeerConnectionImpl({ iceServers: iceServersFrom(p.iceservers) });
    this.pc = pc;
    pc.onicecandidate = (ev) => {
      if (this.pc !== pc || !ev.candidate) return;
      const c = typeof ev.candidate.toJSON === "function" ? ev.candidate.toJSON() : ev.candidate;
      if (this.answered) this.send("signal/candidate", c);
      else this.localCandidates.push(c);
    };
    pc.ontrack = (ev) => {
      if (this.pc === pc) this.on("track", ev);
    };
    pc.ondatachannel = (ev) => {
      if (this.pc !== pc || !ev.channel || ev.channel.label !== "data") return;
      ev.channel.binaryType = "arraybuffer";
      this.dc = ev.channel;
      this.on("datachannel", ev.channel);
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === "connected" && this.video && !this.videoOn) this.startVideo();
      this.on("peer-state", pc.connectionState);
    };
    await this.answer(p.sdp);
  }

  async answer(sdp) {
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    const buffered = this.remoteCandidates;
    this.remoteCandidates = [];
    for (const c of buffered) await this.addCandidate(c);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.pc !== pc) return;
    const local = pc.localDescription && pc.localDescription.sdp ? pc.localDescription.sdp : answer.sdp;
    this.send("signal/answer", { sdp: local });
    this.answered = true;
    const pending = this.localCandidates;
    this.localCandidates = [];
    for (const c of pending) this.send("signal/candidate", c);
  }

  async remoteCandidate(p) {
    if (typeof p.candidate !== "string") return;
    const c = { candidate: p.candidate };
    if (typeof p.sdpMid === "string") c.sdpMid = p.sdpMid;
    if (Number.isInteger(p.sdpMLineIndex)) c.sdpMLineIndex = p.sdpMLineIndex;
    if (typeof p.usernameFragment === "string") c.usernameFragment = p.usernameFragment;
    if (this.pc && this.pc.remoteDescription) await this.addCandidate(c);
    else this.remoteCandidates.push(c);
  }

  async addCandidate(c) {
    try {
      await this.pc.addIceCandidate(c);
    } catch (err) {
      // One bad candidate is not fatal: ICE uses the others.
      this.on("error", err);
    }
  }
}

function validScreen(s) {
  if (!s || typeof s !== "object") return null;
  const width = Number(s.width);
  const height = Number(s.height);
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) return null;
  return { width, height, rate: Number(s.rate) || 0 };
}
