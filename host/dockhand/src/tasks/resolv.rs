//! `/etc/resolv.conf` for tasks whose group sets `network.dns`.
//!
//! As in Nomad's docker driver, the task gets a resolv.conf written into its task directory
//! and bind-mounted read-only, instead of Docker's `--dns*` options (which Docker refuses for
//! a task joining a group network's sandbox, and which the driver config's `dns_*` would
//! otherwise override). Without servers, searches or options the host's resolv.conf is copied
//! as is; otherwise each part given replaces the host's, the rest is kept.

use std::path::{Path, PathBuf};

use super::spec::DnsSpec;

/// Where a task's resolv.conf is mounted.
pub const TARGET: &str = "/etc/resolv.conf";
/// The host's resolver configuration.
const SYSTEM: &str = "/etc/resolv.conf";

/// Writes `<task_dir>/resolv.conf` for `dns`; returns its path.
pub(crate) fn write(task_dir: &Path, dns: &DnsSpec) -> Result<PathBuf, String> {
    let system = std::fs::read_to_string(SYSTEM)
        .map_err(|e| format!("reading the host's {SYSTEM} for the group DNS: {e}"))?;
    let path = task_dir.join("resolv.conf");
    std::fs::write(&path, render(dns, &system))
        .map_err(|e| format!("writing {} for the group DNS: {e}", path.display()))?;
    Ok(path)
}

/// The file's content: `system` itself when `dns` is empty, else its merge with `dns`.
pub(crate) fn render(dns: &DnsSpec, system: &str) -> String {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return system.to_owned();
    }
    let pick = |given: &[String], key: &str| -> Vec<String> {
        if given.is_empty() {
            system_values(system, key)
        } else {
            given.to_vec()
        }
    };
    let servers = pick(&dns.servers, "nameserver");
    let searches = pick(&dns.searches, "search");
    let options = pick(&dns.options, "options");
    let mut out = String::new();
    let search = searches.join(" ");
    if !searches.is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for server in &servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    let options = options.join(" ");
    if !options.trim().is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

/// Values of `key` in a resolv.conf: every `nameserver`; the last `search` or `options` line.
fn system_values(system: &str, key: &str) -> Vec<String> {
    let mut lines = system.lines().filter_map(|line| {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        (words.next() == Some(key)).then(|| words.map(str::to_owned).collect::<Vec<_>>())
    });
    if key == "nameserver" {
        lines
            .filter_map(|mut w| (!w.is_empty()).then(|| w.swap_remove(0)))
            .collect()
    } else {
        lines.next_back().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3 # second\n\
                          search corp.example\nsearch lan\noptions ndots:2\n";

    fn dns(servers: &[&str], searches: &[&str], options: &[&str]) -> DnsSpec {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        DnsSpec {
            servers: v(servers),
            searches: v(searches),
            options: v(options),
        }
    }

    #[test]
    fn an_empty_group_dns_copies_the_host_file() {
        assert_eq!(render(&dns(&[], &[], &[]), SYSTEM), SYSTEM);
    }

    #[test]
    fn given_parts_replace_the_hosts_and_the_rest_is_kept() {
        assert_eq!(
            render(&dns(&["1.1.1.1", "8.8.8.8"], &[], &[]), SYSTEM),
            "search lan\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions ndots:2\n"
        );
        assert_eq!(
            render(&dns(&[], &["a.example", "b.example"], &["rotate"]), SYSTEM),
            "search a.example b.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions rotate\n"
        );
    }

    #[test]
    fn a_root_search_is_left_out() {
        assert_eq!(
            render(&dns(&["10.1.1.1"], &["."], &[]), "options edns0\n"),
            "nameserver 10.1.1.1\noptions edns0\n"
        );
    }

    #[test]
    fn the_file_lands_in_the_task_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &dns(&["10.9.9.9"], &["x.example"], &[])).unwrap();
        assert_eq!(path, dir.path().join("resolv.conf"));
        let content = std::fs::read_to_string(path).unwrap();
        assert!(content.contains("nameserver 10.9.9.9\n"), "{content}");
        assert!(content.starts_with("search x.example\n"), "{content}");
    }
}
