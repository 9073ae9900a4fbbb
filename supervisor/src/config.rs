//! Configuration: TOML files (later ones and `conf.d/*.toml` extend earlier ones) turned into
//! validated [`Settings`]. Collects every error with file, line and key. Knows nothing of
//! processes, tokio or HTTP; reads files, and looks at PATH and the user database to say
//! early that a program or user is missing.
//!
//! The pieces: [`source`](self) (texts and lines), `reader` (one table, key by key), `values`
//! (durations, signals, sizes...), `sections` (`[display]`, `[http]`, `[neko]`, `[api]`,
//! `[stream]`),
//! `services` (`[[service]]`), `validate` (checks across everything). The reference for users
//! is `docs/config.md`.

mod reader;
mod sections;
mod services;
mod source;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::service::{RestartPolicy, ServiceSpec};
use reader::{Entry, Table};
use services::ParsedService;
use source::{Errors, Loc, Source};

pub use validate::find_program;

/// Drop-in directory read after the `-c` files.
pub const DEFAULT_CONF_D: &str = "/etc/deskd/conf.d";

/// Read when no `-c` is given, if it exists; otherwise the built-in default is used.
pub const DEFAULT_CONFIG: &str = "/etc/deskd/deskd.toml";

/// The built-in default configuration (`[display]`, `[neko]`, `[http]`).
pub const BUILTIN_DEFAULT: &str = include_str!("default.toml");

/// How the built-in default is named in messages and in [`Settings::sources`].
pub const BUILTIN_NAME: &str = "<built-in default>";

/// Name of the service made from the command after `--`.
pub const MAIN_SERVICE: &str = "main";

/// Everything `deskd run` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The X display deskd runs as the service `display`, if configured.
    pub display: Option<DisplaySettings>,
    pub http: HttpSettings,
    /// neko as the service `neko`, if configured (needs `display`).
    pub neko: Option<NekoSettings>,
    pub api: ApiSettings,
    /// `[stream]`: the native stream; `enabled` is false without a `[display]`.
    pub stream: StreamSettings,
    /// User services from `[[service]]` tables plus the main command, in file order.
    /// The built-in `display` and `neko` services are *not* in here; see [`Settings::all_services`].
    pub services: Vec<ServiceSpec>,
    /// Files that were read, in order (for `deskd check` and logs).
    pub sources: Vec<PathBuf>,
}

/// `[display]`: Xvfb run by deskd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplaySettings {
    /// X display number: `99` means `DISPLAY=:99`.
    pub number: u32,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    /// Extra Xvfb arguments.
    pub extra_args: Vec<String>,
    /// Xvfb program (default `Xvfb` on PATH).
    pub binary: String,
}

impl DisplaySettings {
    /// The `DISPLAY` value, e.g. `:99`.
    pub fn display_name(&self) -> String {
        format!(":{}", self.number)
    }
}

/// `[http]`: the one port deskd serves. `Debug` redacts the inline tokens.
#[derive(Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// `[http] token` (prefer `token_file` or env `DESKD_TOKEN`).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub view_token: Option<String>,
    pub view_token_file: Option<PathBuf>,
    /// Allowed `Origin`s for WebSocket upgrades; empty means same origin only.
    pub allowed_origins: Vec<String>,
    /// Most relay (viewer) connections at once.
    pub max_clients: usize,
    /// Largest WebSocket message relayed, in bytes.
    pub max_frame_bytes: usize,
    /// Frames buffered per direction per relay before back-pressure applies.
    pub relay_queue: usize,
}

/// What `Debug` shows instead of a secret.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("token_file", &self.token_file)
            .field("view_token", &self.view_token.as_ref().map(|_| REDACTED))
            .field("view_token_file", &self.view_token_file)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_clients", &self.max_clients)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("relay_queue", &self.relay_queue)
            .finish()
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            token: None,
            token_file: None,
            view_token: None,
            view_token_file: None,
            allowed_origins: Vec::new(),
            max_clients: 32,
            max_frame_bytes: 1 << 20,
            relay_queue: 64,
        }
    }
}

/// `[neko]`: the WebRTC streamer run as the service `neko`.
#[derive(Debug, Clone, PartialEq)]
pub struct NekoSettings {
    /// Program (default `neko` on PATH).
    pub binary: String,
    /// neko's internal HTTP address (loopback).
    pub bind: SocketAddr,
    /// Media transport: one UDP port (default 59000), a port range, and/or a TCP port.
    pub udp_port: Option<u16>,
    pub epr: Option<(u16, u16)>,
    pub tcpmux: Option<u16>,
    /// Addresses advertised in ICE candidates (never empty).
    pub nat1to1: Vec<String>,
    pub ice_servers: Vec<IceServer>,
    pub audio: bool,
    /// Frame rate of the screen mode (and of neko's own capture, `video = "neko"`).
    pub fps: u32,
    /// Video codec (h264 default).
    pub codec: String,
    /// Where neko's video comes from.
    pub video: NekoVideo,
    /// Extra `--key=value` flags passed to neko as they are.
    pub extra_args: Vec<String>,
}

/// `[neko] video`: where the WebRTC video comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NekoVideo {
    /// deskd's native stream encoder, through the neko feed ([`crate::neko_feed`]): frames
    /// only when the screen changed, one encoder for every viewer. The default when the
    /// native stream is on and the codec is H.264.
    Deskd,
    /// neko captures and encodes the screen itself (GStreamer, every frame at `fps`).
    Neko,
}

impl NekoVideo {
    pub fn as_str(self) -> &'static str {
        match self {
            NekoVideo::Deskd => "deskd",
            NekoVideo::Neko => "neko",
        }
    }
}

/// A STUN/TURN server given to browsers and to neko. `Debug` redacts the credential.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// `[api]`: the agent API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub enabled: bool,
    /// Delay between characters of a `type` action.
    pub type_delay: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            enabled: true,
            type_delay: Duration::from_millis(0),
        }
    }
}

/// `[stream]`: deskd's own stream of the display over `/stream/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// On by default when a `[display]` exists.
    pub enabled: bool,
    /// Frame-rate cap (frames are only encoded when the screen changed).
    pub max_fps: u32,
    /// Target bit rate while the screen changes continuously, kbit/s.
    pub bitrate_kbps: u32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            enabled: true,
            max_fps: 60,
            bitrate_kbps: 8000,
        }
    }
}

impl Settings {
    /// Every service deskd supervises: `display`, then `neko`, then the user's, then main.
    /// `neko_api_token` is the per-start secret deskd hands to neko; `neko_feed` is where
    /// deskd serves neko its frames (`[neko] video = "deskd"`, [`crate::neko_feed`]).
    pub fn all_services(
        &self,
        neko_api_token: &str,
        neko_feed: Option<SocketAddr>,
    ) -> Vec<ServiceSpec> {
        let mut all = Vec::new();
        if let Some(display) = &self.display {
            all.push(crate::display::service(display));
        }
        if let (Some(neko), Some(display)) = (&self.neko, &self.display) {
            let feed = neko_feed.map(|addr| crate::neko::VideoFeed {
                addr,
                fps: self.stream.max_fps,
            });
            let mut spec = crate::neko::service(neko, display, neko_api_token, feed);
            spec.after = crate::neko::after(neko, self.services.iter().map(|s| s.name.as_str()));
            all.push(spec);
        }
        all.extend(self.services.iter().cloned());
        all
    }
}

/// Reads and validates the configuration of `deskd run` / `deskd check`.
///
/// `paths` are the `-c` files in order (none: [`DEFAULT_CONFIG`] if it exists, else the
/// built-in default); then every `*.toml` in `conf_d` in lexical order (a missing directory is
/// fine). `main` is the command after `--`, added as the service `main`.
pub fn load(paths: &[PathBuf], conf_d: &Path, main: &[String]) -> Result<Settings, ConfigErrors> {
    let mut errs = Errors::default();
    let sources = read_sources(paths, conf_d, &mut errs);
    let settings = resolve(&sources, main, &mut errs);
    if errs.is_empty() {
        Ok(settings)
    } else {
        let files: Vec<&str> = sources.iter().map(|s| &*s.name).collect();
        Err(ConfigErrors {
            errors: errs.into_sorted(&files),
        })
    }
}

/// The texts to read, in order; unreadable ones are recorded as errors.
fn read_sources(paths: &[PathBuf], conf_d: &Path, errs: &mut Errors) -> Vec<Source> {
    let mut sources = Vec::new();
    if paths.is_empty() {
        let default = Path::new(DEFAULT_CONFIG);
        if default.exists() {
            sources.extend(read_file(default, errs));
        } else {
            sources.push(Source::new(BUILTIN_NAME, BUILTIN_DEFAULT.to_string()));
        }
    }
    for path in paths {
        sources.extend(read_file(path, errs));
    }
    match std::fs::read_dir(conf_d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errs.at(
            &Loc::named(&conf_d.display().to_string()),
            format!("cannot read the drop-in directory: {e}"),
        ),
        Ok(dir) => {
            let mut files: Vec<PathBuf> = dir
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            files.sort();
            for path in files {
                sources.extend(read_file(&path, errs));
            }
        }
    }
    sources
}

fn read_file(path: &Path, errs: &mut Errors) -> Option<Source> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            errs.at(&Loc::named(&name), format!("cannot read config file: {e}"));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(Source::new(name, text)),
        Err(e) => {
            errs.at(
                &Loc::named(&name),
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            );
            None
        }
    }
}

/// Pairs of keys that are alternatives to each other: setting one in a later file drops the
/// other from earlier files (e.g. a drop-in choosing `epr` over the image's `udp_port`).
const EXCLUSIVE_KEYS: [(&str, &str); 3] = [
    ("udp_port", "epr"),
    ("token", "token_file"),
    ("view_token", "view_token_file"),
];

/// The singleton sections, merged key by key across files (later files win).
#[derive(Default)]
struct MergedSection<'a> {
    /// Where the section first appears.
    at: Option<Loc>,
    entries: Vec<Entry<'a>>,
}

impl<'a> MergedSection<'a> {
    fn add(&mut self, src: &'a Source, span: std::ops::Range<usize>, table: &'a DeTable<'a>) {
        if self.at.is_none() {
            self.at = Some(src.loc(&span));
        }
        for (k, v) in table.iter() {
            let key: &str = k.get_ref().as_ref();
            // A later file's key replaces the earlier value, and also the earlier value of
            // a key that is its alternative (the same file setting both is an error later).
            let rival = EXCLUSIVE_KEYS.iter().find_map(|&(a, b)| match key {
                _ if key == a => Some(b),
                _ if key == b => Some(a),
                _ => None,
            });
            self.entries.retain(|e| {
                let earlier_rival = Some(e.key) == rival && !std::ptr::eq(e.src, src);
                e.key != key && !earlier_rival
            });
            self.entries.push(Entry {
                key,
                key_span: k.span(),
                value: v,
                src,
            });
        }
    }

    fn table(self, name: &str) -> Option<Table<'a>> {
        let at = self.at?;
        Some(Table::merged(name, at, self.entries))
    }
}

/// Turns the parsed texts into settings, recording every problem on the way.
fn resolve(sources: &[Source], main: &[String], errs: &mut Errors) -> Settings {
    let docs: Vec<(&Source, toml::Spanned<DeTable<'_>>)> = sources
        .iter()
        .filter_map(|src| match DeTable::parse(&src.text) {
            Ok(doc) => Some((src, doc)),
            Err(e) => {
                let loc = e.span().map_or_else(|| src.whole(), |s| src.loc(&s));
                errs.at(&loc, format!("TOML syntax: {}", e.message().trim()));
                None
            }
        })
        .collect();

    let mut display_sec = MergedSection::default();
    let mut http_sec = MergedSection::default();
    let mut neko_sec = MergedSection::default();
    let mut api_sec = MergedSection::default();
    let mut stream_sec = MergedSection::default();
    let mut parsed: Vec<ParsedService> = Vec::new();
    let mut service_count = 0usize;
    for (src, doc) in &docs {
        for (key, value) in doc.get_ref().iter() {
            let name: &str = key.get_ref().as_ref();
            let section = match name {
                "display" => Some(&mut display_sec),
                "http" => Some(&mut http_sec),
                "neko" => Some(&mut neko_sec),
                "api" => Some(&mut api_sec),
                "stream" => Some(&mut stream_sec),
                _ => None,
            };
            match (section, value.get_ref()) {
                (Some(sec), DeValue::Table(t)) => sec.add(src, value.span(), t),
                (Some(_), other) => errs.key(
                    &src.loc(&value.span()),
                    name,
                    format!("expected a table [{name}], found {}", other.type_str()),
                ),
                (None, DeValue::Array(items)) if name == "service" => {
                    for item in items.iter() {
                        service_count += 1;
                        let DeValue::Table(t) = item.get_ref() else {
                            errs.key(
                                &src.loc(&item.span()),
                                "service",
                                "expected a [[service]] table",
                            );
                            continue;
                        };
                        let mut table = Table::from_de(
                            format!("service[#{service_count}]"),
                            src,
                            item.span(),
                            t,
                        );
                        if let Some(s) = services::parse(&mut table, errs) {
                            parsed.push(s);
                        }
                        table.finish(errs);
                    }
                }
                (None, _) if name == "service" => errs.key(
                    &src.loc(&value.span()),
                    "service",
                    "expected [[service]] tables (note the double brackets)",
                ),
                (None, _) => errs.key(
                    &src.loc(&key.span()),
                    name,
                    "unknown section (expected one of: api, display, http, neko, service, stream)",
                ),
            }
        }
    }

    // Built-in services can be switched off with `[[service]] name = "..." disabled = true`.
    let disabled_builtin = |n: &str| parsed.iter().any(|s| s.disabled && s.spec.name == n);
    let display = display_sec.table("display").and_then(|mut t| {
        let d = sections::display(&mut t, errs);
        t.finish(errs);
        (!disabled_builtin("display")).then_some(d)
    });
    let http = {
        let mut t = http_sec
            .table("http")
            .unwrap_or_else(|| Table::merged("http", Loc::named(BUILTIN_NAME), Vec::new()));
        let h = sections::http(&mut t, errs);
        t.finish(errs);
        h
    };
    let neko_at = neko_sec.at.clone();
    let mut neko = neko_sec.table("neko").and_then(|mut t| {
        let n = sections::neko(&mut t, errs);
        t.finish(errs);
        (!disabled_builtin("neko")).then_some(n)
    });
    let api = match api_sec.table("api") {
        Some(mut t) => {
            let a = sections::api(&mut t, errs);
            t.finish(errs);
            a
        }
        None => ApiSettings::default(),
    };
    let mut stream = match stream_sec.table("stream") {
        Some(mut t) => {
            let st = sections::stream(&mut t, errs);
            t.finish(errs);
            st
        }
        None => StreamSettings::default(),
    };
    // Nothing to stream without a display (and no error: `[stream]` may come from a shared
    // base file).
    stream.enabled &= display.is_some();
    if let Some(n) = &mut neko {
        n.settings.video = sections::neko_video(n.video.as_ref(), &n.settings, &stream, errs);
    }
    if let (Some(_), None, Some(at)) = (&neko, &display, &neko_at) {
        errs.key(
            at,
            "neko",
            "[neko] needs [display]: neko streams that X display",
        );
    }

    let builtin_names: Vec<&str> = [
        display.as_ref().map(|_| "display"),
        neko.as_ref().map(|_| "neko"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut services = merge_services(parsed, &builtin_names, errs);
    if !main.is_empty() {
        add_main(&mut services, &builtin_names, main, errs);
    }
    if services.iter().filter(|s| s.spec.main).count() > 1 {
        for s in services.iter().filter(|s| s.spec.main) {
            errs.key(
                &s.name_loc,
                &format!("service[{}].main", s.spec.name),
                "only one service can be main",
            );
        }
    }
    if let Some(d) = &display {
        let name = d.settings.display_name();
        for s in &mut services {
            s.spec
                .env
                .entry("DISPLAY".to_string())
                .or_insert_with(|| name.clone());
        }
    }

    let built_in_display = display
        .as_ref()
        .map(|d| crate::display::service(&d.settings));
    let built_in_neko = match (&neko, &display) {
        (Some(n), Some(_)) => {
            let mut spec = ServiceSpec::new("neko", vec![n.settings.binary.clone()]);
            spec.after =
                crate::neko::after(&n.settings, services.iter().map(|s| s.spec.name.as_str()));
            Some(spec)
        }
        _ => None,
    };
    let mut nodes = Vec::new();
    if let (Some(spec), Some(d)) = (&built_in_display, &display) {
        nodes.push(validate::Node {
            spec,
            path: "display".to_string(),
            name_loc: d.binary_loc.clone(),
            after_locs: Vec::new(),
            program_loc: d.binary_loc.clone(),
            program_key: "binary",
            user_loc: None,
            cwd_loc: None,
        });
    }
    if let (Some(spec), Some(n)) = (&built_in_neko, &neko) {
        nodes.push(validate::Node {
            spec,
            path: "neko".to_string(),
            name_loc: n.binary_loc.clone(),
            after_locs: vec![n.binary_loc.clone()],
            program_loc: n.binary_loc.clone(),
            program_key: "binary",
            user_loc: None,
            cwd_loc: None,
        });
    }
    for s in &services {
        nodes.push(validate::Node {
            spec: &s.spec,
            path: format!("service[{}]", s.spec.name),
            name_loc: s.name_loc.clone(),
            after_locs: s.after_locs.clone(),
            program_loc: s.command_loc.clone(),
            program_key: "command",
            user_loc: s.user_loc.clone(),
            cwd_loc: s.cwd_loc.clone(),
        });
    }
    validate::check(&nodes, errs);
    ports(&http, neko.as_ref(), errs);

    Settings {
        display: display.map(|d| d.settings),
        http: http.settings,
        neko: neko.map(|n| n.settings),
        api,
        stream,
        services: services.into_iter().map(|s| s.spec).collect(),
        sources: sources.iter().map(|s| PathBuf::from(&*s.name)).collect(),
    }
}

/// Applies `[[service]]` tables in order: append, `replace = true`, `disabled = true`.
fn merge_services(
    parsed: Vec<ParsedService>,
    builtin_names: &[&str],
    errs: &mut Errors,
) -> Vec<ParsedService> {
    let mut out: Vec<ParsedService> = Vec::new();
    for s in parsed {
        let name = s.spec.name.clone();
        if s.disabled {
            out.retain(|e| e.spec.name != name);
            continue;
        }
        if builtin_names.contains(&name.as_str()) {
            errs.key(
                &s.name_loc,
                &format!("service[{name}].name"),
                format!(
                    "`{name}` is the built-in service of [{name}]; configure it there, or switch it off with `[[service]] name = \"{name}\" disabled = true` to define your own"
                ),
            );
            continue;
        }
        match out.iter().position(|e| e.spec.name == name) {
            Some(i) if s.replace => out[i] = s,
            Some(i) => errs.key(
                &s.name_loc,
                &format!("service[{name}].name"),
                format!(
                    "service `{name}` is already defined at {}; set `replace = true` to replace it",
                    out[i].name_loc
                ),
            ),
            None => out.push(s),
        }
    }
    out
}

/// The command after `--` as the service `main`, started after everything else.
fn add_main(
    services: &mut Vec<ParsedService>,
    builtin_names: &[&str],
    main: &[String],
    errs: &mut Errors,
) {
    let loc = Loc::named("command line (after --)");
    if let Some(s) = services.iter().find(|s| s.spec.name == MAIN_SERVICE) {
        errs.key(
            &s.name_loc,
            "service[main].name",
            "the name `main` is taken by the command after `--`; rename this service",
        );
        return;
    }
    if let Some(s) = services.iter().find(|s| s.spec.main) {
        errs.key(
            &s.name_loc,
            &format!("service[{}].main", s.spec.name),
            "a command after `--` is given too; only one main program can run",
        );
    }
    if main[0].is_empty() {
        errs.at(&loc, "the program after `--` is empty");
        return;
    }
    let mut spec = ServiceSpec::new(MAIN_SERVICE, main.to_vec());
    spec.main = true;
    spec.restart = RestartPolicy::Never;
    spec.after = builtin_names
        .iter()
        .map(|n| n.to_string())
        .chain(services.iter().map(|s| s.spec.name.clone()))
        .collect();
    services.push(ParsedService {
        after_locs: vec![loc.clone(); spec.after.len()],
        spec,
        name_loc: loc.clone(),
        command_loc: loc,
        user_loc: None,
        cwd_loc: None,
        replace: false,
        disabled: false,
    });
}

/// deskd's port, neko's internal port and neko's TCP media port must not collide.
fn ports(http: &sections::ParsedHttp, neko: Option<&sections::ParsedNeko>, errs: &mut Errors) {
    let Some(neko) = neko else { return };
    let listen = http.settings.listen;
    if validate::port_clash(listen, neko.settings.bind) {
        errs.key(
            &neko.bind_loc,
            "neko.bind",
            format!(
                "port {} is also deskd's [http] listen port{}",
                listen.port(),
                http.listen_loc
                    .as_ref()
                    .map(|l| format!(" (set at {l})"))
                    .unwrap_or_default()
            ),
        );
    }
    if let (Some(port), Some(loc)) = (neko.settings.tcpmux, &neko.tcpmux_loc) {
        let tcp: BTreeMap<&str, SocketAddr> = [
            ("[http] listen", listen),
            ("[neko] bind", neko.settings.bind),
        ]
        .into_iter()
        .collect();
        for (what, addr) in tcp {
            if addr.port() == port {
                errs.key(loc, "neko.tcpmux", format!("port {port} is also {what}"));
            }
        }
    }
}

/// Every problem found in the configuration, each naming file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// One configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// `file:line: key` or `file` when no line is known.
    pub location: String,
    pub message: String,
}

#[cfg(test)]
mod tests;
