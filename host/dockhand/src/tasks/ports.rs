//! Which ports a task container publishes, by Nomad's docker driver's rules:
//!
//! 1. group ports (`resources.ports`) named by the task's `ports` (an unknown label is an
//!    error), unless the task shares another container's network namespace
//!    (`container:<id>`), where Docker could not publish them;
//! 2. otherwise the ports of the first legacy task-level network
//!    (`AllocatedTaskResources.networks`): reserved, then dynamic, each published on that
//!    network's IP and mapped to `port_map[label]` (or to the same port);
//! 3. otherwise a `port_map` is an error: with group ports it cannot map them (`ports` is
//!    the key for those), and without any network there is nothing to map.
//!
//! Each published port is bound for tcp and udp. `port_map` also rewrites
//! `NOMAD_PORT_<label>` in the task environment to the container port before the container
//! is created, as Nomad does (its env was built from the host ports).

use std::collections::{BTreeMap, HashMap};

use crate::docker::models::PortBinding;

use super::TaskError;
use super::spec::TaskSpec;

/// Docker's `PortBindings`: `"<container port>/<proto>"` → host bindings.
pub type PortBindings = HashMap<String, Option<Vec<PortBinding>>>;

fn publish(map: &mut PortBindings, host_ip: &str, host_port: u16, container_port: u16) {
    for proto in ["tcp", "udp"] {
        map.entry(format!("{container_port}/{proto}"))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(host_ip.to_owned()),
                host_port: Some(host_port.to_string()),
            });
    }
}

/// The ports to publish for `spec`, or why its `ports`/`port_map` cannot be honoured.
pub fn port_bindings(spec: &TaskSpec) -> Result<PortBindings, TaskError> {
    let c = &spec.config;
    let r = &spec.resources;
    let mut map = PortBindings::new();
    // Nomad's client always sends the allocation's (possibly empty) port list, so a task
    // naming `ports` takes this branch, and an unknown label is an error.
    // A task sharing another container's namespace publishes nothing of its own: Nomad
    // ignores its `ports` there (Docker would refuse them).
    let ports: &[String] = if spec.shares_netns() { &[] } else { &c.ports };
    if !ports.is_empty() {
        for label in ports {
            let port = r.ports.iter().find(|p| p.label == *label).ok_or_else(|| {
                TaskError::InvalidSpec(format!("Port {label:?} not found, check network block"))
            })?;
            let to = if port.to == 0 { port.value } else { port.to };
            publish(&mut map, &port.host_ip, port.value, to);
        }
    } else if let Some(network) = r.networks.first() {
        for (label, value) in network.reserved_ports.iter().chain(&network.dynamic_ports) {
            let to = c.port_map.get(label).copied().unwrap_or(*value);
            publish(&mut map, &network.ip, *value, to);
        }
    } else if !c.port_map.is_empty() {
        let message = if r.ports.is_empty() {
            "port_map: Trying to map ports but no network interface is available"
        } else {
            "port_map: 'port_map' cannot map group network ports, use 'ports' instead"
        };
        return Err(TaskError::InvalidSpec(message.to_owned()));
    }
    Ok(map)
}

/// `NOMAD_PORT_<label>` for each `port_map` entry, the label cleaned as Nomad cleans
/// environment variable names (anything but ASCII letters, digits and `_` becomes `_`).
pub fn port_map_env(port_map: &BTreeMap<String, u16>) -> impl Iterator<Item = (String, String)> {
    port_map.iter().map(|(label, port)| {
        let name: String = format!("NOMAD_PORT_{label}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (name, port.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::spec::{PortMapping, TaskNetwork};

    fn host_ports(map: &PortBindings, key: &str) -> Vec<(String, String)> {
        map[key]
            .as_ref()
            .expect("bindings")
            .iter()
            .map(|b| {
                (
                    b.host_ip.clone().unwrap_or_default(),
                    b.host_port.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn port_map_maps_a_task_network_and_unmapped_ports_keep_their_number() {
        let mut s = TaskSpec::default();
        s.resources.networks.push(TaskNetwork {
            ip: "127.0.0.1".into(),
            reserved_ports: vec![("admin".into(), 20001)],
            dynamic_ports: vec![("http".into(), 24567)],
        });
        s.config.port_map.insert("http".into(), 80);
        let map = port_bindings(&s).expect("bindings");
        assert_eq!(map.len(), 4);
        assert_eq!(
            host_ports(&map, "80/tcp"),
            vec![("127.0.0.1".to_owned(), "24567".to_owned())]
        );
        assert_eq!(
            host_ports(&map, "20001/udp"),
            vec![("127.0.0.1".to_owned(), "20001".to_owned())]
        );
    }

    #[test]
    fn port_map_without_a_task_network_is_refused_as_nomad_refuses_it() {
        let mut s = TaskSpec::default();
        s.config.port_map.insert("http".into(), 80);
        let err = port_bindings(&s).unwrap_err().to_string();
        assert!(
            err.contains("Trying to map ports but no network interface is available"),
            "{err}"
        );
        s.resources.ports.push(PortMapping {
            label: "http".into(),
            value: 25000,
            to: 0,
            host_ip: "127.0.0.1".into(),
        });
        let err = port_bindings(&s).unwrap_err().to_string();
        assert!(
            err.contains("'port_map' cannot map group network ports, use 'ports' instead"),
            "{err}"
        );
    }

    #[test]
    fn two_host_ports_on_one_container_port_are_both_published() {
        let mut s = TaskSpec::default();
        for (label, value) in [("a", 25001), ("b", 25002)] {
            s.resources.ports.push(PortMapping {
                label: label.into(),
                value,
                to: 8080,
                host_ip: "127.0.0.1".into(),
            });
            s.config.ports.push(label.into());
        }
        let map = port_bindings(&s).expect("bindings");
        assert_eq!(host_ports(&map, "8080/tcp").len(), 2);
    }

    #[test]
    fn port_map_env_cleans_labels() {
        let env: Vec<_> = port_map_env(&[("my-http".to_owned(), 80)].into()).collect();
        assert_eq!(
            env,
            vec![("NOMAD_PORT_my_http".to_owned(), "80".to_owned())]
        );
    }
}
