//! The Python example policy (`guest-policies/python/default_ownership`),
//! built by `componentize-py`, against the bundled Rust default: same
//! verdicts on the sample fixtures and on a generated corpus.

use std::collections::BTreeMap;

use orphan_policy::{
    ContainerSnapshot, ContainerState, EvalContext, Mount, NodeInfo, PolicyKind, native,
};
use serde_json::Value;

use crate::python_build::python_default_ownership;
use crate::support::{ALLOC, Harness, NODE_ID, OTHER_NODE_ID, ctx, harness_with};

/// One engine for every test here, its compiled policies cached under
/// `target/`: the 18 MiB component is compiled once per engine version, not
/// once per test or run.
fn harness() -> &'static Harness {
    static H: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        harness_with(orphan_policy::EngineConfig {
            cache_dir: Some(crate::python_build::repo().join("target/python-policies/compiled")),
            ..orphan_policy::EngineConfig::default()
        })
    })
}

#[test]
fn python_policy_loads_and_imports_only_the_contract() {
    let Some(bytes) = python_default_ownership() else {
        return;
    };
    let h = harness();
    let policy = h
        .engine
        .load(PolicyKind::Ownership, bytes)
        .expect("the Python policy loads");
    assert_eq!(policy.info().name, "default-ownership-py");
    assert_eq!(policy.info().contract_version, "0.3.0");
    let rust = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    assert_eq!(
        policy.info().reads,
        rust.info().reads,
        "same inputs declared"
    );
    eprintln!(
        "python policy: {} bytes, memory limit {} bytes",
        bytes.len(),
        policy.memory_limit()
    );
}

/// A snapshot from a `tests/fixtures/policy` container (Docker-like JSON:
/// env as `KEY=VALUE` strings, absent fields empty).
fn fixture_container(v: &Value) -> ContainerSnapshot {
    let text = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let mut c = ContainerSnapshot {
        id: text("id"),
        names: v["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        image: text("image"),
        labels: v["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect::<BTreeMap<_, _>>(),
        env: None,
        mounts: v["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| Mount {
                source: m["source"].as_str().unwrap_or_default().into(),
                destination: m["destination"].as_str().unwrap_or_default().into(),
                kind: m["type"].as_str().unwrap_or("bind").into(),
            })
            .collect(),
        created_ms: v["created_ms"].as_i64().unwrap_or_default(),
        started_ms: v["started_ms"].as_i64(),
        state: ContainerState::from_docker(v["state"].as_str().unwrap_or("running")),
        exit_code: v["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok()),
    };
    if let Some(env) = v["env"].as_array() {
        c.set_env_from_docker(env.iter().filter_map(Value::as_str));
    }
    c
}

fn fixture_ctx(v: &Value) -> EvalContext {
    let node = &v["node"];
    let mut ctx = ctx();
    ctx.node = NodeInfo {
        id: node["id"].as_str().unwrap_or_default().into(),
        name: node["name"].as_str().unwrap_or_default().into(),
        datacenter: node["datacenter"].as_str().unwrap_or_default().into(),
    };
    if let Some(now) = v["now_ms"].as_i64() {
        ctx.now_ms = now;
    }
    ctx
}

/// Every container of every sample fixture, as listed (no env) and as
/// inspected: the Python and the Rust default give identical verdicts,
/// reasons included.
#[test]
fn python_default_matches_rust_default_on_sample_fixtures() {
    let Some(bytes) = python_default_ownership() else {
        return;
    };
    let h = harness();
    let python = h.engine.load(PolicyKind::Ownership, bytes).expect("loads");
    let rust = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    let dir = crate::python_build::repo().join("tests/fixtures/policy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "sample fixtures found in {}",
        dir.display()
    );
    let mut compared = 0;
    for file in files {
        let json: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("fixture JSON");
        let ctx = fixture_ctx(&json["context"]);
        let inspected: Vec<_> = json["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(fixture_container)
            .collect();
        let listed: Vec<_> = inspected
            .iter()
            .cloned()
            .map(|mut c| {
                c.env = None;
                c
            })
            .collect();
        for batch in [&inspected, &listed] {
            let from_python = python.classify(&ctx, batch).expect("python classify");
            let from_rust = rust.classify(&ctx, batch).expect("rust classify");
            assert_eq!(from_python, from_rust, "{}", file.display());
            compared += batch.len();
        }
    }
    assert!(compared >= 10);
}

/// A small deterministic generator (xorshift64*), so the corpus is the same
/// at every run and a failure names a reproducible snapshot.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn uuid(&mut self) -> String {
        let hex = format!("{:016x}{:016x}", self.next(), self.next());
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

fn generated_snapshot(g: &mut Gen, i: usize) -> ContainerSnapshot {
    const ALLOC_LABEL: &str = "com.hashicorp.nomad.alloc_id";
    const NODE_LABEL: &str = "com.hashicorp.nomad.node_id";
    let alloc = if g.below(3) == 0 {
        ALLOC.to_owned()
    } else {
        g.uuid()
    };
    let other = g.uuid();
    let mut c = crate::support::container(&format!("{i:064x}"), "/x");
    c.names = (0..g.below(3))
        .map(|_| match g.below(9) {
            0 => format!("/web-{alloc}"),
            1 => format!("/my-task-{alloc}"),
            2 => format!("/nomad_init_{alloc}"),
            3 => format!("/tâche-é-{alloc}"),
            4 => format!("/web-{}", alloc.to_uppercase()),
            5 => format!("web-{alloc}"),
            6 => format!("/a-{alloc}-{other}"),
            7 => format!("/x-{}", &alloc[..30]),
            _ => g.pick(&["/serene_keller", "/", "/-", "/ü-ß"]).to_owned(),
        })
        .collect();
    match g.below(6) {
        0 => {}
        1 => {
            c.labels.insert(ALLOC_LABEL.into(), String::new());
        }
        _ => {
            c.labels.insert(ALLOC_LABEL.into(), alloc.clone());
        }
    }
    if g.below(4) == 0 {
        c.labels.remove(ALLOC_LABEL);
    }
    match g.below(5) {
        0 => {
            c.labels.insert(NODE_LABEL.into(), NODE_ID.into());
        }
        1 => {
            c.labels.insert(NODE_LABEL.into(), OTHER_NODE_ID.into());
        }
        2 => {
            c.labels.insert(NODE_LABEL.into(), "ñødé".into());
        }
        _ => {}
    }
    for _ in 0..g.below(4) {
        let key = g.pick(&[
            "com.hashicorp.nomad.alloc_i",
            "com.hashicorp.nomad.alloc_id2",
            "com.hashicorp.nomad.job_name",
            "a",
            "zz",
            "émoji.🙂",
        ]);
        c.labels.insert(key.into(), "v".into());
    }
    let mounts: Vec<&str> = ["/alloc", "/local", "/secrets", "/data", "/alloc/"]
        .into_iter()
        .filter(|_| g.below(5) != 0)
        .collect();
    c = crate::support::with_mounts(c, &mounts);
    if g.below(3) != 0 {
        let mut env: Vec<String> = vec!["PATH=/bin".into()];
        match g.below(5) {
            0 => env.push(format!("NOMAD_ALLOC_ID={alloc}")),
            1 => env.push(format!("NOMAD_ALLOC_ID={other}")),
            2 => {
                env.push(format!("NOMAD_ALLOC_ID={other}"));
                env.push(format!("NOMAD_ALLOC_ID={alloc}"));
            }
            3 => env.push("NOMAD_ALLOC_ID=".into()),
            _ => env.push("NOMAD_ALLOC=x".into()),
        }
        c.set_env_from_docker(env.iter().map(String::as_str));
    }
    c
}

/// 4,096 generated snapshots (labels, names, mounts and env mixed, with
/// non-ASCII strings so byte offsets differ from character offsets), under
/// a known and an unknown node id: the Python default gives the Rust
/// default's verdicts, and both agree with the native rules.
#[test]
fn python_default_matches_rust_default_on_generated_corpus() {
    let Some(bytes) = python_default_ownership() else {
        return;
    };
    let h = harness();
    let python = h.engine.load(PolicyKind::Ownership, bytes).expect("loads");
    let rust = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    let mut g = Gen(0x5eed_d0c4_a11d_0001);
    let corpus: Vec<_> = (0..4096).map(|i| generated_snapshot(&mut g, i)).collect();
    let mut unknown_node = ctx();
    unknown_node.node.id = String::new();
    let mut kinds = std::collections::BTreeSet::new();
    for ctx in [ctx(), unknown_node] {
        for batch in corpus.chunks(orphan_policy::limits::MAX_CONTAINERS_PER_BATCH) {
            let eval = python
                .classify_with_stats(&ctx, batch)
                .expect("python classify");
            eprintln!("python: {} containers in {:?}", batch.len(), eval.elapsed);
            let from_python = eval.output;
            let from_rust = rust.classify(&ctx, batch).expect("rust classify");
            for (i, (p, r)) in from_python.iter().zip(&from_rust).enumerate() {
                assert_eq!(p, r, "snapshot {:?}", batch[i]);
                kinds.insert(
                    format!("{:?}", p.ownership)
                        .chars()
                        .take(6)
                        .collect::<String>(),
                );
            }
            assert_eq!(from_rust, native::classify(&ctx, batch));
        }
    }
    assert_eq!(
        kinds.len(),
        4,
        "the corpus reaches every verdict: {kinds:?}"
    );
}
