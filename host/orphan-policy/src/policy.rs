//! A loaded policy and its calls: one fresh, limited `Store` per batch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use crate::bindings::{KillPre, OwnershipPre, wit};
use crate::convert::OutputError;
use crate::decision::{Action, PolicyInfo, PolicyKind, Verdict};
use crate::engine::{Compiled, EngineShared};
use crate::guest_log::{GuestLog, LogRateLimiter, LogStats};
use crate::limits::{
    self, MAX_BATCH_INPUT_BYTES, MAX_CONTAINERS_PER_BATCH, MAX_MEMORY_LIMIT, hostcall_budget,
};
use crate::pack::{self, TooLarge};
use crate::sandbox::{HostState, PolicyLimiter};
use crate::selection::InputSelection;
use crate::snapshot::{Candidate, ContainerSnapshot, EvalContext};

/// Why a call produced no usable answer. Whatever the variant, the caller
/// takes no action for the batch.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// `classify` on a kill policy or `decide` on an ownership policy.
    #[error("{call} called on a {policy} policy")]
    WrongKind {
        policy: PolicyKind,
        call: &'static str,
    },
    /// More than [`MAX_CONTAINERS_PER_BATCH`] inputs.
    #[error("batch of {count} containers exceeds the limit of {max}")]
    BatchTooLarge { count: usize, max: usize },
    /// More than [`MAX_BATCH_INPUT_BYTES`] of input strings.
    #[error("batch input of at least {bytes} bytes exceeds the limit of {max}")]
    InputTooLarge { bytes: usize, max: usize },
    /// All evaluation slots stayed busy.
    #[error("no evaluation slot became free within {waited:?}")]
    Busy { waited: Duration },
    /// The guest ran past its deadline.
    #[error("policy exceeded its deadline of {deadline:?}")]
    DeadlineExceeded { deadline: Duration },
    /// The guest tried to grow memory past its limit.
    #[error("policy exceeded its memory limit of {limit} bytes")]
    MemoryLimitExceeded { limit: usize },
    /// The answer (or one log message) would have made the host copy more
    /// than the call's hostcall budget out of guest memory
    /// ([`hostcall_budget`](crate::limits::hostcall_budget)); refused before
    /// copying.
    #[error(
        "policy answer too large: it asks the host to copy more than the {budget} bytes \
         allowed for a batch of {inputs} (answer or log message)"
    )]
    AnswerTooLarge { inputs: usize, budget: usize },
    /// The guest exhausted its Wasm stack (runaway recursion).
    #[error("policy overflowed its stack")]
    StackOverflow,
    /// The guest trapped (a Rust panic shows as `unreachable`).
    #[error("policy trapped: {message}")]
    Trap { message: String },
    /// Instantiation or the call failed otherwise (for example, an answer
    /// that could not be read out of guest memory).
    #[error("policy call failed: {message}")]
    Failed { message: String },
    /// The answer does not have one entry per input.
    #[error("policy returned {got} answers for {expected} inputs")]
    OutputCount { expected: usize, got: usize },
    /// One entry of the answer is invalid.
    #[error("answer #{index} is invalid")]
    MalformedOutput {
        index: usize,
        #[source]
        error: OutputError,
    },
}

impl EvalError {
    /// A short stable name for metrics and audit lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WrongKind { .. } => "wrong-kind",
            Self::BatchTooLarge { .. } | Self::InputTooLarge { .. } => "batch-too-large",
            Self::Busy { .. } => "busy",
            Self::DeadlineExceeded { .. } => "deadline",
            Self::MemoryLimitExceeded { .. } => "memory",
            Self::AnswerTooLarge { .. } => "answer-too-large",
            Self::StackOverflow => "stack-overflow",
            Self::Trap { .. } => "trap",
            Self::Failed { .. } => "failed",
            Self::OutputCount { .. } => "output-count",
            Self::MalformedOutput { .. } => "malformed-output",
        }
    }
}

/// Where a loaded policy's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled by this load.
    Compiled,
    /// Already compiled by this engine (same sha256).
    Memory,
    /// Read from the on-disk cache.
    DiskCache,
}

/// A call's answer with what it cost.
#[derive(Debug, Clone)]
pub struct Evaluation<T> {
    pub output: T,
    /// Guest log lines emitted and dropped.
    pub log: LogStats,
    /// Wall time from store creation to the validated answer.
    pub elapsed: Duration,
}

impl<T> Evaluation<Vec<T>> {
    /// The answer to an empty batch, given without calling the policy.
    fn empty() -> Self {
        Self {
            output: Vec::new(),
            log: LogStats::default(),
            elapsed: Duration::ZERO,
        }
    }
}

pub(crate) enum PolicyPre {
    Ownership(OwnershipPre<HostState>),
    Kill(KillPre<HostState>),
}

impl std::fmt::Debug for PolicyPre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ownership(_) => "PolicyPre::Ownership",
            Self::Kill(_) => "PolicyPre::Kill",
        })
    }
}

#[derive(Debug)]
struct PolicyShared {
    engine: Arc<EngineShared>,
    /// Keeps the compiled component in the engine's memory cache, and holds
    /// this component's share of the evaluation slots.
    compiled: Arc<Compiled>,
    kind: PolicyKind,
    digest: [u8; 32],
    /// Short digest used to tag the policy's log lines.
    log_name: Arc<str>,
    info: PolicyInfo,
    pre: PolicyPre,
    source: CompileSource,
    log_limiter: Arc<Mutex<LogRateLimiter>>,
    /// This policy's memory limit, derived at load from what it declares
    /// (see [`limits::policy_memory_limit`]).
    memory_limit: usize,
    /// Most inputs per call (see [`limits::policy_batch_size`]); larger
    /// batches are split into several calls.
    batch_size: usize,
}

/// A validated, pre-instantiated policy. Cheap to clone; `Send + Sync`, so
/// a reconciler can call it from `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    shared: Arc<PolicyShared>,
    /// What batches carry: the policy's declared `reads`.
    reads: Arc<InputSelection>,
}

impl LoadedPolicy {
    pub(crate) fn new(
        engine: Arc<EngineShared>,
        compiled: Arc<Compiled>,
        kind: PolicyKind,
        digest: [u8; 32],
        pre: PolicyPre,
        source: CompileSource,
        component_bytes: usize,
    ) -> Result<Self, EvalError> {
        let mut shared = PolicyShared {
            engine,
            compiled,
            kind,
            digest,
            log_name: Arc::from(hex::encode(&digest[..8])),
            // Filled in from `describe()` below, before the value is shared.
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                contract_version: String::new(),
                reads: InputSelection::all(),
            },
            pre,
            source,
            log_limiter: Arc::new(Mutex::new(LogRateLimiter::new())),
            // Probe under the ceiling first: instantiating tells what the
            // policy's memories start with, from which its limit follows.
            memory_limit: MAX_MEMORY_LIMIT,
            batch_size: MAX_CONTAINERS_PER_BATCH,
        };
        let probe = Self::run(&shared, 0, |store| {
            match &shared.pre {
                PolicyPre::Ownership(pre) => pre.instantiate(&mut *store).map(drop),
                PolicyPre::Kill(pre) => pre.instantiate(&mut *store).map(drop),
            }?;
            Ok(store.data().limiter.largest_initial_memory)
        })?;
        shared.memory_limit =
            limits::policy_memory_limit(shared.engine.config.memory_limit, probe.output).ok_or(
                EvalError::MemoryLimitExceeded {
                    limit: MAX_MEMORY_LIMIT,
                },
            )?;
        shared.batch_size = limits::policy_batch_size(component_bytes);
        let raw = Self::run(&shared, 0, |store| match &shared.pre {
            PolicyPre::Ownership(pre) => pre.instantiate(&mut *store)?.call_describe(&mut *store),
            PolicyPre::Kill(pre) => pre.instantiate(&mut *store)?.call_describe(&mut *store),
        })?;
        shared.info = PolicyInfo::try_from(raw.output)
            .map_err(|error| EvalError::MalformedOutput { index: 0, error })?;
        Ok(Self {
            reads: Arc::new(shared.info.reads.clone()),
            shared: Arc::new(shared),
        })
    }

    /// sha256 of the component bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.shared.digest
    }

    /// [`digest`](Self::digest) in lower-case hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.shared.digest)
    }

    /// What the policy's `describe()` returned at load time.
    pub fn info(&self) -> &PolicyInfo {
        &self.shared.info
    }

    /// This policy, sent every input whatever it declared it reads: for
    /// measuring what the selection saves.
    #[doc(hidden)]
    pub fn sent_all_inputs(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            reads: Arc::new(InputSelection::all()),
        }
    }

    /// Which world it implements.
    pub fn kind(&self) -> PolicyKind {
        self.shared.kind
    }

    /// The memory limit each call of this policy runs under.
    pub fn memory_limit(&self) -> usize {
        self.shared.memory_limit
    }

    /// Most inputs one call carries; `classify` and `decide` split larger
    /// batches into calls of this size, each with its own deadline.
    pub fn batch_size(&self) -> usize {
        self.shared.batch_size
    }

    /// Whether this load compiled, or hit the memory or disk cache.
    pub fn compile_source(&self) -> CompileSource {
        self.shared.source
    }

    /// Classifies a batch: one verdict per container, in order.
    pub fn classify(
        &self,
        ctx: &EvalContext,
        containers: &[ContainerSnapshot],
    ) -> Result<Vec<Verdict>, EvalError> {
        self.classify_with_stats(ctx, containers).map(|e| e.output)
    }

    /// [`classify`](Self::classify), also reporting log counts and time.
    pub fn classify_with_stats(
        &self,
        ctx: &EvalContext,
        containers: &[ContainerSnapshot],
    ) -> Result<Evaluation<Vec<Verdict>>, EvalError> {
        let PolicyPre::Ownership(pre) = &self.shared.pre else {
            return Err(EvalError::WrongKind {
                policy: self.shared.kind,
                call: "classify",
            });
        };
        check_count(containers.len())?;
        if containers.is_empty() {
            return Ok(Evaluation::empty());
        }
        if containers.len() > self.shared.batch_size {
            return in_calls_of(containers, self.shared.batch_size, |part| {
                self.classify_with_stats(ctx, part)
            });
        }
        let batch = pack::container_batch(containers, &self.reads).map_err(too_large)?;
        let wit_ctx = wit::EvalContext::from(ctx);
        let raw = Self::run(&self.shared, containers.len(), |store| {
            pre.instantiate(&mut *store)?
                .call_classify(&mut *store, &wit_ctx, &batch)
        })?;
        validate_all(raw, containers.len())
    }

    /// Decides a batch: one action per candidate, in order.
    pub fn decide(
        &self,
        ctx: &EvalContext,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<Action>, EvalError> {
        self.decide_with_stats(ctx, candidates).map(|e| e.output)
    }

    /// [`decide`](Self::decide), also reporting log counts and time.
    pub fn decide_with_stats(
        &self,
        ctx: &EvalContext,
        candidates: &[Candidate<'_>],
    ) -> Result<Evaluation<Vec<Action>>, EvalError> {
        let PolicyPre::Kill(pre) = &self.shared.pre else {
            return Err(EvalError::WrongKind {
                policy: self.shared.kind,
                call: "decide",
            });
        };
        check_count(candidates.len())?;
        if candidates.is_empty() {
            return Ok(Evaluation::empty());
        }
        if candidates.len() > self.shared.batch_size {
            return in_calls_of(candidates, self.shared.batch_size, |part| {
                self.decide_with_stats(ctx, part)
            });
        }
        let batch = pack::candidate_batch(candidates, &self.reads).map_err(too_large)?;
        let wit_ctx = wit::EvalContext::from(ctx);
        let raw = Self::run(&self.shared, candidates.len(), |store| {
            pre.instantiate(&mut *store)?
                .call_decide(&mut *store, &wit_ctx, &batch)
        })?;
        validate_all(raw, candidates.len())
    }

    /// Creates a store and instantiates the policy without calling it; for
    /// benchmarking instantiation cost.
    #[doc(hidden)]
    pub fn instantiate_only(&self) -> Result<(), EvalError> {
        Self::run(&self.shared, 0, |store| match &self.shared.pre {
            PolicyPre::Ownership(pre) => pre.instantiate(&mut *store).map(drop),
            PolicyPre::Kill(pre) => pre.instantiate(&mut *store).map(drop),
        })
        .map(drop)
    }

    /// Runs `call` on `inputs` inputs in a fresh store with the memory
    /// limit, the epoch deadline, the hostcall budget and a bounded log
    /// sink, and maps failures to [`EvalError`]. Takes a slot of this
    /// component's share first, then an engine slot.
    fn run<R>(
        shared: &PolicyShared,
        inputs: usize,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<Evaluation<R>, EvalError> {
        let engine = &shared.engine;
        let wait = engine.config.deadline * 10;
        let until = Instant::now() + wait;
        let busy = EvalError::Busy { waited: wait };
        let _share = shared.compiled.share.acquire(wait).ok_or(busy)?;
        let left = until.saturating_duration_since(Instant::now());
        let _slot = engine
            .slots
            .acquire(left)
            .ok_or(EvalError::Busy { waited: wait })?;
        let start = Instant::now();
        let state = HostState {
            limiter: PolicyLimiter::new(shared.memory_limit),
            log: GuestLog::new(shared.log_name.clone(), shared.log_limiter.clone()),
        };
        let mut store = Store::new(&engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(engine.deadline_ticks);
        store.epoch_deadline_trap();
        // wasmtime counts every string and list it lifts out of the guest
        // (the answer, each log message) against this budget before copying.
        let budget = hostcall_budget(inputs);
        store.set_hostcall_fuel(budget);
        let result = call(&mut store);
        let elapsed = start.elapsed();
        let log = store.data().log.finish();
        match result {
            Ok(output) => Ok(Evaluation {
                output,
                log,
                elapsed,
            }),
            Err(err) => {
                let memory_exceeded = store
                    .data()
                    .limiter
                    .memory_exceeded
                    .then_some(shared.memory_limit);
                let error = classify_failure(&err, memory_exceeded, engine)
                    .unwrap_or(EvalError::AnswerTooLarge { inputs, budget });
                tracing::warn!(
                    policy = &*shared.log_name,
                    kind = error.kind(),
                    error = &error as &dyn std::error::Error,
                    "policy call failed"
                );
                tracing::debug!(policy = &*shared.log_name, detail = ?err, "policy call failure detail");
                Err(error)
            }
        }
    }
}

/// What wasmtime 48 says when a lift runs out of hostcall fuel (its error
/// type is private, so its text is all there is to recognise it by; the
/// `aliased_answers_fail_as_too_large` tests pin it).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// The failure's [`EvalError`]; `None` for an exhausted hostcall budget,
/// which the caller reports with its figures.
fn classify_failure(
    err: &wasmtime::Error,
    memory_exceeded: Option<usize>,
    engine: &EngineShared,
) -> Option<EvalError> {
    if let Some(limit) = memory_exceeded {
        return Some(EvalError::MemoryLimitExceeded { limit });
    }
    if err
        .chain()
        .any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
    {
        return None;
    }
    Some(match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => EvalError::DeadlineExceeded {
            deadline: engine.config.deadline,
        },
        Some(Trap::StackOverflow) => EvalError::StackOverflow,
        Some(trap) => EvalError::Trap {
            message: trap.to_string(),
        },
        None => EvalError::Failed {
            message: err.root_cause().to_string(),
        },
    })
}

/// One call per `size` items, answers concatenated; the first failure fails
/// the whole batch (an invalid answer is reported at its index in `items`).
fn in_calls_of<T, O>(
    items: &[T],
    size: usize,
    mut call: impl FnMut(&[T]) -> Result<Evaluation<Vec<O>>, EvalError>,
) -> Result<Evaluation<Vec<O>>, EvalError> {
    let mut all = Evaluation {
        output: Vec::with_capacity(items.len()),
        log: crate::guest_log::LogStats::default(),
        elapsed: Duration::ZERO,
    };
    for (n, part) in items.chunks(size).enumerate() {
        let answer = call(part).map_err(|e| match e {
            EvalError::MalformedOutput { index, error } => EvalError::MalformedOutput {
                index: index + n * size,
                error,
            },
            other => other,
        })?;
        all.output.extend(answer.output);
        all.log.emitted += answer.log.emitted;
        all.log.dropped += answer.log.dropped;
        all.log.truncated += answer.log.truncated;
        all.elapsed += answer.elapsed;
    }
    Ok(all)
}

fn check_count(count: usize) -> Result<(), EvalError> {
    if count > MAX_CONTAINERS_PER_BATCH {
        return Err(EvalError::BatchTooLarge {
            count,
            max: MAX_CONTAINERS_PER_BATCH,
        });
    }
    Ok(())
}

fn too_large(TooLarge { bytes }: TooLarge) -> EvalError {
    EvalError::InputTooLarge {
        bytes,
        max: MAX_BATCH_INPUT_BYTES,
    }
}

fn validate_all<W, T>(
    raw: Evaluation<Vec<W>>,
    expected: usize,
) -> Result<Evaluation<Vec<T>>, EvalError>
where
    T: TryFrom<W, Error = OutputError>,
{
    if raw.output.len() != expected {
        return Err(EvalError::OutputCount {
            expected,
            got: raw.output.len(),
        });
    }
    let output = raw
        .output
        .into_iter()
        .enumerate()
        .map(|(index, w)| {
            T::try_from(w).map_err(|error| EvalError::MalformedOutput { index, error })
        })
        .collect::<Result<_, _>>()?;
    Ok(Evaluation {
        output,
        log: raw.log,
        elapsed: raw.elapsed,
    })
}
