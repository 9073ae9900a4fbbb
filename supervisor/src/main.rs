//! The `deskd` binary: parse arguments, set up logging, dispatch. No service logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deskd::logging::{LogFormat, LogTarget};

/// PID 1 for a browser-streamed Linux desktop: reaps zombies, supervises services in
/// dependency order, and serves the viewer, signaling relay and agent API on one port.
#[derive(Parser, Debug)]
#[command(name = "deskd", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,

    /// Where logs go; `auto` means journald when started by systemd (JOURNAL_STREAM set).
    #[arg(long = "log", value_enum, default_value_t = LogTarget::Auto, global = true)]
    log_target: LogTarget,

    #[command(subcommand)]
    command: Option<Command>,

    /// Single-command mode (as tini): `deskd -- CMD [ARGS...]`.
    #[arg(last = true, value_name = "CMD")]
    single: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the services of the given config files (default: the built-in desktop).
    Run {
        /// Config file; repeat to extend. `/etc/deskd/conf.d/*.toml` is read after them.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        configs: Vec<PathBuf>,
        /// Drop-in directory read after the config files.
        #[arg(long, value_name = "DIR", default_value = deskd::config::DEFAULT_CONF_D)]
        conf_d: PathBuf,
        /// HTTP listen address, overriding `[http] listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Main program, started after every service is ready; its exit ends deskd.
        #[arg(last = true, value_name = "CMD")]
        main: Vec<String>,
    },
    /// Validate config files and print the start plan (exit 0), or the errors (exit 2).
    Check {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        configs: Vec<PathBuf>,
        #[arg(long, value_name = "DIR", default_value = deskd::config::DEFAULT_CONF_D)]
        conf_d: PathBuf,
        /// Main program, as for `run`.
        #[arg(last = true, value_name = "CMD")]
        main: Vec<String>,
    },
    /// Drive the desktop from a shell inside the container (screenshot, input, clipboard).
    Ctl(deskd::ctl::CtlArgs),
}

fn main() -> ExitCode {
    // `deskd -- CMD`: straight to single mode, lean (see `single::command_from_args`).
    if let Some(cmd) = deskd::single::command_from_args() {
        return ExitCode::from(deskd::single::run(&cmd));
    }
    let cli = Cli::parse();
    let code = match cli.command {
        None if cli.single.is_empty() => {
            eprintln!("deskd: nothing to run; use `deskd run`, `deskd check` or `deskd -- CMD [ARGS...]` (see --help)");
            2
        }
        None => {
            let _guard = deskd::logging::init(cli.log_format, cli.log_target);
            deskd::single::run(&cli.single)
        }
        Some(Command::Run {
            configs,
            conf_d,
            listen,
            main,
        }) => {
            let _guard = deskd::logging::init(cli.log_format, cli.log_target);
            deskd::app::run(deskd::app::RunOptions {
                configs,
                conf_d,
                listen,
                main,
            })
        }
        Some(Command::Check {
            configs,
            conf_d,
            main,
        }) => deskd::check::run(&configs, &conf_d, &main),
        Some(Command::Ctl(args)) => deskd::ctl::run(args),
    };
    ExitCode::from(code)
}
