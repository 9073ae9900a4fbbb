//! `deskd ctl`: the agent API from a shell inside the container. A thin HTTP client of the
//! local deskd (hyper on a current-thread runtime, one request per run); every subcommand
//! is one API call, and errors say what to check ("is deskd running?").
//!
//! URL: `--url`, else env `DESKD_URL`, else `http://127.0.0.1:8080`. Token: `--token`, else
//! env `DESKD_TOKEN`, else the file from `--token-file` / env `DESKD_TOKEN_FILE`, else
//! [`DEFAULT_TOKEN_FILE`] if it exists.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};

/// Where deskd may leave its control token for local tools.
pub const DEFAULT_TOKEN_FILE: &str = "/run/deskd/token";
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Longest a request may take (input lists may wait up to two minutes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Arguments of `deskd ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// deskd's HTTP address [env: DESKD_URL] [default: http://127.0.0.1:8080]
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// Control token [env: DESKD_TOKEN]
    #[arg(long, value_name = "TOKEN", global = true)]
    token: Option<String>,
    /// File holding the control token [env: DESKD_TOKEN_FILE] [default: /run/deskd/token]
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Save a screenshot (PNG unless --format jpeg or the file name ends in .jpg/.jpeg).
    Screenshot {
        /// Output file; `-` writes to stdout.
        #[arg(short, long, value_name = "FILE", default_value = "screenshot.png")]
        output: String,
        /// png or jpeg.
        #[arg(long)]
        format: Option<String>,
        /// JPEG quality 1..100.
        #[arg(long)]
        quality: Option<u8>,
        /// x,y,width,height.
        #[arg(long)]
        region: Option<String>,
        /// Downscale factor in (0, 1].
        #[arg(long)]
        scale: Option<f64>,
        /// Downscale to at most this width.
        #[arg(long)]
        max_width: Option<u32>,
        /// Draw the pointer in.
        #[arg(long)]
        cursor: bool,
    },
    /// Run input actions given as JSON (one object or a list; `-` reads stdin).
    Input { json: String },
    /// Click at X Y.
    Click {
        x: i64,
        y: i64,
        /// left, middle, right, back, forward or 1..9.
        #[arg(long, default_value = "left")]
        button: String,
        /// 2 for a double click, 3 for a triple click.
        #[arg(long, default_value_t = 1)]
        count: u8,
    },
    /// Move the pointer to X Y.
    Move { x: i64, y: i64 },
    /// Type TEXT (any Unicode).
    Type { text: String },
    /// Press a key combo such as ctrl+shift+t or Return.
    Key { keys: String },
    /// Scroll at X Y by DY (down positive) and DX (right positive) wheel clicks.
    Scroll {
        x: i64,
        y: i64,
        #[arg(allow_hyphen_values = true)]
        dy: i64,
        #[arg(default_value_t = 0, allow_hyphen_values = true)]
        dx: i64,
    },
    /// Read or set the clipboard text.
    Clipboard {
        #[command(subcommand)]
        op: ClipboardOp,
    },
    /// List the top-level windows.
    Windows,
    /// Focus and raise a window by id.
    Focus { id: String },
    /// Screen size, depth and pointer position.
    Display,
    /// Whether an agent is acting (recent API input).
    Agent,
}

#[derive(Debug, Subcommand)]
enum ClipboardOp {
    /// Print the clipboard text.
    Get,
    /// Set the clipboard text (`-` reads stdin).
    Set { text: String },
}

/// Runs one ctl command; returns the exit code (0 ok, 1 request failed, 2 usage).
pub fn run(args: CtlArgs) -> u8 {
    match execute(args) {
        Ok(()) => 0,
        Err(CtlError::Usage(m)) => {
            eprintln!("deskd ctl: {m}");
            2
        }
        Err(e) => {
            eprintln!("deskd ctl: {e}");
            1
        }
    }
}

/// Why a ctl command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach deskd at {url}: {reason} (is deskd running? set --url or DESKD_URL)")]
    Connect { url: String, reason: String },
    #[error("deskd answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Io(String),
}

/// A response from deskd.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A minimal HTTP client of deskd's API, blocking (own current-thread runtime).
pub struct Client {
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base` like `http://127.0.0.1:8080` (a trailing slash is ignored).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Sends one request; non-2xx statuses are returned, not turned into errors.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, CtlError> {
        let url = format!("{}{}", self.base, path_and_query);
        let uri: Uri = url
            .parse()
            .map_err(|e| CtlError::Usage(format!("invalid URL {url}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(CtlError::Usage(format!(
                "only http:// URLs are supported, not {url}"
            )));
        }
        let host = uri.host().unwrap_or("127.0.0.1").to_string();
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| host.clone());
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|e| CtlError::Usage(e.to_string()))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(hyper::header::HOST, authority);
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CtlError::Usage(format!("bad request: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CtlError::Io(format!("cannot start a runtime: {e}")))?;
        let base = self.base.clone();
        let connect_err = move |reason: String| CtlError::Connect {
            url: base.clone(),
            reason,
        };
        runtime.block_on(async move {
            let exchange = async {
                let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| connect_err(e.to_string()))?;
                tokio::spawn(conn);
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(hyper::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| connect_err(format!("reading the response: {e}")))?
                    .to_bytes();
                Ok(Response {
                    status,
                    content_type,
                    body,
                })
            };
            tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                .await
                .map_err(|_| {
                    CtlError::Io(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))
                })?
        })
    }

    /// Sends a request and fails on a non-2xx status with deskd's `error` message.
    pub fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, CtlError> {
        let response = self.request(method, path_and_query, body)?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).trim().to_string());
        let hint = match response.status {
            401 => " (give the control token with --token, DESKD_TOKEN or --token-file)",
            403 => " (this needs the control token, not the view token)",
            _ => "",
        };
        Err(CtlError::Status {
            status: response.status,
            message: format!("{message}{hint}"),
        })
    }
}

fn resolve_token(args: &CtlArgs) -> Result<Option<String>, CtlError> {
    if let Some(t) = &args.token {
        return Ok(Some(t.clone()));
    }
    if let Ok(t) = std::env::var("DESKD_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(Some(t.trim().to_string()));
        }
    }
    let explicit = args
        .token_file
        .clone()
        .or_else(|| std::env::var_os("DESKD_TOKEN_FILE").map(PathBuf::from));
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (PathBuf::from(DEFAULT_TOKEN_FILE), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        Ok(_) if required => Err(CtlError::Usage(format!(
            "token file {} is empty",
            path.display()
        ))),
        Err(e) if required => Err(CtlError::Usage(format!(
            "cannot read token file {}: {e}",
            path.display()
        ))),
        _ => Ok(None),
    }
}

fn read_arg_or_stdin(value: &str) -> Result<String, CtlError> {
    if value != "-" {
        return Ok(value.to_string());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| CtlError::Io(format!("reading stdin: {e}")))?;
    Ok(s)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_json(body: &[u8]) -> Result<(), CtlError> {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    println!("{text}");
    Ok(())
}

fn input(client: &Client, actions: serde_json::Value) -> Result<(), CtlError> {
    let body = serde_json::to_vec(&actions).map_err(|e| CtlError::Io(e.to_string()))?;
    let r = client.call("POST", "/api/input", Some(body))?;
    print_json(&r.body)
}

fn execute(args: CtlArgs) -> Result<(), CtlError> {
    let url = args
        .url
        .clone()
        .or_else(|| {
            std::env::var("DESKD_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let client = Client::new(&url, resolve_token(&args)?);
    use serde_json::json;
    match args.command {
        CtlCommand::Screenshot {
            output,
            format,
            quality,
            region,
            scale,
            max_width,
            cursor,
        } => {
            let lower = output.to_ascii_lowercase();
            let format = format.or_else(|| {
                (lower.ends_with(".jpg") || lower.ends_with(".jpeg")).then(|| "jpeg".to_string())
            });
            let mut query = Vec::new();
            if let Some(f) = format {
                query.push(format!("format={}", encode(&f)));
            }
            if let Some(q) = quality {
                query.push(format!("quality={q}"));
            }
            if let Some(r) = region {
                query.push(format!("region={}", encode(&r)));
            }
            if let Some(s) = scale {
                query.push(format!("scale={s}"));
            }
            if let Some(w) = max_width {
                query.push(format!("max_width={w}"));
            }
            if cursor {
                query.push("cursor=true".to_string());
            }
            let path = if query.is_empty() {
                "/api/screenshot".to_string()
            } else {
                format!("/api/screenshot?{}", query.join("&"))
            };
            let r = client.call("GET", &path, None)?;
            if output == "-" {
                std::io::stdout()
                    .write_all(&r.body)
                    .map_err(|e| CtlError::Io(format!("writing stdout: {e}")))?;
            } else {
                std::fs::write(&output, &r.body)
                    .map_err(|e| CtlError::Io(format!("writing {output}: {e}")))?;
                eprintln!("deskd ctl: wrote {output} ({} bytes)", r.body.len());
            }
            Ok(())
        }
        CtlCommand::Input { json: text } => {
            let text = read_arg_or_stdin(&text)?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CtlError::Usage(format!("the actions are not valid JSON: {e}")))?;
            input(&client, value)
        }
        CtlCommand::Click {
            x,
            y,
            button,
            count,
        } => {
            let button = match button.parse::<u8>() {
                Ok(n) => json!(n),
                Err(_) => json!(button),
            };
            input(
                &client,
                json!({"action": "click", "x": x, "y": y, "button": button, "count": count}),
            )
        }
        CtlCommand::Move { x, y } => input(&client, json!({"action": "move", "x": x, "y": y})),
        CtlCommand::Type { text } => input(
            &client,
            json!({"action": "type", "text": read_arg_or_stdin(&text)?}),
        ),
        CtlCommand::Key { keys } => input(&client, json!({"action": "key", "keys": keys})),
        CtlCommand::Scroll { x, y, dy, dx } => input(
            &client,
            json!({"action": "scroll", "x": x, "y": y, "dx": dx, "dy": dy}),
        ),
        CtlCommand::Clipboard {
            op: ClipboardOp::Get,
        } => {
            let r = client.call("GET", "/api/clipboard", None)?;
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .map_err(|e| CtlError::Io(format!("unexpected answer from deskd: {e}")))?;
            if let Some(text) = v.get("text").and_then(|t| t.as_str()) {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            Ok(())
        }
        CtlCommand::Clipboard {
            op: ClipboardOp::Set { text },
        } => {
            let body = serde_json::to_vec(&json!({"text": read_arg_or_stdin(&text)?}))
                .map_err(|e| CtlError::Io(e.to_string()))?;
            client.call("POST", "/api/clipboard", Some(body))?;
            Ok(())
        }
        CtlCommand::Windows => print_json(&client.call("GET", "/api/windows", None)?.body),
        CtlCommand::Focus { id } => print_json(
            &client
                .call("POST", &format!("/api/windows/{}/focus", encode(&id)), None)?
                .body,
        ),
        CtlCommand::Display => print_json(&client.call("GET", "/api/display", None)?.body),
        CtlCommand::Agent => print_json(&client.call("GET", "/api/agent", None)?.body),
    }
}
