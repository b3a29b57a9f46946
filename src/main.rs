//! The `rhai-kernel` command: Jupyter kernel, kernelspec installer and Rhai script runner.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Large allocations are counted, for the scripts' memory limit.
#[global_allocator]
static ALLOCATOR: rhai_kernel::interpreter::limits::CountingAllocator =
    rhai_kernel::interpreter::limits::CountingAllocator;

#[derive(Parser)]
#[command(
    name = "rhai-kernel",
    version,
    about = "A Jupyter kernel and script runner for Rhai with native concurrency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the kernel (this is what Jupyter starts, through kernel.json).
    Kernel {
        /// The connection file written by the Jupyter client.
        #[arg(long, short = 'f')]
        connection_file: PathBuf,
    },
    /// Installs the "Rhai" kernelspec so Jupyter can find this kernel.
    Install(rhai_kernel::cli::install::InstallArgs),
    /// Runs a Rhai script; extra arguments are available to it as the `ARGS` array.
    Run {
        /// The script to run (`.rhai`).
        file: PathBuf,
        /// Arguments for the script.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs one job for `spawn_process` (started by the kernel or a script, not by hand).
    #[command(hide = true)]
    Worker {
        /// Serve requests to fork workers instead (started once by the parent).
        #[arg(long)]
        fork_server: bool,
    },
}

/// Closure names are hashes of their code: kernel and workers must hash alike so a
/// closure from a cell means the same function in a child process.
const HASHING_SEED: [u64; 4] = [0x7268_6169, 0x6b65_726e, 0x656c_5f73, 0x6565_6421];

fn main() {
    let _ = rhai::config::hashing::set_hashing_seed(Some(HASHING_SEED));
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Worker { fork_server } => rhai_kernel::cli::worker::run_worker(fork_server),
        Command::Kernel { connection_file } => match rhai_kernel::kernel::run(&connection_file) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rhai-kernel: {e:#}");
                1
            }
        },
        Command::Install(args) => match rhai_kernel::cli::install::install(&args) {
            Ok(dir) => {
                println!("Installed kernelspec {} in {}", args.name, dir.display());
                0
            }
            Err(e) => {
                eprintln!("rhai-kernel install: {e:#}");
                1
            }
        },
        Command::Run { file, args } => {
            rhai_kernel::runtime::launch::set_role(rhai_kernel::runtime::launch::Role::Script);
            rhai_kernel::cli::run::run_file(&file, args)
        }
    };
    std::process::exit(code);
}
