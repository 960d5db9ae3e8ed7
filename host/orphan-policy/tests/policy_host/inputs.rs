//! Input selection: a policy is sent only what its `describe()` declares.

use orphan_policy::{EvalError, LoadError, OutputError, PolicyKind};

use crate::support::{ALLOC, container, ctx, guest, harness, with_env, with_label, with_mounts};

/// What `busy_container` holds beyond the probe's selection: env secrets, an
/// unselected label, the image, mount sources and types.
const UNSELECTED: [&str; 6] = [
    "hunter2",
    "s3cr3t",
    "ops@example.com",
    "busybox",
    "/var/nomad",
    "bind",
];

/// A container carrying a little of everything, secrets included.
fn busy_container() -> orphan_policy::ContainerSnapshot {
    let c = container("c1", &format!("/web-{ALLOC}"));
    let c = with_label(c, "com.hashicorp.nomad.alloc_id", ALLOC);
    let c = with_label(c, "com.hashicorp.nomad.task_name", "web");
    let c = with_label(c, "maintainer", "ops@example.com");
    let c = with_label(c, "tier", "front");
    let c = with_mounts(c, &["/alloc", "/local", "/secrets"]);
    with_env(
        c,
        &[
            "DB_PASSWORD=hunter2",
            &format!("NOMAD_ALLOC_ID={ALLOC}"),
            "VAULT_TOKEN=s3cr3t",
            "TZ=UTC",
        ],
    )
}

#[test]
fn a_policy_sees_only_what_it_declared() {
    let h = harness();
    let probe = h
        .engine
        .load(PolicyKind::Ownership, &guest("probe-echo-inputs"))
        .expect("probe loads");
    assert_eq!(
        probe.info().reads.to_string(),
        "names, labels [tier, com.hashicorp.nomad.*], env [TZ, NOMAD_*], mount destinations"
    );
    let verdicts = probe
        .classify(&ctx(), &[busy_container()])
        .expect("classify");
    assert_eq!(
        verdicts[0].reason,
        format!(
            "id=c1; names=/web-{ALLOC}; image=; \
             labels=com.hashicorp.nomad.alloc_id={ALLOC},com.hashicorp.nomad.task_name=web,tier=front; \
             env=NOMAD_ALLOC_ID={ALLOC},TZ=UTC; mounts=:/alloc:,:/local:,:/secrets:"
        )
    );
    for secret in UNSELECTED {
        assert!(!verdicts[0].reason.contains(secret), "{secret} leaked");
    }

    // Not inspected yet: the environment stays unknown, not empty.
    let mut listed = busy_container();
    listed.env = None;
    let verdicts = probe.classify(&ctx(), &[listed]).expect("classify");
    assert!(
        verdicts[0].reason.contains("; env=-;"),
        "{}",
        verdicts[0].reason
    );

    // The same guest sent everything sees everything: the narrowing above is
    // the host's doing.
    let verdicts = probe
        .sent_all_inputs()
        .classify(&ctx(), &[busy_container()])
        .expect("classify");
    for secret in UNSELECTED {
        assert!(verdicts[0].reason.contains(secret), "{secret} missing");
    }
}

#[test]
fn the_defaults_declare_least_privilege_inputs() {
    let h = harness();
    let ownership = h.engine.load_default(PolicyKind::Ownership).expect("loads");
    assert_eq!(
        ownership.info().reads.to_string(),
        "names, labels [com.hashicorp.nomad.alloc_id, com.hashicorp.nomad.node_id], \
         env [NOMAD_ALLOC_ID], mount destinations"
    );
    let kill = h.engine.load_default(PolicyKind::Kill).expect("loads");
    assert_eq!(
        kill.info().reads.to_string(),
        "nothing beyond ids, times and state"
    );
}

#[test]
fn an_unusable_selection_is_refused_at_load_naming_it() {
    let h = harness();
    let err = h
        .engine
        .load(PolicyKind::Kill, &guest("hostile-bad-selection"))
        .expect_err("refused");
    let LoadError::Describe(EvalError::MalformedOutput {
        error: OutputError::Selection { input, problem },
        ..
    }) = &err
    else {
        panic!("expected a selection error, got {err:?}")
    };
    assert_eq!(*input, "labels");
    assert_eq!(problem, "`com.*.alloc_id` has a `*` before its end");
    // The error chain a CLI prints names the field.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(
        chain.contains("input-selection for labels is invalid"),
        "{chain}"
    );
}
