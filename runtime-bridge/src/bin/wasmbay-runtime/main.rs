//! `wasmbay-runtime`: a runc-compatible OCI runtime that runs wasm containers through wasmbay
//! engines and native containers as runc would. Callers that drive runc (containerd's runc
//! shim through `BinaryName`, CRI-O, podman) can use it unchanged.

mod commands;
mod logging;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use liboci_cli::{Create, Delete, Exec, Features, Kill, Ps, Run, Start, State};

/// Where container state lives unless `--root` says otherwise.
const DEFAULT_ROOT: &str = "/run/wasmbay-runtime";

#[derive(Parser)]
#[command(
    name = "wasmbay-runtime",
    version,
    about = "runc-compatible OCI runtime for wasm containers"
)]
struct Cli {
    /// Log file (runc's `--log`); errors also go to stderr.
    #[arg(short, long, global = true)]
    log: Option<PathBuf>,
    /// `text` or `json` (containerd's runc shim asks for json and reads the last error).
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// Directory for container state.
    #[arg(short, long, global = true)]
    root: Option<PathBuf>,
    /// Manage cgroups through systemd (cgroup v2 hosts).
    #[arg(short, long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility: log at debug level.
    #[arg(long, global = true)]
    debug: bool,
    /// Engine for wasm containers without a `wasmbay.engine` annotation.
    #[arg(long, global = true, default_value = wasmbay_engines::DEFAULT_ENGINE)]
    engine: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Create(Create),
    Start(Start),
    State(State),
    Kill(Kill),
    Delete(Delete),
    Run(Run),
    Exec(Exec),
    Features(Features),
    Ps(Ps),
}

/// Settings every command shares.
pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    pub engine: String,
}

fn main() -> ExitCode {
    // `--version` names the engines built in, made only when asked for (or for the man
    // page): create and start sit on a container's start path.
    let mut command = Cli::command();
    let man = std::env::args().nth(1).as_deref() == Some("--generate-man-page");
    if man || wasmbay_engines::version_asked() {
        command = command.version(wasmbay_engines::leaked_version_line(env!(
            "CARGO_PKG_VERSION"
        )));
    }
    // Packages (scripts/deb.sh) render the man page from this definition; not a runc
    // command, so it is matched before the CLI and shown nowhere.
    if man {
        return match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wasmbay-runtime: cannot write the man page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format.as_deref(), cli.debug) {
        eprintln!("wasmbay-runtime: cannot open log: {e:#}");
    }
    let global = Global {
        root: cli.root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
        systemd_cgroup: cli.systemd_cgroup,
        engine: cli.engine,
    };
    let result = match cli.command {
        Command::Create(args) => commands::create(&global, args).map(|()| 0),
        Command::Start(args) => commands::start(&global, args).map(|()| 0),
        Command::State(args) => commands::state(&global, args).map(|()| 0),
        Command::Kill(args) => commands::kill(&global, args).map(|()| 0),
        Command::Delete(args) => commands::delete(&global, args).map(|()| 0),
        Command::Run(args) => commands::run(&global, args),
        Command::Exec(args) => commands::exec(&global, args),
        Command::Features(_) => commands::features().map(|()| 0),
        Command::Ps(args) => commands::ps(&global, args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("wasmbay-runtime: {e:#}");
            ExitCode::FAILURE
        }
    }
}
