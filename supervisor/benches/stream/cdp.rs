//! Headless Chromium driven over the DevTools protocol for the stream benchmark: one browser
//! per run, one window (flattened session) per viewer, commands stamped with the wall-clock
//! time at which they were written to the DevTools socket, so an input's time and the
//! page's photon time (`performance.timeOrigin + performance.now()`) share one clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::procs::{self, Proc};

/// Wall-clock milliseconds since the Unix epoch (as `Date.now()`, with a fraction).
pub fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

type Reply = oneshot::Sender<(Value, f64)>;

pub struct Browser {
    pub proc: Proc,
    profile: PathBuf,
    tx: mpsc::UnboundedSender<(Value, Reply)>,
}

pub struct Tab<'a> {
    browser: &'a Browser,
    session: String,
    target: String,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Browser {
    /// Starts `chromium` headless with a fresh profile in `dir` and connects to DevTools.
    /// The window is `window` CSS pixels at a device pixel ratio of 1.
    pub async fn launch(chromium: &Path, dir: &Path, window: (u32, u32)) -> Result<Browser> {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).context("chromium profile dir")?;
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--autoplay-policy=no-user-gesture-required",
            "--force-device-scale-factor=1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let proc = procs::spawn(
            "chromium",
            &mut cmd,
            nix::sys::signal::Signal::SIGKILL,
            Duration::from_secs(2),
        )?;

        // Chromium writes "<port>\n<browser ws path>" once DevTools listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_string(), path.to_string());
                }
            }
            if Instant::now() > deadline {
                bail!("chromium did not open DevTools within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("connect to DevTools")?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Value, Reply)>();
        tokio::spawn(async move {
            let mut next_id = 1u64;
            let mut pending: HashMap<u64, (Reply, f64)> = HashMap::new();
            loop {
                tokio::select! {
                    cmd = rx.recv() => {
                        let Some((mut msg, reply)) = cmd else { break };
                        msg["id"] = json!(next_id);
                        let sent = wall_ms();
                        pending.insert(next_id, (reply, sent));
                        next_id += 1;
                        if sink.send(Message::text(msg.to_string())).await.is_err() {
                            break;
                        }
                    }
                    frame = stream.next() => {
                        let Some(Ok(frame)) = frame else { break };
                        let Message::Text(t) = frame else { continue };
                        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                        if let Some(id) = v.get("id").and_then(Value::as_u64) {
                            if let Some((reply, sent)) = pending.remove(&id) {
                                let _ = reply.send((v, sent));
                            }
                        }
                    }
                }
            }
        });
        Ok(Browser { proc, profile, tx })
    }

    /// Sends a command; returns its result and the wall-clock ms at which it was written.
    pub async fn call_timed(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<(Value, f64)> {
        let mut msg = json!({ "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        self.tx
            .send((msg, reply_tx))
            .map_err(|_| anyhow!("DevTools connection closed"))?;
        let (v, sent) = tokio::time::timeout(CALL_TIMEOUT, reply_rx)
            .await
            .map_err(|_| anyhow!("DevTools {method} timed out"))?
            .map_err(|_| anyhow!("DevTools connection closed during {method}"))?;
        if let Some(err) = v.get("error") {
            bail!("DevTools {method} failed: {err}");
        }
        Ok((v["result"].clone(), sent))
    }

    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        Ok(self.call_timed(session, method, params).await?.0)
    }

    /// A new window with `script` run in every document before the page's own scripts,
    /// showing `viewport` CSS pixels; not navigated yet.
    pub async fn new_tab(&self, viewport: (u32, u32), script: &str) -> Result<Tab<'_>> {
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "newWindow": true }),
            )
            .await?;
        let target = target["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("no targetId"))?
            .to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let tab = Tab {
            browser: self,
            session: attached["sessionId"]
                .as_str()
                .ok_or_else(|| anyhow!("no sessionId"))?
                .to_string(),
            target,
        };
        tab.call("Page.enable", json!({})).await?;
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": viewport.0, "height": viewport.1, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        tab.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": script }),
        )
        .await?;
        Ok(tab)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Tab<'_> {
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.browser.call(Some(&self.session), method, params).await
    }

    pub async fn navigate(&self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            bail!("navigating to {url}: {e}");
        }
        Ok(())
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its JSON value.
    pub async fn eval(&self, expr: &str) -> Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("`{expr}` threw: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expr` every 50 ms until it is truthy or `timeout` passes (then `None`).
    pub async fn wait_for(&self, expr: &str, timeout: Duration) -> Result<Option<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A real key press: keyDown (with `text` for a printable key) then keyUp. Returns the
    /// wall-clock ms at which the keyDown was written to DevTools.
    pub async fn press(&self, key: &str, code: &str, vk: u32, text: Option<&str>) -> Result<f64> {
        let mut down = json!({ "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": key, "code": code, "windowsVirtualKeyCode": vk });
        if let Some(t) = text {
            down["text"] = json!(t);
            down["unmodifiedText"] = json!(t);
        }
        let (_, sent) = self
            .browser
            .call_timed(Some(&self.session), "Input.dispatchKeyEvent", down)
            .await?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk }),
        )
        .await?;
        Ok(sent)
    }

    /// A real left click at CSS pixel (x, y).
    pub async fn click(&self, x: f64, y: f64) -> Result<()> {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let button = if kind == "mouseMoved" { "none" } else { "left" };
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": button, "clickCount": 1 }),
            )
            .await?;
        }
        Ok(())
    }

    pub async fn close(self) {
        let _ = self
            .browser
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target }),
            )
            .await;
    }
}
