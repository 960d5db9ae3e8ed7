//! Fixtures shared by the policy benchmarks: the 10,000-snapshot sweep
//! input (20 labels, 30 env entries, 5 mounts each), the sweep itself, and a
//! way to empty the CPU caches.

// Each benchmark binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::hint::black_box;

use orphan_policy::limits::{MAX_CONTAINERS_PER_BATCH, MAX_DEADLINE};
use orphan_policy::{
    Action, Candidate, ContainerSnapshot, ContainerState, EngineConfig, EvalContext, LoadedPolicy,
    Mount, Ownership, PolicyKind, Verdict, native,
};

/// The integration tests' fixtures: node ids, `ctx()` and an engine.
#[path = "../../tests/policy_host/support.rs"]
mod support;

pub use support::{Harness, NODE_ID, OTHER_NODE_ID, ctx, harness_with};

pub fn snapshot(i: usize, inspected: bool) -> ContainerSnapshot {
    let alloc = format!("{i:08x}-024e-a903-45b8-2bc28b74ed69");
    let mut labels: BTreeMap<String, String> = (0..18)
        .map(|n| (format!("org.example.label-{n}"), format!("value-{n}-{i}")))
        .collect();
    match i % 3 {
        0 => {
            labels.insert("com.hashicorp.nomad.alloc_id".into(), alloc.clone());
            labels.insert("com.hashicorp.nomad.node_id".into(), NODE_ID.into());
        }
        1 => {
            labels.insert("com.hashicorp.nomad.alloc_id".into(), alloc.clone());
            labels.insert("com.hashicorp.nomad.node_id".into(), OTHER_NODE_ID.into());
        }
        _ => {
            labels.insert("maintainer".into(), "ops".into());
            labels.insert("tier".into(), "web".into());
        }
    }
    let mut c = ContainerSnapshot {
        id: format!("{i:064x}"),
        names: vec![if i % 3 == 2 {
            format!("/app-{i}")
        } else {
            format!("/task-{alloc}")
        }],
        image: "registry.example/app:1.2.3".into(),
        labels,
        env: None,
        mounts: ["/alloc", "/local", "/secrets", "/data", "/etc/app"]
            .iter()
            .map(|d| Mount {
                source: format!("/var/lib/nomad/alloc/{alloc}{d}"),
                destination: (*d).into(),
                kind: "bind".into(),
            })
            .collect(),
        created_ms: 1_600_000_000_000,
        started_ms: Some(1_600_000_001_000),
        state: ContainerState::Running,
        exit_code: None,
    };
    let mut env: Vec<String> = (0..29)
        .map(|n| format!("APP_SETTING_{n}=some-value-{n}"))
        .collect();
    env.push(format!("NOMAD_ALLOC_ID={alloc}"));
    if inspected {
        c.set_env_from_docker(env);
    }
    c
}

pub fn candidates<'a>(
    batch: &'a [ContainerSnapshot],
    verdicts: &'a [Verdict],
) -> Vec<Candidate<'a>> {
    batch
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| matches!(v.ownership, Ownership::Owned { .. }))
        .map(|(c, v)| Candidate {
            container: c,
            ownership: &v.ownership,
        })
        .collect()
}

pub fn sweep(
    all: &[ContainerSnapshot],
    mut classify: impl FnMut(&[ContainerSnapshot]) -> Vec<Verdict>,
    mut decide: impl FnMut(&[Candidate<'_>]) -> Vec<Action>,
) -> usize {
    let mut destructive = 0;
    for batch in all.chunks(MAX_CONTAINERS_PER_BATCH) {
        let verdicts = classify(batch);
        let actions = decide(&candidates(batch, &verdicts));
        destructive += actions.iter().filter(|a| a.is_destructive()).count();
    }
    destructive
}

/// Empties the CPU caches by writing a buffer larger than any of them.
pub struct ColdCaches(Vec<u8>);

impl ColdCaches {
    pub fn new() -> Self {
        Self(vec![0; 256 << 20])
    }

    pub fn empty(&mut self) {
        for (n, line) in self.0.iter_mut().step_by(64).enumerate() {
            *line = line.wrapping_add(n as u8);
        }
        black_box(&self.0);
    }
}

/// The sweep benchmarks' engine, default policies and inputs.
pub struct Fixture {
    /// Keeps the deadlines ticking while the fixture lives.
    _harness: Harness,
    pub ownership: LoadedPolicy,
    pub kill: LoadedPolicy,
    /// 10,000 inspected snapshots (with their environment).
    pub all: Vec<ContainerSnapshot>,
    /// The same as listed by Docker, before any inspection: no env.
    pub listed: Vec<ContainerSnapshot>,
    pub context: EvalContext,
    /// Destructive actions one sweep of `all` yields.
    pub expected: usize,
}

impl Fixture {
    pub fn new() -> Self {
        // The sweep uses the longest deadline so that a loaded benchmark
        // machine measures slowness instead of failing on it.
        let harness = harness_with(EngineConfig {
            deadline: MAX_DEADLINE,
            ..EngineConfig::default()
        });
        let ownership = harness
            .engine
            .load_default(PolicyKind::Ownership)
            .expect("ownership");
        let kill = harness.engine.load_default(PolicyKind::Kill).expect("kill");
        let mut fixture = Self {
            _harness: harness,
            ownership,
            kill,
            all: (0..10_000).map(|i| snapshot(i, true)).collect(),
            listed: (0..10_000).map(|i| snapshot(i, false)).collect(),
            context: ctx(),
            expected: 0,
        };
        fixture.expected = fixture.native_sweep(&fixture.all);
        assert_eq!(fixture.expected, 3334, "a third of the snapshots are ours");
        assert_eq!(
            fixture.wasm_sweep(&fixture.ownership, &fixture.kill, &fixture.all),
            fixture.expected,
            "the Wasm defaults agree with the native rules"
        );
        fixture
    }

    /// One sweep of `snapshots` through a pair of Wasm policies.
    pub fn wasm_sweep(
        &self,
        ownership: &LoadedPolicy,
        kill: &LoadedPolicy,
        snapshots: &[ContainerSnapshot],
    ) -> usize {
        sweep(
            black_box(snapshots),
            |batch| ownership.classify(&self.context, batch).expect("classify"),
            |cands| kill.decide(&self.context, cands).expect("decide"),
        )
    }

    /// The same sweep through the native rules.
    pub fn native_sweep(&self, snapshots: &[ContainerSnapshot]) -> usize {
        sweep(
            black_box(snapshots),
            |batch| native::classify(&self.context, batch),
            |c| native::decide(&self.context, c),
        )
    }
}
