//! The instance pool's totals, pinned to their figures and to the limits table of
//! `docs/policy-authoring.md`: a change in one place without the others fails here.

use super::*;

const MIB: usize = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

#[test]
fn the_default_pool_totals_are_the_documented_figures() {
    assert_eq!(DEFAULT_MAX_CONCURRENT_EVALUATIONS, 16);
    assert_eq!(
        PoolTotals::for_evaluations(DEFAULT_MAX_CONCURRENT_EVALUATIONS),
        PoolTotals {
            component_instances: 16,
            core_instances: 16 * 48,
            memories: 16 * 2,
            tables: 16 * 8,
            max_memory_bytes: 128 * MIB,
            reserved_memory_bytes: 129 * GIB,
            slots_per_component: 4,
        }
    );
    assert_eq!(MAX_TABLE_ELEMENTS, 20_000);
}

#[test]
fn every_slot_holds_the_largest_policy_and_a_component_a_quarter_of_the_slots() {
    for n in [1, 2, 3, 4, 5, 7, 8, 16, 100, 1024] {
        let t = PoolTotals::for_evaluations(n);
        assert_eq!(t.component_instances, n);
        assert_eq!(t.core_instances, n * 48, "{n}");
        assert_eq!(t.memories, n * 2, "{n}");
        assert_eq!(t.tables, n * 8, "{n}");
        assert_eq!(
            t.reserved_memory_bytes,
            u64::from(n) * 2 * (4 * GIB + 32 * MIB as u64),
            "{n}"
        );
        assert_eq!(t.slots_per_component, (n / 4).max(1), "{n}");
    }
    // The largest configurable pool still fits wasmtime's (u32) totals.
    let largest = PoolTotals::for_evaluations(1024);
    assert_eq!(largest.core_instances, 49_152);
    assert_eq!(
        largest.reserved_memory_bytes,
        2048 * (4 * GIB + 32 * MIB as u64)
    );
}

/// The cells of the limits-table row whose first cell starts with `limit`.
fn limits_row(doc: &str, limit: &str) -> Vec<String> {
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with(&format!("| {limit}")))
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "docs/policy-authoring.md: one limits row for {limit:?}: {rows:?}"
    );
    rows[0]
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn the_limits_table_states_the_configured_pool() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/policy-authoring.md"
    );
    let doc = std::fs::read_to_string(path).expect("read docs/policy-authoring.md");
    let t = PoolTotals::for_evaluations(DEFAULT_MAX_CONCURRENT_EVALUATIONS);

    let per_component = limits_row(&doc, "core instances / memories / tables per component");
    let figures = format!(
        "{MAX_INSTANCES_PER_POLICY} / {MAX_MEMORIES_PER_POLICY} / {MAX_TABLES_PER_POLICY} \
         (tables up to 20 000 elements)"
    );
    assert!(per_component[1].starts_with(&figures), "{per_component:?}");

    let calls = limits_row(&doc, "calls at once |");
    assert!(
        calls[1].starts_with(&format!("{DEFAULT_MAX_CONCURRENT_EVALUATIONS} ")),
        "{calls:?}"
    );
    let share = limits_row(&doc, "calls at once of one component");
    assert_eq!(SLOT_SHARE_DIVISOR, 4, "the table says a quarter");
    assert!(
        share[1].starts_with("a quarter of the above (at least 1)"),
        "{share:?}"
    );

    let pool = limits_row(&doc, "instance pool");
    for stated in [
        format!("{} component instances", t.component_instances),
        format!(
            "{} core instances ({MAX_INSTANCES_PER_POLICY} per slot)",
            t.core_instances
        ),
        format!(
            "{} linear memories of up to {} MiB",
            t.memories,
            t.max_memory_bytes / MIB
        ),
        format!(
            "{} GiB of address space reserved",
            t.reserved_memory_bytes / GIB
        ),
        format!("{} tables", t.tables),
        format!("{} calls of one component", t.slots_per_component),
    ] {
        assert!(
            pool[1].contains(&stated),
            "the instance pool row should say {stated:?}: {pool:?}"
        );
    }
}

#[test]
fn an_engine_builds_with_the_largest_configurable_pool() {
    let config = EngineConfig {
        max_concurrent_evaluations: 1024,
        ..EngineConfig::default()
    };
    PolicyEngine::new(config).expect("engine with a 1024-slot pool");
}

#[test]
fn the_ticker_runs_until_the_engine_and_its_last_policy_are_dropped() {
    let engine = PolicyEngine::new(EngineConfig::default()).expect("engine");
    let running = Arc::clone(&engine.shared.ticker.running);
    assert!(running.load(Ordering::Acquire), "started with the engine");
    let policy = engine
        .load_default(PolicyKind::Ownership)
        .expect("loads: describe() runs under a deadline");
    drop(engine);
    assert!(running.load(Ordering::Acquire), "the policy keeps it");
    drop(policy);
    assert!(!running.load(Ordering::Acquire), "stopped and joined");
}
