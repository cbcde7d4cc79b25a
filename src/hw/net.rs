//! Network interfaces: what sysfs says of each (driver, MAC, link, speed) and the addresses the
//! kernel has on them; on the rescue image, DHCP or a static address set on one of them.
//!
//! Only the appliance's network is ever changed: on any other machine the admin's own tools own
//! it, so [`configure`] refuses unless the appliance's init left `<run>/vmfs-rescue/`.

use super::Roots;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// One network interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    /// Kernel driver (`e1000e`, `virtio_net`), empty for a virtual interface.
    pub driver: String,
    pub mac: String,
    /// Cable (carrier) present; `None` while the interface is down.
    pub carrier: Option<bool>,
    pub speed_mbps: Option<u32>,
    /// Addresses with prefix length ("10.0.2.15/24").
    pub addrs: Vec<String>,
}

/// How to set an interface's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setup {
    Dhcp,
    Static { addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>, dns: Option<Ipv4Addr> },
}

/// Errors of the network setup.
#[derive(Debug, thiserror::Error)]
pub enum NetSetupError {
    #[error("not the rescue image: set the network with this system's own tools")]
    NotAppliance,
    #[error("{0:?}: not an address; give IP/PREFIX[,GATEWAY[,DNS]], e.g. 192.168.1.50/24,192.168.1.1")]
    BadSpec(String),
    #[error("{nic}: {what} failed: {why}")]
    Failed { nic: String, what: String, why: String },
}

/// The interfaces under `<sys>/class/net` but loopback, sorted by name (no addresses: see
/// [`add_addresses`]).
pub fn nics_at(roots: &Roots) -> Vec<Nic> {
    let dir = roots.sys.join("class/net");
    let Ok(rd) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut v: Vec<Nic> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name != "lo").then(|| nic(&e.path(), name))
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn nic(p: &Path, name: String) -> Nic {
    let read = |f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_string());
    let driver = std::fs::read_link(p.join("device/driver"))
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Reading carrier or speed of a down interface fails (EINVAL): unknown, not "no link".
    let carrier = read("carrier").and_then(|c| match c.as_str() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    });
    let speed_mbps = read("speed").and_then(|s| s.parse::<i64>().ok()).and_then(|s| u32::try_from(s).ok());
    Nic { name, driver, mac: read("address").unwrap_or_default(), carrier, speed_mbps, addrs: Vec::new() }
}

/// Fill in the running system's addresses (IPv4 and global IPv6) of `nics`.
pub fn add_addresses(nics: &mut [Nic]) {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else { return };
    for i in ifs {
        let Some(n) = nics.iter_mut().find(|n| n.name == i.interface_name) else { continue };
        let (Some(a), mask) = (i.address, i.netmask) else { continue };
        let text = if let Some(v4) = a.as_sockaddr_in() {
            let prefix = mask.and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).count_ones()));
            format!("{}/{}", v4.ip(), prefix.unwrap_or(32))
        } else if let Some(v6) = a.as_sockaddr_in6() {
            if v6.ip().is_unicast_link_local() {
                continue;
            }
            let prefix = mask.and_then(|m| m.as_sockaddr_in6().map(|m| u128::from(m.ip()).count_ones()));
            format!("{}/{}", v6.ip(), prefix.unwrap_or(128))
        } else {
            continue;
        };
        if !n.addrs.contains(&text) {
            n.addrs.push(text);
        }
    }
}

/// Whether this is the rescue image (its init leaves `<run>/vmfs-rescue/`).
pub fn on_appliance(roots: &Roots) -> bool {
    roots.run.join("vmfs-rescue").is_dir()
}

/// `dhcp`, or `IP/PREFIX[,GATEWAY[,DNS]]` as the kernel command line's `vmfs.net=` takes it.
pub fn parse_setup(spec: &str) -> Result<Setup, NetSetupError> {
    let spec = spec.trim();
    if spec.eq_ignore_ascii_case("dhcp") {
        return Ok(Setup::Dhcp);
    }
    let bad = || NetSetupError::BadSpec(spec.to_string());
    let mut parts = spec.split(',').map(str::trim);
    let (ip, prefix) = parts.next().and_then(|a| a.split_once('/')).ok_or_else(bad)?;
    let addr: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p)).ok_or_else(bad)?;
    let opt = |p: Option<&str>| -> Result<Option<Ipv4Addr>, NetSetupError> {
        match p.filter(|s| !s.is_empty()) {
            Some(s) => s.parse().map(Some).map_err(|_| bad()),
            None => Ok(None),
        }
    };
    let gateway = opt(parts.next())?;
    let dns = opt(parts.next())?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Setup::Static { addr, prefix, gateway, dns })
}

/// The DHCP client's event script on the rescue image (it sets the address, route and DNS).
const UDHCPC_SCRIPT: &str = "/lib/vmfs-rescue/udhcpc.script";

/// Apply `setup` to interface `nic` on the rescue image; returns what was done, in words.
pub fn configure(roots: &Roots, nic: &str, setup: &Setup) -> Result<String, NetSetupError> {
    if !on_appliance(roots) {
        return Err(NetSetupError::NotAppliance);
    }
    let run = |what: &str, args: &[&str]| -> Result<(), NetSetupError> {
        let fail = |why: String| NetSetupError::Failed { nic: nic.into(), what: what.into(), why };
        let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| fail(format!("{}: {e}", args[0])))?;
        if out.status.success() { Ok(()) } else { Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string())) }
    };
    run("bringing the link up", &["ip", "link", "set", nic, "up"])?;
    match setup {
        Setup::Dhcp => {
            // In the foreground with a bound: -n quits when no lease comes, -q once one does.
            run("DHCP", &["udhcpc", "-i", nic, "-n", "-q", "-t", "5", "-T", "2", "-s", UDHCPC_SCRIPT])?;
            Ok(format!("{nic}: address from DHCP"))
        }
        Setup::Static { addr, prefix, gateway, dns } => {
            run("setting the address", &["ip", "addr", "add", &format!("{addr}/{prefix}"), "dev", nic])?;
            if let Some(g) = gateway {
                run("setting the gateway", &["ip", "route", "replace", "default", "via", &g.to_string()])?;
            }
            if let Some(d) = dns {
                std::fs::write("/etc/resolv.conf", format!("nameserver {d}\n")).map_err(|e| NetSetupError::Failed {
                    nic: nic.into(),
                    what: "writing /etc/resolv.conf".into(),
                    why: e.to_string(),
                })?;
            }
            Ok(format!("{nic}: {addr}/{prefix}{}", gateway.map(|g| format!(" via {g}")).unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_parse_as_the_kernel_command_line_gives_them() {
        assert_eq!(parse_setup(" DHCP ").unwrap(), Setup::Dhcp);
        assert_eq!(
            parse_setup("192.168.1.50/24,192.168.1.1,1.1.1.1").unwrap(),
            Setup::Static {
                addr: Ipv4Addr::new(192, 168, 1, 50),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                dns: Some(Ipv4Addr::new(1, 1, 1, 1)),
            }
        );
        assert_eq!(
            parse_setup("10.0.0.2/8").unwrap(),
            Setup::Static { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 8, gateway: None, dns: None }
        );
        for bad in ["", "10.0.0.2", "10.0.0.2/33", "10.0.0.2/0", "10.0.0.300/24", "10.0.0.2/24,x", "1.2.3.4/24,,,5"] {
            assert!(matches!(parse_setup(bad), Err(NetSetupError::BadSpec(_))), "{bad}");
        }
    }

    #[test]
    fn interfaces_come_from_sysfs_without_loopback() {
        let d = tempfile::tempdir().unwrap();
        let net = d.path().join("class/net");
        for (n, carrier, speed) in [("lo", "1", "-1"), ("eth1", "0", "-1"), ("eth0", "1", "1000")] {
            let p = net.join(n);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("carrier"), carrier).unwrap();
            std::fs::write(p.join("speed"), speed).unwrap();
            std::fs::write(p.join("address"), "52:54:00:12:34:56\n").unwrap();
        }
        let drv = d.path().join("bus/pci/drivers/e1000e");
        std::fs::create_dir_all(&drv).unwrap();
        std::fs::create_dir_all(net.join("eth0/device")).unwrap();
        std::os::unix::fs::symlink(&drv, net.join("eth0/device/driver")).unwrap();
        let roots = Roots { sys: d.path().into(), run: d.path().join("run"), ..Roots::default() };
        let v = nics_at(&roots);
        assert_eq!(v.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["eth0", "eth1"]);
        assert_eq!((v[0].driver.as_str(), v[0].carrier, v[0].speed_mbps), ("e1000e", Some(true), Some(1000)));
        assert_eq!((v[1].driver.as_str(), v[1].carrier, v[1].speed_mbps), ("", Some(false), None));
        assert_eq!(v[0].mac, "52:54:00:12:34:56");
        // Not the appliance: nothing is changed.
        assert!(matches!(configure(&roots, "eth0", &Setup::Dhcp), Err(NetSetupError::NotAppliance)));
    }
}
