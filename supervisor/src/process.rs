//! Starting and stopping one service process: its own process group, environment, working
//! directory, user, piped output; stop signal to the whole group, SIGKILL after the stop
//! timeout, and cleaning up whatever is left in the group once the leader is gone. Knows
//! nothing of dependencies or restart policy; exits come from the [`crate::reaper`].

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, User};
use tokio::sync::oneshot;

use crate::reaper::{ExitStatus, Reaper, Spawned};
use crate::service::{ServiceSpec, DESKD_SECRET_ENV};

/// How often a group is checked for leftover members while it is being cleaned up.
const GROUP_POLL: Duration = Duration::from_millis(10);

/// Why a service could not be started. Each message names the service and the program.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("service {service}: empty command")]
    EmptyCommand { service: String },
    #[error("service {service}: program {program:?} not found")]
    NotFound { service: String, program: String },
    #[error("service {service}: program {program:?} cannot be executed: {source}")]
    NotExecutable {
        service: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("service {service}: working directory {cwd:?} does not exist or is not a directory")]
    Cwd { service: String, cwd: String },
    #[error("service {service}: user {user:?} does not exist")]
    NoSuchUser { service: String, user: String },
    #[error("service {service}: cannot look up user {user:?}: {source}")]
    UserLookup {
        service: String,
        user: String,
        #[source]
        source: Errno,
    },
    #[error("service {service}: cannot start {program:?}: {source}")]
    Io {
        service: String,
        program: String,
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The exit code a shell would report for this failure: 127 not found, 126 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound { .. } => 127,
            _ => 126,
        }
    }
}

/// Credentials resolved in the parent, so the child only makes plain syscalls before exec.
struct Credentials {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

fn resolve_user(spec: &ServiceSpec, name: &str) -> Result<(User, Credentials), SpawnError> {
    let user = match User::from_name(name) {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(SpawnError::NoSuchUser {
                service: spec.name.clone(),
                user: name.to_string(),
            })
        }
        Err(source) => {
            return Err(SpawnError::UserLookup {
                service: spec.name.clone(),
                user: name.to_string(),
                source,
            })
        }
    };
    let cname = CString::new(name).map_err(|_| SpawnError::NoSuchUser {
        service: spec.name.clone(),
        user: name.to_string(),
    })?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|source| SpawnError::UserLookup {
            service: spec.name.clone(),
            user: name.to_string(),
            source,
        })?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let creds = Credentials {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    };
    Ok((user, creds))
}

/// The `Command` for `spec`: own process group, scrubbed and extended environment (deskd's
/// tokens removed unless `spec.inherit_secrets` lists them), the open-files limit deskd
/// started with, cwd,
/// user, stdin from /dev/null, stdout and stderr piped.
pub fn command(spec: &ServiceSpec) -> Result<Command, SpawnError> {
    let Some(program) = spec.command.first() else {
        return Err(SpawnError::EmptyCommand {
            service: spec.name.clone(),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(&spec.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);

    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        let scrubbed = spec
            .scrub_env_prefixes
            .iter()
            .any(|p| key_str.starts_with(p.as_str()));
        // deskd's own secrets stay with deskd unless this service asks for them.
        let secret = DESKD_SECRET_ENV.contains(&key_str.as_ref())
            && !spec.inherit_secrets.iter().any(|k| *k == key_str);
        if scrubbed || secret {
            cmd.env_remove(&key);
        }
    }

    if let Some(cwd) = &spec.cwd {
        if !cwd.is_dir() {
            return Err(SpawnError::Cwd {
                service: spec.name.clone(),
                cwd: cwd.display().to_string(),
            });
        }
        cmd.current_dir(cwd);
    }

    let creds = match &spec.user {
        Some(name) => {
            let (user, creds) = resolve_user(spec, name)?;
            // What login would set, unless the service sets them itself.
            for (key, value) in [
                ("HOME", user.dir.to_string_lossy().into_owned()),
                ("USER", user.name.clone()),
                ("LOGNAME", user.name.clone()),
            ] {
                if !spec.env.contains_key(key) {
                    cmd.env(key, value);
                }
            }
            Some(creds)
        }
        None => None,
    };
    cmd.envs(&spec.env);

    // The open-files limit the service would have had without deskd raising its own.
    let nofile = crate::fdlimit::for_services();

    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // syscalls on data prepared above (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            if let Some((soft, hard)) = nofile {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // std keeps the parent's signal mask; a service must start with none blocked.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if let Some(c) = &creds {
                if libc::setgroups(c.groups.len() as _, c.groups.as_ptr()) != 0
                    || libc::setgid(c.gid) != 0
                    || libc::setuid(c.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Starts `spec` through the reaper. The process leads its own group (pgid = pid).
pub fn spawn(reaper: &Reaper, spec: &ServiceSpec) -> Result<Spawned, SpawnError> {
    let mut cmd = command(spec)?;
    let program = spec.command.first().cloned().unwrap_or_default();
    reaper.spawn(&mut cmd).map_err(|source| {
        let service = spec.name.clone();
        match (source.kind(), source.raw_os_error()) {
            (io::ErrorKind::NotFound, _) => SpawnError::NotFound { service, program },
            (io::ErrorKind::PermissionDenied, _) | (_, Some(libc::ENOEXEC)) => {
                SpawnError::NotExecutable {
                    service,
                    program,
                    source,
                }
            }
            _ => SpawnError::Io {
                service,
                program,
                source,
            },
        }
    })
}

/// Sends `signal` to every process of the group `pgid`. A group that is already gone is not
/// an error.
pub fn signal_group(pgid: Pid, signal: Signal) -> nix::Result<()> {
    match killpg(pgid, signal) {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Whether any process (zombies included, until reaped) is left in the group.
pub fn group_alive(pgid: Pid) -> bool {
    // EPERM means a member exists that we may not signal: still alive.
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Stops a running process group: `signal` to the whole group, then SIGKILL to the group if
/// the leader has not exited after `timeout`. Returns the leader's exit status (`None` if
/// the reaper went away, which only happens when deskd is ending).
pub async fn stop(
    pgid: Pid,
    exit: &mut oneshot::Receiver<ExitStatus>,
    signal: Signal,
    timeout: Duration,
) -> Option<ExitStatus> {
    if let Err(err) = signal_group(pgid, signal) {
        tracing::warn!(
            pgid = pgid.as_raw(),
            "cannot send {} to the process group: {err}",
            signal.as_str()
        );
    }
    match tokio::time::timeout(timeout, &mut *exit).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::warn!(
                pgid = pgid.as_raw(),
                "still running {} after {}; sending SIGKILL to the process group",
                humantime::format_duration(timeout),
                signal.as_str()
            );
            if let Err(err) = signal_group(pgid, Signal::SIGKILL) {
                tracing::warn!(
                    pgid = pgid.as_raw(),
                    "cannot send SIGKILL to the process group: {err}"
                );
            }
            exit.await.ok()
        }
    }
}

/// After the group leader has exited: SIGTERM to whatever is left in its group, SIGKILL
/// after `grace`, and wait (bounded) until the group is empty. Returns how many escalation
/// steps were needed (0: the group was already empty).
pub async fn clean_group(pgid: Pid, grace: Duration) -> u8 {
    if !group_alive(pgid) {
        return 0;
    }
    let _ = signal_group(pgid, Signal::SIGTERM);
    if wait_group_empty(pgid, grace).await {
        return 1;
    }
    tracing::warn!(
        pgid = pgid.as_raw(),
        "processes left in the group after SIGTERM and {}; sending SIGKILL",
        humantime::format_duration(grace)
    );
    let _ = signal_group(pgid, Signal::SIGKILL);
    // SIGKILL cannot be ignored; a process stuck in the kernel is not waited for forever.
    if !wait_group_empty(pgid, Duration::from_secs(5)).await {
        tracing::warn!(
            pgid = pgid.as_raw(),
            "process group still not empty after SIGKILL"
        );
    }
    2
}

async fn wait_group_empty(pgid: Pid, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}
