//! Borrowed views of a batch's inputs, lowered straight into guest memory.
//!
//! The generated bindings take owned WIT values (`wit::Container` with
//! `String`s), so calling through them means deep-copying every label, env
//! entry and mount of every snapshot on the host first, only for the canonical
//! ABI to copy each string again into the guest. These records have the same
//! component-model shape as the contract's `container` and `candidate` but
//! borrow from the domain types; wasmtime checks the shape against the
//! component's export when the typed function is looked up, so a mismatch is
//! a load-time error, never a silent misreading.
//!
//! The only per-batch host allocations left are three flat arenas (label
//! pairs, mounts, and the records themselves).

use wasmtime::component::{ComponentType, Lower};

use crate::bindings::wit;
use crate::snapshot::{Candidate, ContainerSnapshot};

/// `dockhand:policy/types.mount`, borrowed.
#[derive(ComponentType, Lower, Clone, Copy, Debug)]
#[component(record)]
pub(crate) struct MountIn<'a> {
    source: &'a str,
    destination: &'a str,
    #[component(name = "type")]
    kind: &'a str,
}

/// `dockhand:policy/types.container`, borrowed.
#[derive(ComponentType, Lower, Clone, Copy, Debug)]
#[component(record)]
pub(crate) struct ContainerIn<'a> {
    id: &'a str,
    names: &'a [String],
    image: &'a str,
    labels: &'a [(&'a str, &'a str)],
    env: Option<&'a [(String, String)]>,
    mounts: &'a [MountIn<'a>],
    #[component(name = "created-ms")]
    created_ms: i64,
    #[component(name = "started-ms")]
    started_ms: Option<i64>,
    state: wit::ContainerState,
    #[component(name = "exit-code")]
    exit_code: Option<i32>,
}

/// `dockhand:policy/types.candidate`, borrowed (the ownership is tiny and
/// converted).
#[derive(ComponentType, Lower, Clone, Debug)]
#[component(record)]
pub(crate) struct CandidateIn<'a> {
    container: ContainerIn<'a>,
    ownership: wit::Ownership,
}

/// Flattened label pairs and mounts of a batch, in input order.
#[derive(Debug, Default)]
pub(crate) struct Arena<'a> {
    labels: Vec<(&'a str, &'a str)>,
    mounts: Vec<MountIn<'a>>,
}

impl<'a> Arena<'a> {
    /// Collects the labels and mounts of `containers`.
    pub(crate) fn new<'c>(containers: impl Iterator<Item = &'c ContainerSnapshot> + Clone) -> Self
    where
        'c: 'a,
    {
        let (labels, mounts) = containers
            .clone()
            .fold((0, 0), |(l, m), c| (l + c.labels.len(), m + c.mounts.len()));
        let mut arena = Self {
            labels: Vec::with_capacity(labels),
            mounts: Vec::with_capacity(mounts),
        };
        for c in containers {
            arena
                .labels
                .extend(c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            arena.mounts.extend(c.mounts.iter().map(|m| MountIn {
                source: &m.source,
                destination: &m.destination,
                kind: &m.kind,
            }));
        }
        arena
    }

    /// The records for `containers` (the same ones, in the same order, as
    /// given to [`Arena::new`]).
    pub(crate) fn containers<'s, 'c>(
        &'s self,
        containers: impl Iterator<Item = &'c ContainerSnapshot>,
    ) -> Vec<ContainerIn<'s>>
    where
        'c: 's,
    {
        let (mut label_at, mut mount_at) = (0, 0);
        containers
            .map(|c| {
                let labels = &self.labels[label_at..label_at + c.labels.len()];
                let mounts = &self.mounts[mount_at..mount_at + c.mounts.len()];
                label_at += c.labels.len();
                mount_at += c.mounts.len();
                ContainerIn {
                    id: &c.id,
                    names: &c.names,
                    image: &c.image,
                    labels,
                    env: c.env.as_deref(),
                    mounts,
                    created_ms: c.created_ms,
                    started_ms: c.started_ms,
                    state: c.state.into(),
                    exit_code: c.exit_code,
                }
            })
            .collect()
    }
}

/// The candidate records for `candidates`, borrowing from `arena` (built
/// from the same candidates' containers).
pub(crate) fn candidates<'s>(
    arena: &'s Arena<'_>,
    candidates: &'s [Candidate],
) -> Vec<CandidateIn<'s>> {
    arena
        .containers(candidates.iter().map(|c| &c.container))
        .into_iter()
        .zip(candidates)
        .map(|(container, c)| CandidateIn {
            container,
            ownership: (&c.ownership).into(),
        })
        .collect()
}
