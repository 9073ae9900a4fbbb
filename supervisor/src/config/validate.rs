//! Checks across the whole merged configuration: `after` targets, dependency cycles, programs
//! that must exist and be executable, users and working directories, TCP port clashes.
//! Reads the file system (PATH, /etc/passwd) but starts nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags, User};

use super::source::{Errors, Loc};
use crate::service::ServiceSpec;

/// A service in the dependency graph with the locations its checks report at.
pub(crate) struct Node<'s> {
    pub spec: &'s ServiceSpec,
    /// The key path used in messages, e.g. `service[web]` or `display`.
    pub path: String,
    /// Where the service is named.
    pub name_loc: Loc,
    /// Where each `after` entry is written (same order as `spec.after`).
    pub after_locs: Vec<Loc>,
    /// Where the program is named, and the key that names it (`command` or `binary`).
    pub program_loc: Loc,
    pub program_key: &'static str,
    pub user_loc: Option<Loc>,
    pub cwd_loc: Option<Loc>,
}

/// Runs every cross-check, recording each problem.
pub(crate) fn check(nodes: &[Node<'_>], errs: &mut Errors) {
    let names: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.spec.name.as_str(), i))
        .collect();
    for node in nodes {
        for (i, dep) in node.spec.after.iter().enumerate() {
            let loc = node.after_locs.get(i).unwrap_or(&node.name_loc);
            if dep == &node.spec.name {
                errs.key(
                    loc,
                    &format!("{}.after", node.path),
                    "a service cannot wait for itself",
                );
            } else if !names.contains_key(dep.as_str()) {
                let known: Vec<&str> = names.keys().copied().collect();
                errs.key(
                    loc,
                    &format!("{}.after", node.path),
                    format!("unknown service `{dep}` (known: {})", known.join(", ")),
                );
            }
        }
        program(node, errs);
        if let (Some(user), Some(loc)) = (&node.spec.user, &node.user_loc) {
            match User::from_name(user) {
                Ok(Some(_)) => {}
                Ok(None) => errs.key(
                    loc,
                    &format!("{}.user", node.path),
                    format!("no such user `{user}`"),
                ),
                Err(e) => errs.key(
                    loc,
                    &format!("{}.user", node.path),
                    format!("cannot look up user `{user}`: {e}"),
                ),
            }
        }
        if let (Some(cwd), Some(loc)) = (&node.spec.cwd, &node.cwd_loc) {
            if !cwd.is_absolute() {
                errs.key(
                    loc,
                    &format!("{}.cwd", node.path),
                    "must be an absolute path",
                );
            } else if !cwd.is_dir() {
                errs.key(
                    loc,
                    &format!("{}.cwd", node.path),
                    format!("{} is not a directory", cwd.display()),
                );
            }
        }
    }
    cycles(nodes, &names, errs);
}

/// Reports each dependency cycle once, at the `after` entry that closes it.
fn cycles(nodes: &[Node<'_>], names: &BTreeMap<&str, usize>, errs: &mut Errors) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    // Iterative DFS: (node, index of the next `after` entry to follow).
    for start in 0..nodes.len() {
        if marks[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(top) = stack.last_mut() {
            let (node, edge) = *top;
            top.1 += 1;
            let after = &nodes[node].spec.after;
            if edge >= after.len() {
                marks[node] = Mark::Done;
                stack.pop();
                continue;
            }
            let Some(&dep) = names.get(after[edge].as_str()) else {
                continue; // unknown target, reported elsewhere
            };
            match marks[dep] {
                Mark::New => {
                    marks[dep] = Mark::OnPath;
                    stack.push((dep, 0));
                }
                Mark::OnPath => {
                    let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                    let mut path: Vec<&str> = stack[from..]
                        .iter()
                        .map(|&(n, _)| nodes[n].spec.name.as_str())
                        .collect();
                    path.push(nodes[dep].spec.name.as_str());
                    let n = &nodes[node];
                    let loc = n.after_locs.get(edge).unwrap_or(&n.name_loc);
                    errs.key(
                        loc,
                        &format!("{}.after", n.path),
                        format!("dependency cycle: {}", path.join(" -> ")),
                    );
                }
                Mark::Done => {}
            }
        }
    }
}

/// `command[0]` (or a built-in's `binary`) must name an executable file.
fn program(node: &Node<'_>, errs: &mut Errors) {
    let Some(prog) = node.spec.command.first() else {
        return; // missing command, reported elsewhere
    };
    let path_var = node
        .spec
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    if let Err(message) = find_program(prog, path_var.as_deref(), node.spec.cwd.as_deref()) {
        errs.key(
            &node.program_loc,
            &format!("{}.{}", node.path, node.program_key),
            message,
        );
    }
}

/// Where `prog` would be executed from, as `execvp` would find it.
pub fn find_program(
    prog: &str,
    path_var: Option<&std::ffi::OsStr>,
    cwd: Option<&Path>,
) -> Result<PathBuf, String> {
    if prog.contains('/') {
        let candidate = match cwd {
            Some(dir) if !prog.starts_with('/') => dir.join(prog),
            _ => PathBuf::from(prog),
        };
        return executable(&candidate).map(|()| candidate);
    }
    let default_path = std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let path_var = path_var.unwrap_or(default_path);
    let mut not_executable = None;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(std::ffi::OsStr::from_bytes(dir))
        };
        let candidate = dir.join(prog);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if candidate.exists() && not_executable.is_none() => not_executable = Some(e),
            Err(_) => {}
        }
    }
    Err(not_executable.unwrap_or_else(|| {
        format!(
            "program `{prog}` not found on PATH ({})",
            path_var.to_string_lossy()
        )
    }))
}

fn executable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("program {} does not exist", path.display()))
        }
        Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
        Ok(m) if !m.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(_) => access(path, AccessFlags::X_OK)
            .map_err(|e| format!("{} is not executable ({e})", path.display())),
    }
}

/// Two TCP listeners on the same port with overlapping addresses.
pub(crate) fn port_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_by_path() {
        let path = std::ffi::OsStr::new("/nonexistent:/bin:/usr/bin");
        assert!(find_program("sh", Some(path), None).is_ok());
        assert!(find_program("/bin/sh", None, None).is_ok());
        let missing = find_program("deskd-no-such-program", Some(path), None);
        assert!(
            matches!(&missing, Err(m) if m.contains("not found on PATH")),
            "{missing:?}"
        );
        assert!(find_program("/etc/hostname-nope", None, None).is_err());
        assert!(find_program("/etc", None, None).is_err());
    }

    #[test]
    fn port_clashes() {
        let p = |s: &str| {
            s.parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert!(port_clash(p("0.0.0.0:8080"), p("127.0.0.1:8080")));
        assert!(port_clash(p("127.0.0.1:8080"), p("127.0.0.1:8080")));
        assert!(!port_clash(p("127.0.0.2:8080"), p("127.0.0.1:8080")));
        assert!(!port_clash(p("0.0.0.0:8080"), p("0.0.0.0:8081")));
    }
}
