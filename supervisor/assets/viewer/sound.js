// Sound next to deskd's own stream: neko is the only source of sound, so while the page shows
// the native stream and sound is wanted, a second neko session through the relay carries the
// audio only. Its video is never turned on, so neko runs no video pipeline for it (the cost
// of a WebRTC viewer on a static screen is neko's video pipeline, some 20% of a core; its
// Opus pipeline is a few per cent). Input never goes this way. The session is made again
// after a close, with backoff, for as long as sound is wanted.

import { Backoff } from "./backoff.js";
import { NekoSession } from "./signaling.js";

export class SoundSession {
  /**
   * - `url`: the relay's WebSocket URL; `audio`: the <audio> element that plays the track;
   * - `on(state)`: "connecting", "playing", "blocked" (the browser wants a gesture first),
   *   "retrying", "off";
   * - `NekoSessionImpl`, `setTimeoutImpl`, `backoff` for tests.
   */
  constructor({ url, audio, on = () => {}, NekoSessionImpl = NekoSession, setTimeoutImpl = globalThis.setTimeout.bind(globalThis), backoff = new Backoff() }) {
    Object.assign(this, { url, audio, on, NekoSessionImpl, setTimeoutImpl, backoff });
    this.neko = null;
    this.wanted = false;
    this.state = "off";
    this.timer = null;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.on(state);
  }

  start() {
    if (this.wanted) return;
    this.wanted = true;
    this.connect();
  }

  connect() {
    if (!this.wanted || this.neko) return;
    this.setState("connecting");
    const neko = new this.NekoSessionImpl({
      url: this.url,
      audio: true,
      video: false,
      on: (ev, d) => {
        if (this.neko !== neko) return;
        if (ev === "track" && d && d.track && d.track.kind === "audio") this.play(d);
        else if (ev === "close") this.closed();
      },
    });
    this.neko = neko;
    neko.start();
  }

  play(ev) {
    const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    if (this.audio.srcObject !== stream) this.audio.srcObject = stream;
    this.resume();
    this.backoff.reset();
  }

  /** Plays (again): after a gesture, when the browser blocked sound that started by itself. */
  resume() {
    if (!this.wanted || !this.audio.srcObject) return;
    const p = this.audio.play();
    if (p && typeof p.then === "function") {
      p.then(
        () => this.wanted && this.setState("playing"),
        () => this.wanted && this.setState("blocked"),
      );
    } else {
      this.setState("playing");
    }
  }

  closed() {
    this.neko = null;
    this.audio.srcObject = null;
    if (!this.wanted) return;
    this.setState("retrying");
    this.timer = this.setTimeoutImpl(() => {
      this.timer = null;
      this.connect();
    }, this.backoff.next());
  }

  /** Audio RTP packets received on the current session (for tests and the bench). */
  async packetsReceived() {
    const pc = this.neko && this.neko.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") n += r.packetsReceived || 0;
    });
    return n;
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const neko = this.neko;
    this.neko = null;
    if (neko) neko.close(1000, "sound off");
    this.audio.srcObject = null;
    this.setState("off");
  }
}
