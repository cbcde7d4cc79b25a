//! `vmfs-rescue`: read-only recovery of VMware VMFS datastores.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::args::parse();
    // The terminal UI owns the terminal: it logs to a file and its own pane.
    if !matches!(args.cmd, cli::args::Command::Tui { .. }) {
        cli::init_logging(args.log.as_deref());
    }
    match cli::run(args) {
        Ok(cli::Outcome::Clean) => ExitCode::SUCCESS,
        Ok(cli::Outcome::Damaged) => ExitCode::from(1),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("vmfs-rescue: {e:#}");
            let two = e.downcast_ref::<cli::UsageError>().is_some() || e.downcast_ref::<cli::Failed>().is_some();
            ExitCode::from(if two { 2 } else { 1 })
        }
    }
}
