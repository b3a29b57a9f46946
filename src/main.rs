//! The `rhai-kernel` command: Jupyter kernel, kernelspec installer and Rhai script runner.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
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
        Command::Run { file, args } => rhai_kernel::cli::run::run_file(&file, args),
    };
    std::process::exit(code);
}
