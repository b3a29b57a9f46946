//! The command line: `kernel`, `install` (kernelspec) and `run` (the script host).

pub mod install;
pub mod run;
