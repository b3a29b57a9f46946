//! The command line: `kernel`, `install` (kernelspec), `run` (the script host) and the
//! hidden `worker` mode of child processes and of their fork server.

pub mod install;
pub mod run;
pub mod worker;
