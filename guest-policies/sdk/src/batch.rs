//! Borrowed views of a batch.
//!
//! The contract packs every string of a batch into one [`StringTable`] and
//! has containers refer to them by index (one copy into the policy instead of
//! one allocation per string). These views give the strings back as `&str`
//! without copying:
//!
//! ```ignore
//! fn classify(ctx: EvalContext, batch: ContainerBatch) -> Vec<Verdict> {
//!     batch.containers().map(|c| match c.label(labels::ALLOC_ID) {
//!         Some(alloc) => Verdict::owned(alloc, "alloc_id label"),
//!         None => Verdict::not_nomad("no alloc_id label"),
//!     }).collect()
//! }
//! ```
//!
//! An index outside the table is a broken host, not bad policy input: the
//! accessors panic, the policy traps, and the host takes no action for the
//! batch.

use std::cmp::Ordering;

use crate::types::{
    CandidateBatch, Container, ContainerBatch, ContainerState, Ownership, StrRun, StringTable,
};

/// The strings of one batch.
#[derive(Clone, Copy, Debug)]
pub struct Strings<'a> {
    text: &'a str,
    ends: &'a [u32],
}

impl<'a> Strings<'a> {
    /// A view of `table`.
    pub fn new(table: &'a StringTable) -> Self {
        Self {
            text: &table.text,
            ends: &table.ends,
        }
    }

    /// Number of strings in the table.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the table holds no string.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `index`, or `None` if the table has no such string.
    pub fn try_get(&self, index: u32) -> Option<&'a str> {
        let i = usize::try_from(index).ok()?;
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        self.text.get(start..end)
    }

    /// String `index`.
    ///
    /// # Panics
    /// If the table has no such string (the host broke the contract).
    pub fn get(&self, index: u32) -> &'a str {
        match self.try_get(index) {
            Some(s) => s,
            None => panic!(
                "string #{index} is not in the batch's table of {} strings",
                self.len()
            ),
        }
    }

    /// The strings of `run`, in order.
    pub fn run(&self, run: StrRun) -> Run<'a> {
        Run {
            strings: *self,
            next: run.first,
            end: run.first.saturating_add(run.count),
        }
    }
}

/// The strings of a [`StrRun`], in order.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    strings: Strings<'a>,
    next: u32,
    end: u32,
}

impl<'a> Iterator for Run<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.strings.get(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.next) as usize;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Run<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.next < self.end).then(|| {
            self.end -= 1;
            self.strings.get(self.end)
        })
    }
}

impl ExactSizeIterator for Run<'_> {}

/// `(key, value)` pairs of a run (labels or environment), in order.
#[derive(Clone, Debug)]
pub struct Pairs<'a> {
    strings: Strings<'a>,
    first: u32,
    /// Number of pairs.
    len: u32,
    next: u32,
    end: u32,
}

impl<'a> Pairs<'a> {
    fn new(strings: Strings<'a>, run: StrRun) -> Self {
        let len = run.count / 2;
        Self {
            strings,
            first: run.first,
            len,
            next: 0,
            end: len,
        }
    }

    fn pair(&self, i: u32) -> (&'a str, &'a str) {
        let at = self.first + 2 * i;
        (self.strings.get(at), self.strings.get(at + 1))
    }

    /// Value of the last pair named `key` (linear scan).
    pub fn find_last(&self, key: &str) -> Option<&'a str> {
        (0..self.len)
            .rev()
            .map(|i| self.pair(i))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Value of the pair named `key`, bisecting: only for runs sorted by key
    /// (labels are).
    fn bisect(&self, key: &str) -> Option<&'a str> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, v) = self.pair(mid);
            match k.as_bytes().cmp(key.as_bytes()) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(v),
            }
        }
        None
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.pair(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.end - self.next) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Pairs<'_> {}

/// A mount, borrowed from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountRef<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    /// `bind`, `volume`, `tmpfs`, ...
    pub kind: &'a str,
}

/// One container of a batch, its strings resolved lazily.
#[derive(Clone, Copy, Debug)]
pub struct ContainerRef<'a> {
    strings: Strings<'a>,
    raw: &'a Container,
}

impl<'a> ContainerRef<'a> {
    /// A view of `raw`, whose strings are in `strings`.
    pub fn new(strings: Strings<'a>, raw: &'a Container) -> Self {
        Self { strings, raw }
    }

    /// The record as the contract carries it (indices into the table).
    pub fn raw(&self) -> &'a Container {
        self.raw
    }

    /// Full container ID.
    pub fn id(&self) -> &'a str {
        self.strings.get(self.raw.id)
    }

    /// Names as Docker lists them, each with its leading `/`.
    pub fn names(&self) -> Run<'a> {
        self.strings.run(self.raw.names)
    }

    /// Image reference the container was created from.
    pub fn image(&self) -> &'a str {
        self.strings.get(self.raw.image)
    }

    /// Labels as `(key, value)` pairs, sorted by key.
    pub fn labels(&self) -> Pairs<'a> {
        Pairs::new(self.strings, self.raw.labels)
    }

    /// Value of label `key`.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels().bisect(key)
    }

    /// Environment as `(name, value)` pairs in Docker's order; `None` until
    /// the host has inspected the container (answer `need-inspect` to get it).
    pub fn env(&self) -> Option<Pairs<'a>> {
        self.raw.env.map(|run| Pairs::new(self.strings, run))
    }

    /// Value of environment variable `name` (the last one wins if repeated).
    /// `None` both when it is unset and when the environment is not known.
    pub fn env_var(&self, name: &str) -> Option<&'a str> {
        self.env()?.find_last(name)
    }

    /// Whether the host has inspected the container and filled in its env.
    pub fn env_known(&self) -> bool {
        self.raw.env.is_some()
    }

    /// Mounts, in Docker's order.
    pub fn mounts(&self) -> impl ExactSizeIterator<Item = MountRef<'a>> + 'a {
        let strings = self.strings;
        let run = self.raw.mounts;
        (0..run.count / 3).map(move |i| {
            let at = run.first + 3 * i;
            MountRef {
                source: strings.get(at),
                destination: strings.get(at + 1),
                kind: strings.get(at + 2),
            }
        })
    }

    /// Creation time, Unix epoch milliseconds.
    pub fn created_ms(&self) -> i64 {
        self.raw.created_ms
    }

    /// Last start time, Unix epoch milliseconds, if known.
    pub fn started_ms(&self) -> Option<i64> {
        self.raw.started_ms
    }

    /// Lifecycle state reported by Docker.
    pub fn state(&self) -> ContainerState {
        self.raw.state
    }

    /// Exit code of the last run, if the container has exited.
    pub fn exit_code(&self) -> Option<i32> {
        self.raw.exit_code
    }
}

/// One candidate of a kill batch.
#[derive(Clone, Copy, Debug)]
pub struct CandidateRef<'a> {
    /// Its snapshot.
    pub container: ContainerRef<'a>,
    /// The ownership verdict that made it a candidate.
    pub ownership: &'a Ownership,
}

impl CandidateRef<'_> {
    /// The allocation the container belongs to, if it was judged `owned`.
    pub fn alloc_id(&self) -> Option<&str> {
        match self.ownership {
            Ownership::Owned(alloc) => Some(alloc),
            _ => None,
        }
    }
}

impl ContainerBatch {
    /// The batch's strings.
    pub fn strings(&self) -> Strings<'_> {
        Strings::new(&self.strings)
    }

    /// The containers, in input order.
    pub fn containers(&self) -> impl ExactSizeIterator<Item = ContainerRef<'_>> {
        let strings = self.strings();
        self.containers
            .iter()
            .map(move |raw| ContainerRef::new(strings, raw))
    }

    /// Number of containers.
    pub fn len(&self) -> usize {
        self.containers.len()
    }

    /// Whether the batch holds no container.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

impl CandidateBatch {
    /// The batch's strings.
    pub fn strings(&self) -> Strings<'_> {
        Strings::new(&self.strings)
    }

    /// The candidates, in input order.
    pub fn candidates(&self) -> impl ExactSizeIterator<Item = CandidateRef<'_>> {
        let strings = self.strings();
        self.candidates.iter().map(move |c| CandidateRef {
            container: ContainerRef::new(strings, &c.container),
            ownership: &c.ownership,
        })
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether the batch holds no candidate.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Candidate;

    /// Packs `strings` the way the host does.
    fn table(strings: &[&str]) -> StringTable {
        let mut text = String::new();
        let mut ends = Vec::new();
        for s in strings {
            text.push_str(s);
            ends.push(text.len() as u32);
        }
        StringTable { text, ends }
    }

    fn run(first: u32, count: u32) -> StrRun {
        StrRun { first, count }
    }

    fn container(env: Option<StrRun>) -> Container {
        Container {
            id: 0,
            names: run(1, 2),
            image: 3,
            labels: run(4, 6),
            env,
            mounts: run(10, 3),
            created_ms: 7,
            started_ms: Some(8),
            state: ContainerState::Running,
            exit_code: None,
        }
    }

    fn batch(env: Option<StrRun>) -> ContainerBatch {
        ContainerBatch {
            strings: table(&[
                "abc",
                "/web-1",
                "/alias",
                "busybox", // id, names, image
                "a",
                "1",
                "com.hashicorp.nomad.alloc_id",
                "x-é",
                "z",
                "", // labels
                "/src",
                "/alloc",
                "bind", // one mount
                "K",
                "V",
                "NOMAD_ALLOC_ID",
                "x",
                "K",
                "W", // env
            ]),
            containers: vec![container(env)],
        }
    }

    #[test]
    fn a_container_reads_back_from_the_table() {
        let b = batch(Some(run(13, 6)));
        assert_eq!(b.len(), 1);
        let c = b.containers().next().unwrap();
        assert_eq!(c.id(), "abc");
        assert_eq!(c.image(), "busybox");
        assert_eq!(c.names().collect::<Vec<_>>(), ["/web-1", "/alias"]);
        assert_eq!(c.names().next_back(), Some("/alias"));
        assert_eq!(
            c.labels().collect::<Vec<_>>(),
            [
                ("a", "1"),
                ("com.hashicorp.nomad.alloc_id", "x-é"),
                ("z", "")
            ]
        );
        assert_eq!(
            c.mounts().collect::<Vec<_>>(),
            [MountRef {
                source: "/src",
                destination: "/alloc",
                kind: "bind"
            }]
        );
        assert_eq!(
            (c.created_ms(), c.started_ms(), c.exit_code()),
            (7, Some(8), None)
        );
        assert_eq!(c.state(), ContainerState::Running);
    }

    #[test]
    fn label_lookups_bisect_every_key() {
        let b = batch(None);
        let c = b.containers().next().unwrap();
        assert_eq!(c.label("a"), Some("1"));
        assert_eq!(c.label("com.hashicorp.nomad.alloc_id"), Some("x-é"));
        assert_eq!(c.label("z"), Some(""));
        for missing in ["", "0", "b", "com.hashicorp.nomad", "zz"] {
            assert_eq!(c.label(missing), None, "{missing}");
        }
    }

    #[test]
    fn env_is_absent_until_inspected_and_the_last_entry_wins() {
        let listed = batch(None);
        let c = listed.containers().next().unwrap();
        assert!(!c.env_known());
        assert!(c.env().is_none());
        assert_eq!(c.env_var("K"), None);

        let inspected = batch(Some(run(13, 6)));
        let c = inspected.containers().next().unwrap();
        assert!(c.env_known());
        assert_eq!(c.env().unwrap().len(), 3);
        assert_eq!(c.env_var("K"), Some("W"));
        assert_eq!(c.env_var("NOMAD_ALLOC_ID"), Some("x"));
        assert_eq!(c.env_var("MISSING"), None);
    }

    #[test]
    fn out_of_range_indices_are_reported_not_misread() {
        let t = table(&["ab", "c"]);
        let s = Strings::new(&t);
        assert_eq!(
            (s.try_get(0), s.try_get(1), s.try_get(2)),
            (Some("ab"), Some("c"), None)
        );
        let broken = StringTable {
            text: "é".into(),
            ends: vec![1],
        };
        assert_eq!(
            Strings::new(&broken).try_get(0),
            None,
            "not a char boundary"
        );
        let result = std::panic::catch_unwind(|| s.get(5));
        assert!(result.is_err());
    }

    #[test]
    fn candidates_expose_their_alloc() {
        let b = CandidateBatch {
            strings: batch(None).strings,
            candidates: vec![
                Candidate {
                    container: container(None),
                    ownership: Ownership::Owned("x".into()),
                },
                Candidate {
                    container: container(None),
                    ownership: Ownership::Unknown,
                },
            ],
        };
        let allocs: Vec<_> = b
            .candidates()
            .map(|c| c.alloc_id().map(str::to_owned))
            .collect();
        assert_eq!(allocs, [Some("x".to_owned()), None]);
        assert_eq!(b.candidates().next().unwrap().container.id(), "abc");
    }
}
