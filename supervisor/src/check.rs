//! `deskd check`: validate config files and print the start plan.
//!
//! Valid: the plan goes to stdout (services in start order, with what each waits for, its
//! probe, restart policy and command) and the exit code is 0. Invalid: one line per problem on
//! stderr, `FILE:LINE: key: message`, and exit code 2. Secrets never appear: env entries in a
//! service's `secret_env` are redacted, and so is every token or credential of the config
//! wherever it would show (neko's API token is a dummy here, and redacted too).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{self, Settings};
use crate::plan::Plan;
use crate::service::{RestartPolicy, ServiceSpec};

/// Exit code for an invalid configuration.
pub const EXIT_INVALID: u8 = 2;

/// Stands in for the per-start neko API token when printing (it is redacted anyway).
const DUMMY_TOKEN: &str = "deskd-check-placeholder-token";

const REDACTED: &str = "<redacted>";

/// Returns 0 when valid (plan printed), 2 when not (errors printed).
pub fn run(configs: &[PathBuf], conf_d: &Path, main: &[String]) -> u8 {
    match config::load(configs, conf_d, main) {
        Ok(settings) => match plan_text(&settings) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                EXIT_INVALID
            }
        },
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            EXIT_INVALID
        }
    }
}

/// The start plan as shown by `deskd check`; errors if the service graph is invalid.
pub fn plan_text(settings: &Settings) -> Result<String, Vec<String>> {
    // The feed's port is chosen when deskd starts; port 0 stands for it.
    let feed = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let services = settings.all_services(DUMMY_TOKEN, Some(feed));
    let plan = Plan::new(&services).map_err(|e| {
        e.errors
            .iter()
            .map(|e| format!("configuration: {e}"))
            .collect::<Vec<_>>()
    })?;
    let secrets = secrets(settings);
    let mut out = String::new();
    let sources: Vec<String> = settings
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(out, "configuration OK: {}", sources.join(", "));
    if let Some(d) = &settings.display {
        let _ = writeln!(
            out,
            "display {} {}x{}x{}",
            d.display_name(),
            d.width,
            d.height,
            d.depth
        );
    }
    let _ = writeln!(out, "http listen {}", settings.http.listen);
    let st = &settings.stream;
    if st.enabled {
        let _ = writeln!(
            out,
            "stream /stream/ws on: H.264 at most {} fps, {} kbit/s",
            st.max_fps, st.bitrate_kbps
        );
    } else {
        let _ = writeln!(out, "stream /stream/ws off");
    }
    let _ = writeln!(out, "start order:");
    for (n, &i) in plan.start_order().iter().enumerate() {
        let s = &services[i];
        let _ = writeln!(out, "{:>3}. {}{}", n + 1, s.name, flags(s));
        let _ = writeln!(
            out,
            "       command: {}",
            redact(&shell_words(&s.command), &secrets)
        );
        let after = if s.after.is_empty() {
            "-".to_string()
        } else {
            s.after.join(", ")
        };
        let _ = writeln!(out, "       after:   {after}");
        let _ = writeln!(
            out,
            "       ready:   {} (timeout {})",
            s.ready.describe(),
            humantime::format_duration(s.ready_timeout)
        );
        let _ = writeln!(out, "       restart: {}", restart(s));
        let _ = writeln!(
            out,
            "       stop:    {} then SIGKILL after {}",
            s.stop_signal.as_str(),
            humantime::format_duration(s.stop_timeout)
        );
        if !s.env.is_empty() {
            let env: Vec<String> = s
                .env
                .iter()
                .map(|(k, v)| format!("{k}={}", redact(s.display_env_value(k, v), &secrets)))
                .collect();
            let _ = writeln!(out, "       env:     {}", shell_words(&env));
        }
        if let Some(user) = &s.user {
            let _ = writeln!(out, "       user:    {user}");
        }
        if let Some(cwd) = &s.cwd {
            let _ = writeln!(out, "       cwd:     {}", cwd.display());
        }
    }
    Ok(out)
}

fn flags(s: &ServiceSpec) -> String {
    let mut f = Vec::new();
    if s.critical {
        f.push("critical");
    }
    if s.main {
        f.push("main");
    }
    if f.is_empty() {
        String::new()
    } else {
        format!(" [{}]", f.join(", "))
    }
}

fn restart(s: &ServiceSpec) -> String {
    let b = &s.backoff;
    let policy = match s.restart {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => return "never".to_string(),
    };
    let limit = if b.max_restarts == 0 {
        "no limit".to_string()
    } else {
        format!("give up after {} restarts", b.max_restarts)
    };
    format!(
        "{policy}, backoff {}..{} (reset after {} up), {limit}",
        humantime::format_duration(b.initial),
        humantime::format_duration(b.max),
        humantime::format_duration(b.reset_after),
    )
}

/// Every secret value the plan could otherwise show.
fn secrets(settings: &Settings) -> Vec<String> {
    let mut s = vec![DUMMY_TOKEN.to_string()];
    s.extend(settings.http.token.iter().cloned());
    s.extend(settings.http.view_token.iter().cloned());
    if let Some(neko) = &settings.neko {
        s.extend(neko.ice_servers.iter().filter_map(|i| i.credential.clone()));
    }
    for svc in &settings.services {
        for key in &svc.secret_env {
            s.extend(svc.env.get(key).cloned());
        }
    }
    s.retain(|v| !v.is_empty());
    s
}

fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Words joined with spaces, quoted where a shell would need it.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@' | '+' | '%')
                });
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_redaction() {
        let words = vec![
            "a".to_string(),
            "b c".to_string(),
            "it's".to_string(),
            String::new(),
        ];
        assert_eq!(shell_words(&words), r"a 'b c' 'it'\''s' ''");
        let secrets = vec!["s3cret".to_string()];
        assert_eq!(redact("--token=s3cret", &secrets), "--token=<redacted>");
    }
}
