//! Parsers for the small value syntaxes of the config: durations, signals, sizes, port
//! ranges, addresses. Pure functions returning a message that says what was expected.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

/// Longest duration the config accepts. Anything longer is a typo, and deadlines are
/// computed as `Instant::now() + duration`, which panics past about 292 billion years
/// (humantime parses up to `u64::MAX` seconds).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration such as `"200ms"`, `"10s"`, `"1m"` or `"1m 30s"`, at most [`MAX_DURATION`].
pub(crate) fn duration(text: String) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("bad duration {text:?} ({e}); expected e.g. \"200ms\", \"10s\", \"1m\"")
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is longer than the limit of {} days",
            MAX_DURATION.as_secs() / (24 * 3600)
        ));
    }
    Ok(d)
}

/// A signal as a string (`"SIGTERM"`, `"TERM"`, `"15"`, any case) or an integer (`15`).
pub(crate) fn signal(raw: StringOrInt) -> Result<Signal, String> {
    let parsed = match &raw {
        StringOrInt::Int(n) => i32::try_from(*n)
            .ok()
            .and_then(|n| Signal::try_from(n).ok()),
        StringOrInt::Str(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i32>() {
                Signal::try_from(n).ok()
            } else {
                let upper = s.to_ascii_uppercase();
                let name = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                Signal::from_str(&name).ok()
            }
        }
    };
    parsed.ok_or_else(|| {
        format!(
            "unknown signal {}; expected a name such as \"SIGTERM\", \"TERM\" or \"SIGINT\", or a number",
            raw
        )
    })
}

/// A string or an integer, for values that accept both (signals).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrInt {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for StringOrInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringOrInt::Str(s) => write!(f, "{s:?}"),
            StringOrInt::Int(n) => write!(f, "{n}"),
        }
    }
}

/// Largest width or height accepted for the virtual screen (Xvfb's own limit).
pub(crate) const MAX_SCREEN_SIDE: u32 = 32767;

/// A screen size `"WIDTHxHEIGHT"`, e.g. `"1280x720"`.
pub(crate) fn size(text: String) -> Result<(u32, u32), String> {
    let bad = || format!("bad size {text:?}; expected WIDTHxHEIGHT, e.g. \"1280x720\"");
    let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || w > MAX_SCREEN_SIDE || h > MAX_SCREEN_SIDE {
        return Err(format!(
            "bad size {text:?}; width and height must be between 1 and {MAX_SCREEN_SIDE}"
        ));
    }
    Ok((w, h))
}

/// A UDP port range `"MIN-MAX"`, e.g. `"59000-59100"`.
pub(crate) fn port_range(text: String) -> Result<(u16, u16), String> {
    let bad = || format!("bad port range {text:?}; expected MIN-MAX, e.g. \"59000-59100\"");
    let (lo, hi) = text.trim().split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(format!(
            "bad port range {text:?}; need 1 <= MIN <= MAX <= 65535"
        ));
    }
    Ok((lo, hi))
}

/// A port number other than 0.
pub(crate) fn port(n: u16) -> Result<u16, String> {
    if n == 0 {
        Err("port 0 is not allowed here; give a fixed port".to_string())
    } else {
        Ok(n)
    }
}

/// A socket address `"IP:PORT"` (`"[::1]:8080"` for IPv6).
pub(crate) fn socket_addr(text: String) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("bad address {text:?}; expected IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"")
    })
}

/// An IP address.
pub(crate) fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("bad IP address {text:?}"))
}

/// `"host:port"` for a TCP readiness probe (host may be a name).
pub(crate) fn host_port(text: String) -> Result<String, String> {
    let bad = || format!("bad address {text:?}; expected HOST:PORT, e.g. \"127.0.0.1:5432\"");
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text);
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(text)
}

/// An absolute path for a Unix socket readiness probe.
pub(crate) fn unix_socket(text: String) -> Result<String, String> {
    if text.starts_with('/') && !text.contains('\0') {
        Ok(text)
    } else {
        Err(format!(
            "bad socket path {text:?}; expected an absolute path, e.g. \"/tmp/pulseaudio.socket\""
        ))
    }
}

/// An `http://` URL for an HTTP readiness probe.
pub(crate) fn http_url(text: String) -> Result<String, String> {
    let rest = text.strip_prefix("http://").ok_or_else(|| {
        format!("bad URL {text:?}; the probe speaks plain HTTP: expected http://HOST:PORT/PATH")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || text.contains(char::is_whitespace) {
        return Err(format!("bad URL {text:?}; expected http://HOST:PORT/PATH"));
    }
    Ok(text)
}

/// An X display name such as `":99"` or `":99.0"` (local displays only).
pub(crate) fn x_display(text: String) -> Result<String, String> {
    let bad = || format!("bad X display {text:?}; expected \":N\", e.g. \":99\"");
    let rest = text.strip_prefix(':').ok_or_else(bad)?;
    let (num, screen) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    num.parse::<u32>().map_err(|_| bad())?;
    if let Some(screen) = screen {
        screen.parse::<u32>().map_err(|_| bad())?;
    }
    Ok(text)
}

/// A service name: what logs, metrics labels, `after` lists and URLs can carry unquoted.
pub(crate) fn service_name(text: String) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(text)
    } else {
        Err(format!(
            "bad service name {text:?}; use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("200ms".into()), Ok(Duration::from_millis(200)));
        assert_eq!(duration("10s".into()), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1m".into()), Ok(Duration::from_secs(60)));
        assert_eq!(duration("1m 30s".into()), Ok(Duration::from_secs(90)));
        assert!(duration("10".into()).is_err());
        assert!(duration("soon".into()).is_err());
        assert!(duration("".into()).is_err());
    }

    #[test]
    fn signals_by_name_short_name_and_number() {
        let s = |t: &str| signal(StringOrInt::Str(t.to_string()));
        assert_eq!(s("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(s("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(s("sigint"), Ok(Signal::SIGINT));
        assert_eq!(s("15"), Ok(Signal::SIGTERM));
        assert_eq!(signal(StringOrInt::Int(2)), Ok(Signal::SIGINT));
        assert!(s("SIGNOPE").is_err());
        assert!(s("999").is_err());
        assert!(signal(StringOrInt::Int(-1)).is_err());
        assert!(signal(StringOrInt::Int(i64::MAX)).is_err());
    }

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(size("1280x720".into()), Ok((1280, 720)));
        assert!(size("1280".into()).is_err());
        assert!(size("0x720".into()).is_err());
        assert!(size("99999x1".into()).is_err());
        assert!(size("axb".into()).is_err());
        assert_eq!(port_range("59000-59100".into()), Ok((59000, 59100)));
        assert!(port_range("59100-59000".into()).is_err());
        assert!(port_range("0-10".into()).is_err());
        assert!(port_range("1-70000".into()).is_err());
    }

    #[test]
    fn addresses_and_names() {
        assert!(socket_addr("0.0.0.0:8080".into()).is_ok());
        assert!(socket_addr("[::]:8080".into()).is_ok());
        assert!(socket_addr("localhost:8080".into()).is_err());
        assert!(host_port("localhost:5432".into()).is_ok());
        assert!(host_port("[::1]:5432".into()).is_ok());
        assert!(host_port("localhost".into()).is_err());
        assert!(host_port(":80".into()).is_err());
        assert!(http_url("http://127.0.0.1:1/health".into()).is_ok());
        assert!(http_url("https://x/".into()).is_err());
        assert!(http_url("http:///x".into()).is_err());
        assert!(x_display(":99".into()).is_ok());
        assert!(x_display(":99.0".into()).is_ok());
        assert!(x_display("99".into()).is_err());
        assert!(x_display("host:1".into()).is_err());
        assert!(service_name("web-1.a_b".into()).is_ok());
        assert!(service_name("".into()).is_err());
        assert!(service_name("a b".into()).is_err());
    }
}
