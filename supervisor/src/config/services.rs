//! One `[[service]]` table to a [`ServiceSpec`], with the locations later cross-checks need
//! (duplicate names, `after` targets, cycles, programs on PATH).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::reader::{Table, Val};
use super::source::{Errors, Loc};
use super::values;
use crate::service::{Backoff, Readiness, RestartPolicy, ServiceSpec};

/// A service as read from one file, before files are merged.
#[derive(Debug, Clone)]
pub(crate) struct ParsedService {
    pub spec: ServiceSpec,
    /// Where the name is written (or the table header when the name is missing).
    pub name_loc: Loc,
    /// Where `command` is written.
    pub command_loc: Loc,
    /// Where each `after` entry is written, in the order of `spec.after`.
    pub after_locs: Vec<Loc>,
    /// Where `user` / `cwd` are written, when set.
    pub user_loc: Option<Loc>,
    pub cwd_loc: Option<Loc>,
    /// `replace = true`: replaces an earlier service of the same name.
    pub replace: bool,
    /// `disabled = true`: removes this and any earlier service of the same name.
    pub disabled: bool,
}

/// Reads one `[[service]]` table; `None` when it is too broken to use (errors recorded).
pub(crate) fn parse(t: &mut Table<'_>, errs: &mut Errors) -> Option<ParsedService> {
    let name = t.parse("name", errs, values::service_name);
    if let Some(name) = &name {
        t.set_path(format!("service[{}]", name.v));
    }
    let name_loc = name
        .as_ref()
        .map_or_else(|| t.at().clone(), |n| n.loc.clone());
    if name.is_none() && !t.has("name") {
        errs.key(
            t.at(),
            &t.key_path("name"),
            "missing: every service needs a name",
        );
    }

    let disabled = t.get::<bool>("disabled", errs).is_some_and(|v| v.v);
    let replace = t.get::<bool>("replace", errs).is_some_and(|v| v.v);

    let command = t.parse("command", errs, |c: Vec<String>| match c.first() {
        None => Err("empty command; expected [\"program\", \"arg\", ...]".to_string()),
        Some(p) if p.trim().is_empty() => Err("the program (command[0]) is empty".to_string()),
        Some(_) if c.iter().any(|a| a.contains('\0')) => {
            Err("arguments cannot contain NUL bytes".to_string())
        }
        Some(_) => Ok(c),
    });
    if command.is_none() && !t.has("command") && !disabled {
        errs.key(
            &name_loc,
            &t.key_path("command"),
            "missing: every service needs a command, e.g. [\"program\", \"arg\"]",
        );
    }
    let command_loc = command
        .as_ref()
        .map_or_else(|| name_loc.clone(), |c| c.loc.clone());

    let mut spec = ServiceSpec::new(
        name.as_ref().map(|n| n.v.clone()).unwrap_or_default(),
        command.map(|c| c.v).unwrap_or_default(),
    );

    if let Some(mut ready) = t.table("ready", errs) {
        if let Some(r) = readiness(&mut ready, errs) {
            spec.ready = r;
        }
        ready.finish(errs);
    }
    if let Some(d) = t.parse("ready_timeout", errs, values::duration) {
        spec.ready_timeout = d.v;
    }

    let mut after_locs = Vec::new();
    if let Some(after) = t.list("after", errs) {
        for item in after {
            if spec.after.contains(&item.v) {
                errs.key(
                    &item.loc,
                    &t.key_path("after"),
                    format!("`{}` is listed twice", item.v),
                );
                continue;
            }
            spec.after.push(item.v);
            after_locs.push(item.loc);
        }
    }

    if let Some(r) = t.parse("restart", errs, |s: String| match s.as_str() {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "never" => Ok(RestartPolicy::Never),
        other => Err(format!(
            "unknown restart policy {other:?}; expected \"always\", \"on-failure\" or \"never\""
        )),
    }) {
        spec.restart = r.v;
    }
    if let Some(mut b) = t.table("backoff", errs) {
        spec.backoff = backoff(&mut b, errs);
        b.finish(errs);
    }
    if let Some(s) = t.parse("stop_signal", errs, values::signal) {
        spec.stop_signal = s.v;
    }
    if let Some(d) = t.parse("stop_timeout", errs, values::duration) {
        spec.stop_timeout = d.v;
    }
    if let Some(env) = t.parse("env", errs, env_table) {
        spec.env = env.v;
    }
    if let Some(secret) = t.get::<Vec<String>>("secret_env", errs) {
        for key in &secret.v {
            if !spec.env.contains_key(key) {
                errs.key(
                    &secret.loc,
                    &t.key_path("secret_env"),
                    format!("`{key}` is not set in env"),
                );
            }
        }
        spec.secret_env = secret.v;
    }
    if let Some(inherit) = t.get::<Vec<String>>("inherit_secrets", errs) {
        for key in &inherit.v {
            if !crate::service::DESKD_SECRET_ENV.contains(&key.as_str()) {
                errs.key(
                    &inherit.loc,
                    &t.key_path("inherit_secrets"),
                    format!(
                        "`{key}` is not one of deskd's secrets ({})",
                        crate::service::DESKD_SECRET_ENV.join(", ")
                    ),
                );
            }
        }
        spec.inherit_secrets = inherit.v;
    }
    let user = t.parse("user", errs, |u: String| {
        if u.trim().is_empty() {
            Err("empty user name".to_string())
        } else {
            Ok(u)
        }
    });
    let user_loc = user.as_ref().map(|u| u.loc.clone());
    spec.user = user.map(|u| u.v);
    let cwd: Option<Val<PathBuf>> = t.parse("cwd", errs, |c: String| {
        if c.is_empty() {
            Err("empty directory".to_string())
        } else {
            Ok(PathBuf::from(c))
        }
    });
    let cwd_loc = cwd.as_ref().map(|c| c.loc.clone());
    spec.cwd = cwd.map(|c| c.v);
    if let Some(c) = t.get::<bool>("critical", errs) {
        spec.critical = c.v;
    }
    if let Some(m) = t.get::<bool>("main", errs) {
        spec.main = m.v;
    }

    name.as_ref()?;
    Some(ParsedService {
        spec,
        name_loc,
        command_loc,
        after_locs,
        user_loc,
        cwd_loc,
        replace,
        disabled,
    })
}

/// `ready = { x11 = ":99" }` and its siblings: exactly one key.
fn readiness(t: &mut Table<'_>, errs: &mut Errors) -> Option<Readiness> {
    let mut found = Vec::new();
    if let Some(d) = t.parse("x11", errs, values::x_display) {
        found.push(Readiness::X11 { display: d.v });
    }
    if let Some(d) = t.parse("wm", errs, values::x_display) {
        found.push(Readiness::WindowManager { display: d.v });
    }
    if let Some(a) = t.parse("tcp", errs, values::host_port) {
        found.push(Readiness::Tcp { addr: a.v });
    }
    if let Some(p) = t.parse("unix", errs, values::unix_socket) {
        found.push(Readiness::Unix { path: p.v });
    }
    if let Some(u) = t.parse("http", errs, values::http_url) {
        found.push(Readiness::Http { url: u.v });
    }
    if let Some(p) = t.parse("log", errs, |p: String| {
        regex::Regex::new(&p).map_err(|e| format!("invalid regex {p:?}: {}", regex_error(&e)))
    }) {
        found.push(Readiness::Log { pattern: p.v });
    }
    if let Some(e) = t.parse("exit", errs, |e: bool| {
        if e {
            Ok(Readiness::Exit)
        } else {
            Err("only `exit = true` (a one-shot, done when it exits with status 0)".to_string())
        }
    }) {
        found.push(e.v);
    }
    let set = t
        .keys()
        .filter(|k| ["x11", "wm", "tcp", "unix", "http", "log", "exit"].contains(k))
        .count();
    if set == 0 {
        errs.key(
            t.at(),
            t.path(),
            "expected one probe: { x11 = \":99\" }, { wm = \":99\" }, { tcp = \"HOST:PORT\" }, { unix = \"/PATH\" }, { http = \"http://...\" }, { log = \"regex\" } or { exit = true }",
        );
    } else if set > 1 {
        errs.key(
            t.at(),
            t.path(),
            "give exactly one probe (x11, wm, tcp, unix, http, log or exit)",
        );
        return None;
    }
    found.pop()
}

/// `backoff = { initial, max, reset_after, max_restarts }`.
fn backoff(t: &mut Table<'_>, errs: &mut Errors) -> Backoff {
    let mut b = Backoff::default();
    let initial = t.parse("initial", errs, values::duration);
    let max = t.parse("max", errs, values::duration);
    if let Some(i) = &initial {
        if i.v.is_zero() {
            errs.key(&i.loc, &t.key_path("initial"), "must be more than 0");
        }
        b.initial = i.v;
    }
    if let Some(m) = &max {
        b.max = m.v;
    }
    if b.initial > b.max {
        let loc = max
            .as_ref()
            .or(initial.as_ref())
            .map_or_else(|| t.at().clone(), |v| v.loc.clone());
        errs.key(
            &loc,
            &t.key_path("max"),
            format!(
                "max ({}) is less than initial ({})",
                humantime::format_duration(b.max),
                humantime::format_duration(b.initial)
            ),
        );
    }
    if let Some(r) = t.parse("reset_after", errs, values::duration) {
        b.reset_after = r.v;
    }
    if let Some(m) = t.get::<u32>("max_restarts", errs) {
        b.max_restarts = m.v;
    }
    b
}

/// `env = { NAME = "value" }`: names a shell could export, values without NUL.
fn env_table(env: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    for (k, v) in &env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(format!("bad variable name {k:?}"));
        }
        if v.contains('\0') {
            return Err(format!("the value of {k} contains a NUL byte"));
        }
    }
    Ok(env)
}

/// The regex crate's error on one line: its last line says what is wrong.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}
