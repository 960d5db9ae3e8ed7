//! Network-shaped task options: legacy `port_map` on a task-level network and the
//! `DriverNetwork` StartTask reports, `extra_hosts` in a group network, and the endpoint
//! settings on a user-defined network (`ipv4_address`, `ipv6_address`, `network_aliases`,
//! `advertise_ipv6_address`, `mac_address`).

use std::process::Command;

use nomad_plugin::proto::drivers as pb;
use nomad_plugin::proto::drivers::network_isolation_spec::NetworkIsolationMode;

use super::{TASK_END, docker_cli, host_config, inspect_task, label_flags, run_to_end, strings};
use crate::harness::{TaskDirs, alloc_id_for, configured_plugin};
use crate::lifecycle::{destroy, start, task_config};
use crate::plugin_reconciler::long_lived;
use crate::support::image::{SANDBOX_IMAGE, ensure_sandbox_image};
use crate::support::{TestContainers, docker_with_image};

/// A port nothing listens on right now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

#[tokio::test]
async fn port_map_maps_task_network_ports_and_start_reports_the_driver_network() {
    let case = "taskopt_port_map";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("legacy");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    let (http, admin) = (free_port(), free_port());
    let mut task = task_config(
        &guard,
        &dirs,
        "legacy",
        "echo port=$NOMAD_PORT_http; sleep 60",
        vec![
            ("network_mode", rmpv::Value::from("bridge")),
            (
                "port_map",
                rmpv::Value::Array(vec![rmpv::Value::Map(vec![(
                    rmpv::Value::from("http"),
                    rmpv::Value::from(80),
                )])]),
            ),
        ],
    );
    // What the Nomad client sends for a task-level `network { port "http" {} }`: the host
    // port in the env and on the network, the mapped port only in the driver config.
    task.env
        .insert("NOMAD_PORT_http".to_owned(), http.to_string());
    let resources = task.resources.as_mut().expect("resources");
    resources
        .allocated_resources
        .as_mut()
        .expect("allocated")
        .networks = vec![pb::NetworkResource {
        ip: "127.0.0.1".to_owned(),
        reserved_ports: vec![pb::NetworkPort {
            label: "admin".to_owned(),
            value: i32::from(admin),
        }],
        dynamic_ports: vec![pb::NetworkPort {
            label: "http".to_owned(),
            value: i32::from(http),
        }],
        ..pb::NetworkResource::default()
    }];
    let id = task.id.clone();
    let response = start(&mut driver, task).await.expect("StartTask");

    let net = response.network_override.expect("DriverNetwork reported");
    assert_eq!(net.port_map, [("http".to_owned(), 80)].into());
    assert!(!net.addr.is_empty(), "container address reported");
    assert!(!net.auto_advertise, "Docker's bridge is not advertised");
    let host = host_config(&docker, &guard).await;
    let bindings = host.port_bindings.expect("published ports");
    for (key, host_port) in [
        ("80/tcp", http),
        ("80/udp", http),
        (format!("{admin}/tcp").as_str(), admin),
    ] {
        let b = bindings[key].as_ref().expect("binding");
        assert_eq!(b[0].host_ip.as_deref(), Some("127.0.0.1"), "{key}");
        assert_eq!(
            b[0].host_port.as_deref(),
            Some(host_port.to_string().as_str()),
            "{key}"
        );
    }
    assert!(
        dirs.stdout.wait_for("port=80", TASK_END).await,
        "NOMAD_PORT_http is the mapped port: {:?}",
        dirs.stdout.text()
    );
    let inspected = crate::lifecycle::inspect(&mut driver, &id)
        .await
        .expect("InspectTask");
    assert_eq!(
        inspected.network_override.expect("network").port_map,
        [("http".to_owned(), 80)].into()
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");

    // Nomad's two refusals.
    let port_map = rmpv::Value::Array(vec![rmpv::Value::Map(vec![(
        rmpv::Value::from("http"),
        rmpv::Value::from(80),
    )])]);
    let task = task_config(
        &guard,
        &dirs,
        "legacy",
        "true",
        vec![("port_map", port_map.clone())],
    );
    let err = start(&mut driver, task).await.expect_err("no network");
    assert!(
        err.message()
            .contains("Trying to map ports but no network interface is available"),
        "{}",
        err.message()
    );
    let mut task = task_config(
        &guard,
        &dirs,
        "legacy",
        "true",
        vec![("port_map", port_map)],
    );
    task.resources.as_mut().expect("resources").ports = vec![pb::PortMapping {
        label: "http".to_owned(),
        value: i32::from(http),
        to: 80,
        host_ip: "127.0.0.1".to_owned(),
    }];
    let err = start(&mut driver, task).await.expect_err("group ports");
    assert!(
        err.message()
            .contains("'port_map' cannot map group network ports, use 'ports' instead"),
        "{}",
        err.message()
    );
    assert!(guard.remaining().await.is_empty());
}

#[tokio::test]
async fn extra_hosts_in_a_group_network_go_into_the_allocations_hosts_file() {
    let case = "taskopt_group_extra_hosts";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    ensure_sandbox_image(&docker).await;
    let guard = TestContainers::new(&docker, case).await;
    let alloc_id = alloc_id_for(case);
    let sandbox = dockhand::tasks::sandbox_name(&alloc_id);
    guard.track(sandbox.clone());
    let _ = docker.remove_container(&sandbox, true).await;
    let plugin = long_lived(&format!("infra_image = \"{SANDBOX_IMAGE}\"\n")).await;
    let mut driver = plugin.driver();
    let created = driver
        .create_network(pb::CreateNetworkRequest {
            alloc_id: alloc_id.clone(),
            hostname: "web".to_owned(),
        })
        .await
        .expect("CreateNetwork")
        .into_inner();
    let mut spec = created.isolation_spec.expect("isolation spec");
    assert_eq!(spec.mode, NetworkIsolationMode::Group as i32);
    // What the Nomad client adds once the network is set up.
    spec.hosts_config = Some(pb::HostsConfig {
        hostname: "web".to_owned(),
        address: "10.9.8.7".to_owned(),
    });

    let dirs = TaskDirs::create("grp");
    let mut task = task_config(
        &guard,
        &dirs,
        "grp",
        "cat /etc/hosts",
        vec![("extra_hosts", strings(&["db:10.1.2.3", "v6db:fd00::3"]))],
    );
    task.msgpack_driver_config = {
        // No network_mode: the task joins the group network.
        let labels = rmpv::Value::Array(vec![crate::harness::cty_string_map(&guard.labels())]);
        crate::harness::cty_object(vec![
            ("image", rmpv::Value::from(crate::support::TEST_IMAGE)),
            ("command", rmpv::Value::from("sh")),
            ("args", strings(&["-c", "cat /etc/hosts"])),
            ("labels", labels),
            ("extra_hosts", strings(&["db:10.1.2.3", "v6db:fd00::3"])),
        ])
    };
    task.alloc_id = alloc_id.clone();
    task.network_isolation_spec = Some(spec.clone());
    let id = run_to_end(&mut driver, &dirs, task).await;
    assert!(
        dirs.stdout.wait_for("10.1.2.3 db", TASK_END).await,
        "{:?}",
        dirs.stdout.text()
    );
    let out = dirs.stdout.text();
    assert!(out.contains("10.9.8.7 web"), "{out}");
    assert!(out.contains("fd00::3 v6db"), "{out}");
    let written = std::fs::read_to_string(dirs.alloc_dir.join("hosts")).expect("hosts file");
    assert!(
        written.starts_with("# this file was generated by Nomad\n"),
        "{written}"
    );
    let host = host_config(&docker, &guard).await;
    assert_eq!(host.extra_hosts, None, "not handed to Docker");
    assert!(
        host.network_mode
            .as_deref()
            .is_some_and(|m| m.starts_with("container:")),
        "{:?}",
        host.network_mode
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    driver
        .destroy_network(pb::DestroyNetworkRequest {
            alloc_id,
            isolation_spec: Some(spec),
        })
        .await
        .expect("DestroyNetwork");
}

/// An internal user-defined network of one test case, removed on drop.
struct TestNetwork {
    name: String,
}

impl TestNetwork {
    fn create(case: &str, extra: &[&str]) -> TestNetwork {
        let name = format!("dockhand-test-{case}");
        let _ = Command::new("docker")
            .args(["network", "rm", &name])
            .output();
        let flags = label_flags(case);
        let mut args = vec!["network", "create", "--internal"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(extra);
        args.push(&name);
        docker_cli(&args);
        TestNetwork { name }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

#[tokio::test]
async fn endpoint_settings_apply_on_a_user_defined_network() {
    let case = "taskopt_endpoint";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    // Declared before the guard: dropped after the containers are gone.
    let network = TestNetwork::create(
        case,
        &[
            "--subnet",
            "10.213.47.0/28",
            "--ipv6",
            "--subnet",
            "fd5e:a1b2:c3d4:47::/64",
        ],
    );
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("ep");
    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    // A task on the network, with these endpoint settings.
    let endpoint_task = |settings: Vec<(&str, rmpv::Value)>| {
        let mut config = vec![("network_mode", rmpv::Value::from(network.name.as_str()))];
        config.extend(settings);
        task_config(&guard, &dirs, "ep", "sleep 60", config)
    };
    let task = endpoint_task(vec![
        ("ipv4_address", rmpv::Value::from("10.213.47.5")),
        ("ipv6_address", rmpv::Value::from("fd5e:a1b2:c3d4:47::5")),
        ("network_aliases", strings(&["svc-a", "svc-b"])),
        ("advertise_ipv6_address", rmpv::Value::from(true)),
    ]);
    let id = task.id.clone();
    let response = start(&mut driver, task).await.expect("StartTask");
    let net = response.network_override.expect("DriverNetwork");
    assert_eq!(
        net.addr, "fd5e:a1b2:c3d4:47::5",
        "the IPv6 address is reported"
    );
    assert!(net.auto_advertise);
    let inspected = inspect_task(&docker, &guard).await;
    let endpoint = inspected
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(&network.name))
        .expect("endpoint on the network");
    assert_eq!(endpoint.ip_address.as_deref(), Some("10.213.47.5"));
    assert_eq!(
        endpoint.global_ipv6_address.as_deref(),
        Some("fd5e:a1b2:c3d4:47::5")
    );
    let aliases = endpoint.aliases.unwrap_or_default();
    assert!(
        aliases.contains(&"svc-a".to_owned()) && aliases.contains(&"svc-b".to_owned()),
        "{aliases:?}"
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");

    // mac_address: applied from Docker API 1.44 on, refused by name before.
    let api = docker
        .version()
        .await
        .expect("version")
        .api_version
        .unwrap_or_default();
    let new_enough = api
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .is_some_and(|v| v >= (1, 44));
    let task = endpoint_task(vec![(
        "mac_address",
        rmpv::Value::from("02:42:0a:d5:2f:09"),
    )]);
    let id = task.id.clone();
    match start(&mut driver, task).await {
        Ok(_) => {
            assert!(new_enough, "API {api} cannot apply mac_address");
            let endpoint = inspect_task(&docker, &guard)
                .await
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|mut n| n.remove(&network.name))
                .expect("endpoint");
            assert_eq!(endpoint.mac_address.as_deref(), Some("02:42:0a:d5:2f:09"));
            destroy(&mut driver, &id, true).await.expect("DestroyTask");
        }
        Err(err) => {
            assert!(!new_enough, "API {api}: {}", err.message());
            assert!(err.message().contains("mac_address"), "{}", err.message());
            assert!(guard.remaining().await.is_empty());
        }
    }
}
