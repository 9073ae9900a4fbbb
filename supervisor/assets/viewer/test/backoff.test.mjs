import test from "node:test";
import assert from "node:assert/strict";
import { Backoff, backoffDelay, classifyClose, closeSocket, openSocket } from "../backoff.js";

test("the schedule doubles from 500 ms and is capped at 15 s", () => {
  const hi = [0, 1, 2, 3, 4, 5, 6, 10, 100].map((n) => backoffDelay(n, 1));
  assert.deepEqual(hi, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
});

test("jitter keeps at least half the delay", () => {
  assert.equal(backoffDelay(3, 0), 2000);
  assert.equal(backoffDelay(3, 0.5), 3000);
  assert.equal(backoffDelay(3, 0.999999), 4000);
  assert.equal(backoffDelay(3, -1), 2000);
  assert.equal(backoffDelay(3, NaN), 2000);
});

test("Backoff steps up and starts over on reset", () => {
  const rs = [1, 1, 1, 0];
  const b = new Backoff({}, () => rs.shift() ?? 1);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 2000]);
  b.reset();
  assert.equal(b.next(), 500);
});

test("close codes: unauthorized stops, unavailable and the rest retry", () => {
  assert.equal(classifyClose(4401), "unauthorized");
  assert.equal(classifyClose(4403), "unauthorized");
  assert.equal(classifyClose(1008), "unauthorized");
  assert.equal(classifyClose(4503), "unavailable");
  assert.equal(classifyClose(1013), "unavailable");
  assert.equal(classifyClose(1006), "retry");
  assert.equal(classifyClose(1000), "retry");
  assert.equal(classifyClose(1001), "retry");
  assert.equal(classifyClose(4000), "retry");
});

test("a socket that never opened is judged by the HTTP probe", () => {
  assert.equal(classifyClose(1006, 401), "unauthorized");
  assert.equal(classifyClose(1006, 403), "unauthorized");
  assert.equal(classifyClose(1006, 503), "unavailable");
  assert.equal(classifyClose(1006, 400), "retry");
  assert.equal(classifyClose(1006, undefined), "retry");
});

test("the native stream's close codes (docs/native-stream.md)", () => {
  assert.equal(classifyClose(4503, undefined, "ws"), "unavailable");
  assert.equal(classifyClose(4408, undefined, "ws"), "retry");
  assert.equal(classifyClose(1001, undefined, "ws"), "retry");
  assert.equal(classifyClose(1009, undefined, "ws"), "retry");
  // A protocol violation there is not the token: retry, unlike the relay's 1008.
  assert.equal(classifyClose(1008, undefined, "ws"), "retry");
  assert.equal(classifyClose(1006, 401, "ws"), "unauthorized");
  assert.equal(classifyClose(1006, 503, "ws"), "unavailable");
});

test("closeSocket uses a code the browser accepts, and only on a live socket", () => {
  const calls = [];
  const ws = (readyState) => ({ readyState, close: (...a) => calls.push(a) });
  closeSocket(ws(1), 4000, "stale connection");
  closeSocket(ws(0), 1001, "going");
  closeSocket(ws(3), 4000, "already closed");
  closeSocket(null);
  assert.deepEqual(calls, [[4000, "stale connection"], [1000, "going"]]);
});

test("openSocket keeps the session's liveness and emits one close after teardown", () => {
  class FakeWs {
    constructor(url) {
      this.url = url;
    }
  }
  let clock = 10;
  const events = [];
  const received = [];
  const session = {
    url: "ws://h/stream/ws",
    WebSocketImpl: FakeWs,
    now: () => clock,
    opened: false,
    closed: false,
    torn: 0,
    teardown() {
      this.torn += 1;
    },
    on: (ev, d) => events.push([ev, d]),
  };
  const ws = openSocket(session, (data) => received.push(data));
  assert.equal(session.ws, ws);
  assert.equal(ws.url, "ws://h/stream/ws");
  assert.equal(ws.binaryType, "arraybuffer");
  ws.onopen();
  assert.equal(session.opened, true);
  clock = 20;
  ws.onmessage({ data: "hi" });
  assert.deepEqual(received, ["hi"]);
  assert.equal(session.lastReceived, 20);
  ws.onclose({ code: 4503, reason: "" });
  ws.onclose({ code: 1006, reason: "" });
  assert.equal(session.torn, 2);
  assert.deepEqual(events, [["close", { code: 4503, reason: "", opened: true }]]);
});
