//! A batch's inputs in the contract's packed form: every string of every
//! container in one string table, the records holding indices.
//!
//! Lowering a `string` into a guest costs a call into the guest's allocator;
//! with ~120 strings per fully inspected snapshot that call dominated a
//! batch. Packed, a batch is lowered with two string-sized copies (the text
//! and its end offsets) plus flat records, whatever the number of labels.
//! Only what the policy declared it reads (its `input-selection`) is packed.

use crate::bindings::wit;
use crate::decision::Ownership;
use crate::limits::MAX_BATCH_INPUT_BYTES;
use crate::selection::{InputSelection, KeySelection, MountSelection};
use crate::snapshot::{Candidate, ContainerSnapshot, ContainerState, EvalContext};

/// The packed input is larger than [`MAX_BATCH_INPUT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// Bytes packed when the limit was passed (a lower bound of the batch's input).
    pub bytes: usize,
}

/// Builds one batch's string table.
#[derive(Debug, Default)]
pub(crate) struct StringTable {
    text: String,
    ends: Vec<u32>,
}

impl StringTable {
    /// Appends `s`; returns its index.
    fn push(&mut self, s: &str) -> u32 {
        self.text.push_str(s);
        // The caller stops at `MAX_BATCH_INPUT_BYTES` (far below 4 GiB), so
        // both the offset and the index fit a u32.
        self.ends.push(self.text.len() as u32);
        self.ends.len() as u32 - 1
    }

    /// Appends `items` as one run.
    fn run<'s>(&mut self, items: impl IntoIterator<Item = &'s str>) -> wit::StrRun {
        let first = self.ends.len() as u32;
        for s in items {
            self.push(s);
        }
        self.run_from(first)
    }

    /// The run of the strings appended since index `first`.
    fn run_from(&self, first: u32) -> wit::StrRun {
        wit::StrRun {
            first,
            count: self.ends.len() as u32 - first,
        }
    }

    /// Appends an empty string; returns its index.
    fn push_empty(&mut self) -> u32 {
        self.ends.push(self.text.len() as u32);
        self.ends.len() as u32 - 1
    }

    /// A run of no strings.
    fn empty_run(&self) -> wit::StrRun {
        self.run_from(self.ends.len() as u32)
    }

    /// Appends the strings of `c` that `reads` selects; returns its record.
    fn container(&mut self, c: &ContainerSnapshot, reads: &InputSelection) -> wit::Container {
        let id = self.push(&c.id);
        let names = if reads.names {
            self.run(c.names.iter().map(String::as_str))
        } else {
            self.empty_run()
        };
        let image = if reads.image {
            self.push(&c.image)
        } else {
            self.push_empty()
        };
        let labels = self.labels(c, &reads.labels);
        let env = c.env.as_ref().map(|env| self.env(env, &reads.env));
        let mounts = match reads.mounts {
            MountSelection::None => self.empty_run(),
            MountSelection::Destinations => {
                let first = self.ends.len() as u32;
                for m in &c.mounts {
                    self.push_empty();
                    self.push(&m.destination);
                    self.push_empty();
                }
                self.run_from(first)
            }
            MountSelection::All => self.run(
                c.mounts
                    .iter()
                    .flat_map(|m| [m.source.as_str(), m.destination.as_str(), m.kind.as_str()]),
            ),
        };
        wit::Container {
            id,
            names,
            image,
            labels,
            env,
            mounts,
            created_ms: c.created_ms,
            started_ms: c.started_ms,
            state: c.state.into(),
            exit_code: c.exit_code,
        }
    }

    /// The selected environment: all of it as Docker lists it, or each
    /// selected variable once with its last value, sorted by name.
    fn env(&mut self, env: &[(String, String)], selection: &KeySelection) -> wit::StrRun {
        fn pair((k, v): &(String, String)) -> [&str; 2] {
            [k.as_str(), v.as_str()]
        }
        match selection {
            KeySelection::All => self.run(env.iter().flat_map(pair)),
            KeySelection::Only { keys, prefixes } if prefixes.is_empty() => self.run(
                // Sorted keys, each looked up from the end (last value wins).
                keys.iter()
                    .filter_map(|k| env.iter().rev().find(|(name, _)| name == k))
                    .flat_map(pair),
            ),
            only => {
                let mut selected: Vec<&(String, String)> =
                    env.iter().filter(|(k, _)| only.matches(k)).collect();
                // Stable: equal names keep Docker's order, so the last of a
                // run is the value that wins.
                selected.sort_by(|a, b| a.0.cmp(&b.0));
                let last_of_each = selected
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| selected.get(i + 1).is_none_or(|next| next.0 != e.0))
                    .map(|(_, e)| *e);
                let strings: Vec<&str> = last_of_each.flat_map(pair).collect();
                self.run(strings)
            }
        }
    }

    /// The selected labels of `c`, in key order as the contract promises (a
    /// BTreeMap iterates in key order, and selected keys are sorted).
    fn labels(&mut self, c: &ContainerSnapshot, selection: &KeySelection) -> wit::StrRun {
        fn pair<'s>((k, v): (&'s String, &'s String)) -> [&'s str; 2] {
            [k.as_str(), v.as_str()]
        }
        match selection {
            KeySelection::All => self.run(c.labels.iter().flat_map(pair)),
            // Exact keys only: look each one up instead of scanning.
            KeySelection::Only { keys, prefixes } if prefixes.is_empty() => self.run(
                keys.iter()
                    .filter_map(|k| c.labels.get_key_value(k.as_str()))
                    .flat_map(pair),
            ),
            only => self.run(
                c.labels
                    .iter()
                    .filter(|(k, _)| only.matches(k))
                    .flat_map(pair),
            ),
        }
    }

    /// Packs every container, refusing the batch as soon as its text passes
    /// [`MAX_BATCH_INPUT_BYTES`].
    fn pack_all<'c, T>(
        &mut self,
        items: &'c [T],
        reads: &InputSelection,
        container: impl Fn(&'c T) -> &'c ContainerSnapshot,
    ) -> Result<Vec<wit::Container>, TooLarge> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.container(container(item), reads));
            if self.text.len() > MAX_BATCH_INPUT_BYTES {
                return Err(TooLarge {
                    bytes: self.text.len(),
                });
            }
        }
        Ok(out)
    }

    fn finish(self) -> wit::StringTable {
        wit::StringTable {
            text: self.text,
            ends: self.ends,
        }
    }
}

#[cfg(test)]
/// Number of strings `c` puts into the table.
fn string_count(c: &ContainerSnapshot) -> usize {
    2 + c.names.len()
        + 2 * c.labels.len()
        + c.env.as_ref().map_or(0, |env| 2 * env.len())
        + 3 * c.mounts.len()
}

/// The `classify` input for `containers`, with what `reads` selects.
pub(crate) fn container_batch(
    containers: &[ContainerSnapshot],
    reads: &InputSelection,
) -> Result<wit::ContainerBatch, TooLarge> {
    let mut table = StringTable::default();
    let containers = table.pack_all(containers, reads, |c| c)?;
    Ok(wit::ContainerBatch {
        strings: table.finish(),
        containers,
    })
}

/// The `decide` input for `candidates`, with what `reads` selects.
pub(crate) fn candidate_batch(
    candidates: &[Candidate<'_>],
    reads: &InputSelection,
) -> Result<wit::CandidateBatch, TooLarge> {
    let mut table = StringTable::default();
    let containers = table.pack_all(candidates, reads, |c| c.container)?;
    let candidates = containers
        .into_iter()
        .zip(candidates)
        .map(|(container, c)| wit::Candidate {
            container,
            ownership: c.ownership.into(),
        })
        .collect();
    Ok(wit::CandidateBatch {
        strings: table.finish(),
        candidates,
    })
}

impl From<&EvalContext> for wit::EvalContext {
    fn from(ctx: &EvalContext) -> Self {
        Self {
            now_ms: ctx.now_ms,
            node: wit::NodeInfo {
                id: ctx.node.id.clone(),
                name: ctx.node.name.clone(),
                datacenter: ctx.node.datacenter.clone(),
            },
            driver_name: ctx.driver_name.clone(),
            creation_grace_ms: ctx.creation_grace_ms,
        }
    }
}

impl From<ContainerState> for wit::ContainerState {
    fn from(state: ContainerState) -> Self {
        match state {
            ContainerState::Created => Self::Created,
            ContainerState::Running => Self::Running,
            ContainerState::Paused => Self::Paused,
            ContainerState::Restarting => Self::Restarting,
            ContainerState::Removing => Self::Removing,
            ContainerState::Exited => Self::Exited,
            ContainerState::Dead => Self::Dead,
            ContainerState::Unknown => Self::Unknown,
        }
    }
}

impl From<&Ownership> for wit::Ownership {
    fn from(o: &Ownership) -> Self {
        match o {
            Ownership::Owned { alloc_id } => Self::Owned(alloc_id.clone()),
            Ownership::NotNomad => Self::NotNomad,
            Ownership::Unknown => Self::Unknown,
            Ownership::NeedInspect => Self::NeedInspect,
        }
    }
}

#[cfg(test)]
mod tests;
