//! `dockhand policy test FILE --fixtures DIR`: run a policy over JSON
//! fixtures and compare its answers with their expectations.
//!
//! Ownership policies see what the reconciler would give them: first the
//! listed containers without their environment, then, for each
//! `need-inspect` answer on a container whose fixture has `env`, a second
//! call with the environment filled in. A second `need-inspect` counts as
//! `unknown`, as in the reconciler. Kill policies get one candidate per
//! container, with the ownership the fixture states or, when it states none,
//! the bundled default ownership policy's verdict.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use orphan_policy::limits::MAX_CONTAINERS_PER_BATCH;
use orphan_policy::{
    Action, ActionKind, Candidate, ContainerSnapshot, EvalContext, EvalError, LoadedPolicy,
    Ownership, PolicyKind, Verdict, split_to_fit,
};

use super::check::KindArg;
use super::fixtures::{Expectation, Fixture, FixtureError, fixture_files};
use super::{OfflineEngine, PolicyCliError, PolicySource};
use crate::cli::{CommandResult, Failure, Status};
use crate::table::Table;

/// Arguments of `dockhand policy test`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// The policy component (`.wasm`), `bundled:ownership` / `bundled:kill`, or a project
    /// directory (its built component and, by default, its `fixtures/`).
    #[arg(value_name = "FILE", default_value = ".")]
    pub file: PathBuf,
    /// A directory of `*.json` fixtures (or a single fixture file); required unless FILE is a
    /// project directory.
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// The kind the policy must be; inferred from its exports when absent.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

/// How a test run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestOutcome {
    /// Every expectation held.
    Passed,
    /// At least one expectation failed, or a policy call failed.
    Failed,
    /// A fixture or the policy could not be used.
    Unusable,
}

impl TestOutcome {
    /// How the command ends.
    pub fn status(self) -> Status {
        match self {
            Self::Passed => Status::Success,
            Self::Failed => Status::Failed,
            Self::Unusable => Status::Unusable,
        }
    }

    /// The process exit status: 0, 1 or 2.
    pub fn code(self) -> u8 {
        self.status().code()
    }
}

/// Why a test run could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyCliError),
    /// One or more fixtures are unusable.
    #[error("{}", .0.iter().map(|e| nomad_plugin::error_chain(e)).collect::<Vec<_>>().join("\n"))]
    Fixtures(Vec<FixtureError>),
    /// No fixtures were named and FILE is not a project directory.
    #[error("no fixtures: pass --fixtures DIR (or a project directory as FILE)")]
    NoFixtures,
    /// The report could not be written.
    #[error("writing the report")]
    Write(#[from] io::Error),
}

impl TestArgs {
    /// Runs against stdout; errors go to stderr.
    pub fn execute(&self) -> CommandResult {
        let stdout = io::stdout();
        match run(self, &mut stdout.lock()) {
            Ok(outcome) => Ok(outcome.status()),
            Err(TestError::Policy(e)) => Err(super::check::refused("test", &self.file, e)),
            Err(e) => Err(Failure::new(
                "dockhand policy test",
                e,
                TestOutcome::Unusable.status(),
            )),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Fixture file name.
    pub fixture: String,
    /// Container ID.
    pub container: String,
    /// First container name, without the `/`.
    pub name: String,
    /// The verdict or action, rendered.
    pub result: String,
    /// The policy's reason (or the call's error).
    pub reason: String,
    /// The expectation, rendered, or `-`.
    pub expected: String,
    /// `Some(true)` pass, `Some(false)` fail, `None` not judged.
    pub pass: Option<bool>,
}

/// Loads the policy and every fixture, evaluates, writes the table.
pub fn run(args: &TestArgs, out: &mut dyn Write) -> Result<TestOutcome, TestError> {
    let source = PolicySource::open(&args.file)?;
    let engine = OfflineEngine::start()?;
    let policy = engine.load(&source, args.kind.map(PolicyKind::from))?;
    let fixtures_dir = match (
        &args.fixtures,
        super::project::resolve_component(&args.file),
    ) {
        (Some(dir), _) => dir.clone(),
        (None, Ok((_, Some(project)))) => project.fixtures(),
        (None, _) => return Err(TestError::NoFixtures),
    };
    let fixtures = read_fixtures(&fixtures_dir)?;
    let default_ownership = match policy.kind() {
        PolicyKind::Kill => Some(engine.load(
            &PolicySource::open(Path::new("bundled:ownership"))?,
            Some(PolicyKind::Ownership),
        )?),
        PolicyKind::Ownership => None,
    };
    writeln!(
        out,
        "policy {} ({} {} {}, sha256 {})",
        source.label,
        policy.kind(),
        policy.info().name,
        policy.info().version,
        policy.digest_hex()
    )?;
    let mut rows = Vec::new();
    for (path, fixture) in &fixtures {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        rows.extend(evaluate(
            &policy,
            default_ownership.as_ref(),
            &name,
            fixture,
        ));
    }
    render(&rows, out)?;
    Ok(if rows.iter().any(|r| r.pass == Some(false)) {
        TestOutcome::Failed
    } else {
        TestOutcome::Passed
    })
}

fn read_fixtures(dir: &Path) -> Result<Vec<(PathBuf, Fixture)>, TestError> {
    let files = fixture_files(dir).map_err(|e| TestError::Fixtures(vec![e]))?;
    let mut fixtures = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match Fixture::read(&file) {
            Ok(f) => fixtures.push((file, f)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(fixtures)
    } else {
        Err(TestError::Fixtures(errors))
    }
}

/// Evaluates one fixture into report rows.
pub fn evaluate(
    policy: &LoadedPolicy,
    default_ownership: Option<&LoadedPolicy>,
    fixture_name: &str,
    fixture: &Fixture,
) -> Vec<Row> {
    let ctx = fixture.context.to_eval_context();
    let snapshots: Vec<ContainerSnapshot> =
        fixture.containers.iter().map(|c| c.to_snapshot()).collect();
    let results: Vec<Evaluated> = match policy.kind() {
        PolicyKind::Ownership => classify_like_reconciler(policy, &ctx, &snapshots)
            .into_iter()
            .map(|r| {
                r.map(|v| {
                    (
                        render_ownership(&v.ownership),
                        v.reason.clone(),
                        Some(Answer::Verdict(v)),
                    )
                })
            })
            .collect(),
        PolicyKind::Kill => decide_all(policy, default_ownership, fixture, &ctx, &snapshots),
    };
    fixture
        .containers
        .iter()
        .zip(results)
        .map(|(c, result)| {
            let expectation = fixture.expect.get(&c.id);
            let (result, reason, pass) = match result {
                Ok((shown, reason, answer)) => {
                    let pass = expectation.and_then(|e| judge(policy.kind(), e, answer.as_ref()));
                    (shown, reason, pass)
                }
                Err(error) => (
                    "ERROR".to_owned(),
                    error,
                    expectation
                        .and_then(|e| judge(policy.kind(), e, None))
                        .map(|_| false),
                ),
            };
            Row {
                fixture: fixture_name.to_owned(),
                container: c.id.clone(),
                name: c
                    .names
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                result,
                reason,
                expected: expectation
                    .map_or_else(|| "-".to_owned(), |e| render_expected(policy.kind(), e)),
                pass,
            }
        })
        .collect()
}

/// Per container: (rendered answer, reason, the answer) or the call's error.
type Evaluated = Result<(String, String, Option<Answer>), String>;

enum Answer {
    Verdict(Verdict),
    Action(Action),
}

/// Classifies like the reconciler: without env, then with env for the
/// `need-inspect` answers whose snapshot has one. One result per snapshot.
pub fn classify_like_reconciler(
    policy: &LoadedPolicy,
    ctx: &EvalContext,
    snapshots: &[ContainerSnapshot],
) -> Vec<Result<Verdict, String>> {
    let listed: Vec<ContainerSnapshot> = snapshots
        .iter()
        .map(|s| ContainerSnapshot {
            env: None,
            ..s.clone()
        })
        .collect();
    let mut results = in_batches(&listed, |batch| policy.classify(ctx, batch));
    let retry: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            matches!(r, Ok(v) if v.ownership == Ownership::NeedInspect)
                && snapshots[*i].env.is_some()
        })
        .map(|(i, _)| i)
        .collect();
    let inspected: Vec<ContainerSnapshot> = retry.iter().map(|&i| snapshots[i].clone()).collect();
    let second = in_batches(&inspected, |batch| policy.classify(ctx, batch));
    for (i, r) in retry.into_iter().zip(second) {
        results[i] = r.map(|v| match v.ownership {
            Ownership::NeedInspect => Verdict {
                ownership: Ownership::Unknown,
                reason: format!("need-inspect again after inspect: {}", v.reason),
            },
            _ => v,
        });
    }
    results
}

fn decide_all(
    policy: &LoadedPolicy,
    default_ownership: Option<&LoadedPolicy>,
    fixture: &Fixture,
    ctx: &EvalContext,
    snapshots: &[ContainerSnapshot],
) -> Vec<Evaluated> {
    let needs_default = fixture.containers.iter().any(|c| c.ownership.is_none());
    let computed = match (needs_default, default_ownership) {
        (true, Some(own)) => classify_like_reconciler(own, ctx, snapshots),
        _ => Vec::new(),
    };
    let ownerships: Vec<Result<Ownership, String>> = fixture
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| match &c.ownership {
            Some(o) => Ok(o.clone()),
            None => computed
                .get(i)
                .cloned()
                .unwrap_or_else(|| Err("no ownership given and no default ownership policy".into()))
                .map(|v| v.ownership)
                .map_err(|e| format!("default ownership policy failed: {e}")),
        })
        .collect();
    let candidates: Vec<(usize, Candidate<'_>)> = ownerships
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            o.as_ref().ok().map(|o| {
                (
                    i,
                    Candidate {
                        container: &snapshots[i],
                        ownership: o,
                    },
                )
            })
        })
        .collect();
    let batch: Vec<Candidate<'_>> = candidates.iter().map(|(_, c)| *c).collect();
    let actions = in_batches(&batch, |b| policy.decide(ctx, b));
    let mut results: Vec<Evaluated> = ownerships
        .iter()
        .map(|o| o.clone().map(|_| (String::new(), String::new(), None)))
        .collect();
    for ((i, cand), action) in candidates.into_iter().zip(actions) {
        results[i] = action.map(|a| {
            (
                format!(
                    "{} [{}]",
                    render_action(&a.kind),
                    render_ownership(cand.ownership)
                ),
                a.reason.clone(),
                Some(Answer::Action(a)),
            )
        });
    }
    results
}

/// Calls `f` on batches of at most [`MAX_CONTAINERS_PER_BATCH`]; like the
/// reconciler, a batch whose input is too large for one call is split in
/// halves, and any other failed batch gives its error to each of its items.
fn in_batches<I, O>(
    items: &[I],
    f: impl Fn(&[I]) -> Result<Vec<O>, EvalError>,
) -> Vec<Result<O, String>> {
    let mut out = Vec::with_capacity(items.len());
    for batch in items.chunks(MAX_CONTAINERS_PER_BATCH) {
        for (range, answer) in split_to_fit(batch, &f) {
            match answer {
                Ok(answers) => out.extend(answers.into_iter().map(Ok)),
                Err(e) => {
                    let message = format!("policy call failed ({}): {e}", e.kind());
                    out.extend(range.map(|_| Err(message.clone())));
                }
            }
        }
    }
    out
}

fn judge(kind: PolicyKind, e: &Expectation, answer: Option<&Answer>) -> Option<bool> {
    match kind {
        PolicyKind::Ownership => {
            if e.ownership.is_none() && e.alloc_id.is_none() {
                return None;
            }
            let Some(Answer::Verdict(v)) = answer else {
                return Some(false);
            };
            let kind_ok = e
                .ownership
                .is_none_or(|k| k.name() == ownership_kind(&v.ownership));
            let alloc_ok = e.alloc_id.as_ref().is_none_or(
                |want| matches!(&v.ownership, Ownership::Owned { alloc_id } if alloc_id == want),
            );
            Some(kind_ok && alloc_ok)
        }
        PolicyKind::Kill => {
            let want = e.action?;
            let Some(Answer::Action(a)) = answer else {
                return Some(false);
            };
            Some(want.name() == action_kind(&a.kind))
        }
    }
}

fn ownership_kind(o: &Ownership) -> &'static str {
    match o {
        Ownership::Owned { .. } => "owned",
        Ownership::NotNomad => "not-nomad",
        Ownership::Unknown => "unknown",
        Ownership::NeedInspect => "need-inspect",
    }
}

fn action_kind(a: &ActionKind) -> &'static str {
    match a {
        ActionKind::Ignore => "ignore",
        ActionKind::Stop { .. } => "stop",
        ActionKind::Kill { .. } => "kill",
        ActionKind::Remove { .. } => "remove",
    }
}

fn render_ownership(o: &Ownership) -> String {
    match o {
        Ownership::Owned { alloc_id } => format!("owned({alloc_id})"),
        other => ownership_kind(other).to_owned(),
    }
}

fn render_action(a: &ActionKind) -> String {
    match a {
        ActionKind::Ignore => "ignore".to_owned(),
        ActionKind::Stop {
            signal,
            timeout,
            then_remove,
        } => format!(
            "stop {signal} {}ms{}",
            timeout.as_millis(),
            if *then_remove { " +remove" } else { "" }
        ),
        ActionKind::Kill { signal } => format!("kill {signal}"),
        ActionKind::Remove { force } => {
            format!("remove{}", if *force { " (force)" } else { "" })
        }
    }
}

fn render_expected(kind: PolicyKind, e: &Expectation) -> String {
    let shown = match kind {
        PolicyKind::Ownership => match (e.ownership, &e.alloc_id) {
            (Some(k), Some(a)) => format!("{}({a})", k.name()),
            (None, Some(a)) => format!("owned({a})"),
            (Some(k), None) => k.name().to_owned(),
            (None, None) => String::new(),
        },
        PolicyKind::Kill => e.action.map(|a| a.name().to_owned()).unwrap_or_default(),
    };
    if shown.is_empty() {
        "-".to_owned()
    } else {
        shown
    }
}

const MAX_REASON_COLUMN: usize = 60;

/// Writes the table and the summary line.
pub fn render(rows: &[Row], out: &mut dyn Write) -> io::Result<()> {
    let mut table = Table::new([
        "FIXTURE",
        "CONTAINER",
        "NAME",
        "RESULT",
        "REASON",
        "EXPECTED",
        "STATUS",
    ]);
    for r in rows {
        table.row([
            r.fixture.clone(),
            r.container.chars().take(12).collect(),
            r.name.clone(),
            r.result.clone(),
            shorten(&r.reason, MAX_REASON_COLUMN),
            r.expected.clone(),
            match r.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
            .to_owned(),
        ]);
    }
    write!(out, "{}", table.render())?;
    let passed = rows.iter().filter(|r| r.pass == Some(true)).count();
    let failed = rows.iter().filter(|r| r.pass == Some(false)).count();
    writeln!(
        out,
        "\n{} containers: {passed} passed, {failed} failed, {} without expectation",
        rows.len(),
        rows.len() - passed - failed
    )
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each item with itself, refusing batches holding more than
    /// `fits` bytes in all, as the policy host refuses oversized input.
    fn sized_call(fits: usize) -> impl Fn(&[usize]) -> Result<Vec<usize>, EvalError> {
        move |batch| {
            let bytes: usize = batch.iter().sum();
            if bytes > fits {
                return Err(EvalError::InputTooLarge { bytes, max: fits });
            }
            Ok(batch.to_vec())
        }
    }

    #[test]
    fn batches_too_large_are_split_and_answers_keep_their_order() {
        let items: Vec<usize> = (1..=9).collect();
        let out = in_batches(&items, sized_call(10));
        let answers: Vec<usize> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, items);
    }

    #[test]
    fn an_item_too_large_on_its_own_fails_alone() {
        let items = vec![1, 2, 50, 3];
        let out = in_batches(&items, sized_call(10));
        assert_eq!(out[0], Ok(1));
        assert_eq!(out[1], Ok(2));
        let error = out[2].as_ref().unwrap_err();
        assert!(error.contains("batch-too-large"), "{error}");
        assert_eq!(out[3], Ok(3));
    }
}
