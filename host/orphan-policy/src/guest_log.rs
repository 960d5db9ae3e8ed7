//! The guest's only capability: `log(level, message)`, bounded per call,
//! rate-limited per policy, sanitised and capped at `info`.
//!
//! A guest controls every byte it logs, so lines are truncated to
//! [`MAX_LOG_LINE_BYTES`], control characters (terminal escapes, new lines)
//! are replaced, at most [`MAX_LOG_LINES_PER_BATCH`] lines and
//! [`MAX_LOG_BYTES_PER_BATCH`] bytes are kept per call, and a token bucket of
//! [`LOG_LINES_PER_SECOND`] per policy stops floods spread over many calls.
//! A guest cannot log above `info`: its own level is kept as a field.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::bindings::wit_log::Level;
use crate::limits::{
    LOG_BURST_LINES, LOG_LINES_PER_SECOND, MAX_LOG_BYTES_PER_BATCH, MAX_LOG_LINE_BYTES,
    MAX_LOG_LINES_PER_BATCH,
};

/// Token bucket shared by all calls of one policy.
#[derive(Debug)]
pub(crate) struct LogRateLimiter {
    tokens: f64,
    last: Instant,
}

impl LogRateLimiter {
    pub(crate) fn new() -> Self {
        Self {
            tokens: f64::from(LOG_BURST_LINES),
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(LOG_LINES_PER_SECOND);
        self.tokens = (self.tokens + refill).min(f64::from(LOG_BURST_LINES));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts of one call's guest log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Lines passed on to `tracing`.
    pub emitted: usize,
    /// Lines dropped by the per-call or per-policy limits.
    pub dropped: usize,
    /// Lines shortened to the line limit.
    pub truncated: usize,
}

/// Per-call log sink.
#[derive(Debug)]
pub(crate) struct GuestLog {
    policy: Arc<str>,
    limiter: Arc<Mutex<LogRateLimiter>>,
    bytes: usize,
    pub(crate) stats: LogStats,
}

impl GuestLog {
    pub(crate) fn new(policy: Arc<str>, limiter: Arc<Mutex<LogRateLimiter>>) -> Self {
        Self {
            policy,
            limiter,
            bytes: 0,
            stats: LogStats::default(),
        }
    }

    #[cfg(test)]
    fn log(&mut self, level: Level, message: &str) {
        let (line, truncated) = bounded_line(message);
        self.emit(level, line, truncated);
    }

    /// Passes on a line already cut by [`bounded_line`], unless a per-call
    /// or per-policy limit drops it.
    pub(crate) fn emit(&mut self, level: Level, line: String, truncated: bool) {
        let over_batch = self.stats.emitted >= MAX_LOG_LINES_PER_BATCH
            || self.bytes + line.len() > MAX_LOG_BYTES_PER_BATCH;
        // A poisoned limiter only means another call panicked mid-update; the
        // bucket's state is still a valid number, so keep using it.
        if over_batch
            || !self
                .limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_take()
        {
            self.stats.dropped += 1;
            return;
        }
        self.stats.emitted += 1;
        self.stats.truncated += usize::from(truncated);
        self.bytes += line.len();
        let policy = &*self.policy;
        match level {
            Level::Trace => tracing::trace!(policy, guest_level = "trace", "{line}"),
            Level::Debug => tracing::debug!(policy, guest_level = "debug", "{line}"),
            Level::Info => tracing::info!(policy, guest_level = "info", "{line}"),
            Level::Warn => tracing::info!(policy, guest_level = "warn", "{line}"),
            Level::Error => tracing::info!(policy, guest_level = "error", "{line}"),
        }
    }

    /// Reports what was dropped, once per call.
    pub(crate) fn finish(&self) -> LogStats {
        if self.stats.dropped > 0 {
            tracing::warn!(
                policy = &*self.policy,
                dropped = self.stats.dropped,
                "policy log lines dropped (per-call or rate limit reached)"
            );
        }
        self.stats
    }
}

/// Truncates to [`MAX_LOG_LINE_BYTES`] on a character boundary and escapes
/// control, format and invisible characters ([`crate::display::escape`]); the
/// escaped line is cut to the limit again. Copies at most [`MAX_LOG_LINE_BYTES`] of
/// `message` before escaping.
pub(crate) fn bounded_line(message: &str) -> (String, bool) {
    let cut = |text: &str| {
        let mut end = text.len().min(MAX_LOG_LINE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        end
    };
    let end = cut(message);
    let mut line = crate::display::escape(&message[..end]).into_owned();
    let escaped_end = cut(&line);
    let shortened = end < message.len() || escaped_end < line.len();
    line.truncate(escaped_end);
    (line, shortened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> GuestLog {
        GuestLog::new(
            Arc::from("test"),
            Arc::new(Mutex::new(LogRateLimiter::new())),
        )
    }

    #[test]
    fn lines_are_sanitised_and_truncated_on_char_boundaries() {
        assert_eq!(
            bounded_line("a\x1b[1mb\nc\u{202e}d"),
            ("a\\u{001b}[1mb\\u{000a}c\\u{202e}d".to_owned(), false)
        );
        let long = "é".repeat(MAX_LOG_LINE_BYTES);
        let (line, truncated) = bounded_line(&long);
        assert!(truncated);
        assert!(line.len() <= MAX_LOG_LINE_BYTES && line.chars().all(|c| c == 'é'));
    }

    #[test]
    fn per_call_line_limit_drops_the_excess() {
        let mut log = sink();
        for _ in 0..MAX_LOG_LINES_PER_BATCH + 7 {
            log.log(Level::Info, "x");
        }
        assert_eq!(
            log.finish(),
            LogStats {
                emitted: MAX_LOG_LINES_PER_BATCH,
                dropped: 7,
                truncated: 0
            }
        );
    }

    #[test]
    fn per_call_byte_limit_drops_the_excess() {
        let mut log = sink();
        let line = "y".repeat(MAX_LOG_LINE_BYTES);
        for _ in 0..20 {
            log.log(Level::Warn, &line);
        }
        let stats = log.finish();
        assert_eq!(stats.emitted, MAX_LOG_BYTES_PER_BATCH / MAX_LOG_LINE_BYTES);
        assert_eq!(stats.emitted + stats.dropped, 20);
    }

    #[test]
    fn rate_limit_spans_calls_of_one_policy() {
        let limiter = Arc::new(Mutex::new(LogRateLimiter::new()));
        let mut total = 0;
        for _ in 0..5 {
            let mut log = GuestLog::new(Arc::from("p"), limiter.clone());
            for _ in 0..MAX_LOG_LINES_PER_BATCH {
                log.log(Level::Debug, "z");
            }
            total += log.finish().emitted;
        }
        // The burst allowance, plus whatever refilled while the test ran.
        assert!(total >= LOG_BURST_LINES as usize);
        assert!(total < LOG_BURST_LINES as usize + 50, "emitted {total}");
    }
}
