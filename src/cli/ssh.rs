//! SSH options from the command line: the host key given or confirmed at the terminal, the key
//! file or the password (VMFS_RESCUE_SSH_PASSWORD, else asked at the terminal, never echoed).

use anyhow::{Result, bail};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vmfs_rescue::block::ssh::{Auth, HostKeyCheck, SshOptions};

/// The global `--host-key` and `-i` as typed.
static TYPED: OnceLock<(Option<String>, Option<PathBuf>)> = OnceLock::new();

/// Remember the global SSH arguments (from `main`'s parse).
pub fn remember(host_key: Option<String>, identity: Option<PathBuf>) {
    let _ = TYPED.set((host_key, identity));
}

fn terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The options for an SSH connection (built only when one is made: the password is asked then).
pub fn options() -> Result<SshOptions> {
    let (host_key, identity) = TYPED.get().cloned().unwrap_or_default();
    let host_key = match host_key {
        Some(fp) if fp.trim().is_empty() => bail!(super::UsageError("--host-key is empty".into())),
        Some(fp) => HostKeyCheck::Expect(fp),
        None if terminal() => HostKeyCheck::Ask(Arc::new(confirm)),
        None => HostKeyCheck::Refuse,
    };
    let mut password = std::env::var("VMFS_RESCUE_SSH_PASSWORD").ok();
    if password.is_none() && identity.is_none() && terminal() {
        password = Some(read_password("SSH password: ")?);
    }
    Ok(SshOptions {
        host_key,
        auth: Auth { key_file: identity, passphrase: None, password },
        timeout: Duration::from_secs(60),
    })
}

/// Ask at the terminal whether to accept a host key.
fn confirm(host: &str, fingerprint: &str) -> bool {
    eprint!(
        "The host key of {host} has the fingerprint\n    {fingerprint}\n(compare it with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on that host).\nAccept it? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let ok = std::io::stdin().lock().read_line(&mut line).is_ok();
    ok && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// Read a line from the terminal without echo.
fn read_password(prompt: &str) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
