//! Where log forwarding stands: per stream, the timestamp of the last delivered log message and
//! how many messages with exactly that timestamp were delivered.
//!
//! Docker stamps every log message (`timestamps=true`, RFC 3339 with nanoseconds) and can
//! replay from a whole second (`since`). Re-following from the second of the last delivered
//! message and skipping what the position already covers resumes with nothing lost and
//! nothing repeated, even when several messages share one timestamp. Each stream has its own
//! position because Docker stamps stdout and stderr independently: their messages are ordered
//! within a stream, not across streams.
//!
//! The position is kept in a small file in the task directory (not in `driver_state`, which
//! Nomad only takes at StartTask and never lets a driver update). One fixed-length record is
//! rewritten in place after every delivered chunk with a single `pwrite`, so a plugin killed at
//! any instant leaves either the previous or the new record. Across such a kill delivery is
//! at least once, never lossy: a plugin killed after a chunk reached the task's log and before
//! its record was written leaves the previous record, and the next plugin delivers that one
//! chunk again. (Recording before delivering would turn that repeat into a loss.)

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Name of the position file inside the task directory.
pub const POSITION_FILE: &str = ".dockhand-log-position";

/// How far a follow starts before the newest delivered message, seconds: more than the skew
/// between the stamps of stdout and stderr messages logged at the same moment.
const CROSS_STREAM_MARGIN_SECS: i64 = 1;

/// First word of a position record.
const MAGIC: &str = "dockhand-log-position/1";

/// The last delivered message of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamPosition {
    /// Its timestamp, Unix nanoseconds.
    pub at: i128,
    /// How many messages stamped `at` were delivered.
    pub count: u64,
}

/// Where a forwarder starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartFrom {
    /// The container's whole output (a container this driver just created).
    Beginning,
    /// The saved position if it belongs to this container, otherwise now.
    SavedOrNow,
}

/// Decides, message by message, what a follow has to deliver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    position: Option<StreamPosition>,
    /// Messages stamped `position.at` seen in the current follow.
    seen_at_position: u64,
    /// Whether the last message was delivered (decides an unstamped continuation).
    last_delivered: bool,
}

impl Cursor {
    /// A cursor that delivers everything after `position` (everything when `None`).
    pub fn new(position: Option<StreamPosition>) -> Self {
        Self {
            position,
            ..Self::default()
        }
    }

    /// The position so far.
    pub fn position(&self) -> Option<StreamPosition> {
        self.position
    }

    /// Call before each new follow: its replay starts over.
    pub fn restart(&mut self) {
        self.seen_at_position = 0;
        self.last_delivered = false;
    }

    /// Whether the message stamped `at` is new; if so it counts as delivered. `None` is a piece
    /// of the previous message (a chunk boundary inside it) and follows its fate.
    pub fn admit(&mut self, at: Option<i128>) -> bool {
        let Some(at) = at else {
            return self.last_delivered;
        };
        let admitted = match &mut self.position {
            Some(p) if at < p.at => false,
            Some(p) if at == p.at => {
                self.seen_at_position += 1;
                if self.seen_at_position > p.count {
                    p.count = self.seen_at_position;
                    true
                } else {
                    false
                }
            }
            _ => {
                self.position = Some(StreamPosition { at, count: 1 });
                self.seen_at_position = 1;
                true
            }
        };
        self.last_delivered = admitted;
        admitted
    }

    /// The whole second a follow must start at to see every message not yet delivered.
    fn since_unix(&self) -> Option<i64> {
        let p = self.position?;
        i64::try_from(p.at.div_euclid(1_000_000_000)).ok()
    }
}

/// The cursors of both streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursors {
    /// stdout.
    pub out: Cursor,
    /// stderr.
    pub err: Cursor,
}

impl Cursors {
    /// Both cursors at "now": only messages stamped from now on are delivered.
    pub fn now() -> Self {
        let at = now_nanos();
        let p = Some(StreamPosition { at, count: 0 });
        Self {
            out: Cursor::new(p),
            err: Cursor::new(p),
        }
    }

    /// Restarts both for a new follow.
    pub fn restart(&mut self) {
        self.out.restart();
        self.err.restart();
    }

    /// The `since` of the next follow: a margin before the newer of the two positions; 0
    /// (everything) when nothing was delivered yet. Docker returns messages in the order it
    /// logged them, so what is older than the newest delivered message (less the skew between
    /// the two streams' stamps) was already read; starting at the older position instead would
    /// replay a whole history whenever one stream has been quiet for long.
    pub fn since_unix(&self) -> i64 {
        match self.out.since_unix().max(self.err.since_unix()) {
            Some(s) => (s - CROSS_STREAM_MARGIN_SECS).max(0),
            None => 0,
        }
    }
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

/// Splits a chunk of timestamped log output into messages: `(timestamp, body)`, the body
/// without the timestamp prefix and with its newline. A chunk is normally one message; a TTY
/// stream may carry several or cut one, whose rest then arrives without a stamp (`None`).
pub(crate) fn split_messages(data: &[u8]) -> Vec<(Option<i128>, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (at, body_start) = match parse_stamp(rest) {
            Some((at, len)) => (Some(at), len),
            None => (None, 0),
        };
        let end = rest[body_start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| body_start + i + 1);
        out.push((at, &rest[body_start..end]));
        rest = &rest[end..];
    }
    out
}

/// `<RFC 3339 timestamp><space>` at the start of `data`: the Unix nanoseconds and the prefix
/// length.
fn parse_stamp(data: &[u8]) -> Option<(i128, usize)> {
    // "2006-01-02T15:04:05.999999999+07:00" is 35 bytes; allow a little more.
    let space = data.iter().take(40).position(|b| *b == b' ')?;
    let text = std::str::from_utf8(&data[..space]).ok()?;
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos(), space + 1))
}

/// The position file of one forwarder.
#[derive(Debug)]
pub(crate) struct PositionFile {
    path: PathBuf,
    container_id: String,
    file: Option<File>,
    warned: bool,
}

impl PositionFile {
    /// The cursors to start from and the file to keep them in. `path` = `None` keeps the
    /// position in memory only.
    pub fn open(path: Option<&Path>, container_id: &str, from: StartFrom) -> (Self, Cursors) {
        let saved = match (path, from) {
            (Some(p), StartFrom::SavedOrNow) => load(p, container_id),
            _ => None,
        };
        let cursors = match (from, saved) {
            (StartFrom::Beginning, _) => Cursors::default(),
            (StartFrom::SavedOrNow, Some(c)) => c,
            (StartFrom::SavedOrNow, None) => {
                tracing::info!(
                    container_id,
                    "no saved log position for this container; forwarding output from now on"
                );
                Cursors::now()
            }
        };
        let mut me = Self {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            container_id: container_id.to_owned(),
            file: None,
            warned: false,
        };
        if path.is_some() {
            match File::create(&me.path) {
                Ok(f) => me.file = Some(f),
                Err(e) => me.warn(&e),
            }
            me.save(&cursors);
        }
        (me, cursors)
    }

    /// Records `cursors`. A failure is logged once; forwarding goes on either way.
    pub fn save(&mut self, cursors: &Cursors) {
        let Some(file) = &self.file else { return };
        let record = encode(&self.container_id, cursors);
        if let Err(e) = file.write_all_at(record.as_bytes(), 0) {
            self.warn(&e);
        }
    }

    fn warn(&mut self, e: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(path = %self.path.display(), error = %e, "cannot keep the log position; after a plugin restart output may be repeated or lost");
        }
    }
}

/// One fixed-length line: the same container always gives the same length, so rewriting it in
/// place never leaves a stale tail.
fn encode(container_id: &str, cursors: &Cursors) -> String {
    let field = |p: Option<StreamPosition>| match p {
        Some(p) => format!("{:>40} {:>20}", p.at, p.count),
        None => format!("{:>40} {:>20}", "-", "-"),
    };
    format!(
        "{MAGIC} {container_id} {} {}\n",
        field(cursors.out.position()),
        field(cursors.err.position())
    )
}

fn decode(text: &str, container_id: &str) -> Option<Cursors> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [magic, id, out_at, out_n, err_at, err_n] = words.as_slice() else {
        return None;
    };
    if *magic != MAGIC || *id != container_id {
        return None;
    }
    let stream = |at: &str, n: &str| -> Option<Option<StreamPosition>> {
        if at == "-" && n == "-" {
            return Some(None);
        }
        Some(Some(StreamPosition {
            at: at.parse().ok()?,
            count: n.parse().ok()?,
        }))
    };
    Some(Cursors {
        out: Cursor::new(stream(out_at, out_n)?),
        err: Cursor::new(stream(err_at, err_n)?),
    })
}

fn load(path: &Path, container_id: &str) -> Option<Cursors> {
    let text = std::fs::read_to_string(path).ok()?;
    decode(&text, container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i128 = 1_700_000_000_123_456_789;

    #[test]
    fn messages_sharing_a_timestamp_are_neither_lost_nor_repeated() {
        let mut c = Cursor::new(None);
        assert!(c.admit(Some(T0)));
        assert!(c.admit(Some(T0)));
        assert!(c.admit(Some(T0 + 1)));
        assert!(c.admit(Some(T0 + 1)));
        assert_eq!(
            c.position(),
            Some(StreamPosition {
                at: T0 + 1,
                count: 2
            })
        );
        // A re-follow replays from the whole second: everything up to the position is old.
        c.restart();
        let replay = [T0, T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2];
        let admitted: Vec<bool> = replay.iter().map(|t| c.admit(Some(*t))).collect();
        assert_eq!(admitted, [false, false, false, false, true, true]);
    }

    #[test]
    fn an_unstamped_piece_follows_its_message() {
        let mut c = Cursor::new(Some(StreamPosition { at: T0, count: 1 }));
        assert!(!c.admit(Some(T0)));
        assert!(!c.admit(None));
        assert!(c.admit(Some(T0 + 5)));
        assert!(c.admit(None));
    }

    #[test]
    fn since_is_a_second_before_the_newest_position_and_zero_without_one() {
        let mut cs = Cursors::default();
        assert_eq!(cs.since_unix(), 0);
        cs.err.admit(Some(T0 - 3_600_000_000_000));
        assert_eq!(cs.since_unix(), 1_699_996_399);
        cs.out.admit(Some(T0));
        assert_eq!(
            cs.since_unix(),
            1_699_999_999,
            "a stream quiet for an hour does not drag the replay back"
        );
    }

    #[test]
    fn chunks_split_into_stamped_messages() {
        let data = b"2024-05-01T10:00:00.000000001Z one\n2024-05-01T10:00:00.5Z two\nrest";
        let parts = split_messages(data);
        let base = 1_714_557_600_000_000_000_i128;
        assert_eq!(
            parts,
            vec![
                (Some(base + 1), &b"one\n"[..]),
                (Some(base + 500_000_000), &b"two\n"[..]),
                (None, &b"rest"[..]),
            ]
        );
        assert_eq!(
            split_messages(b"no stamp here\n"),
            vec![(None, &b"no stamp here\n"[..])]
        );
    }

    #[test]
    fn the_file_round_trips_and_belongs_to_one_container() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POSITION_FILE);
        let (mut file, mut cs) = PositionFile::open(Some(&path), "c1", StartFrom::Beginning);
        assert_eq!(cs, Cursors::default());
        cs.out.admit(Some(T0));
        cs.out.admit(Some(T0));
        file.save(&cs);
        let len = std::fs::metadata(&path).unwrap().len();
        cs.err.admit(Some(T0 + 7));
        file.save(&cs);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "fixed length");
        drop(file);

        let (_, loaded) = PositionFile::open(Some(&path), "c1", StartFrom::SavedOrNow);
        assert_eq!(
            loaded.out.position(),
            Some(StreamPosition { at: T0, count: 2 })
        );
        assert_eq!(
            loaded.err.position(),
            Some(StreamPosition {
                at: T0 + 7,
                count: 1
            })
        );

        // Another container's record is not ours: start from now.
        let before = now_nanos();
        let (_, other) = PositionFile::open(Some(&path), "c2", StartFrom::SavedOrNow);
        assert!(other.out.position().unwrap().at >= before);
        assert_eq!(other.out.position().unwrap().count, 0);
    }

    #[test]
    fn garbage_in_the_file_is_not_a_position() {
        assert_eq!(decode("", "c"), None);
        assert_eq!(decode("dockhand-log-position/1 c x 1 - -", "c"), None);
        assert_eq!(decode("something else entirely", "c"), None);
        assert!(decode("dockhand-log-position/1 c 5 1 - -", "c").is_some());
    }
}
