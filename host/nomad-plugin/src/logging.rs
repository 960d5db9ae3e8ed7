//! hclog-shaped JSON logging to stderr, the only log format a Nomad agent understands from a
//! plugin.
//!
//! go-plugin reads the plugin's stderr line by line and `json.Unmarshal`s each line; a line
//! that parses becomes a Nomad log entry at `@level` with `@message`, and every other key is
//! appended as a key/value pair. The host does unchecked type assertions on `@level`,
//! `@message` and `@timestamp` (a non-string crashes the agent's log reader), accepts only
//! `trace|debug|info|warn|error` as levels (`warning` would demote the whole line to raw
//! debug text), and parses `@timestamp` with exactly six fractional digits. This layer
//! writes precisely that shape:
//!
//! ```text
//! {"@level":"info","@message":"starting task","@module":"mydriver","@timestamp":"2025-01-02T03:04:05.123456Z","task_id":"a/b/c"}
//! ```
//!
//! Span fields (outermost first) and event fields become extra top-level keys. Write errors
//! are ignored: after an agent restart nobody reads the pipe any more and a logger must not
//! panic on `EPIPE`. A line longer than [`MAX_LINE_BYTES`] would be split by the host's 64 KiB
//! reader, so oversized values are truncated.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::format_description::FormatItem;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// go-plugin reads stderr with a 64 KiB line buffer; longer lines are split into raw
/// fragments. Keep every line (including its newline) below that.
pub const MAX_LINE_BYTES: usize = 64 * 1024 - 1;

/// Longest string value kept when a line has to be shortened.
const TRUNCATED_VALUE_CHARS: usize = 4096;

/// Default filter directive when the filter variable is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

const TIMESTAMP_FORMAT: &[FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A `tracing-subscriber` layer that writes one hclog JSON object per event.
#[derive(Clone)]
pub struct HclogLayer {
    module: String,
    sink: Sink,
}

impl fmt::Debug for HclogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HclogLayer")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl HclogLayer {
    /// A layer writing to stderr with `@module` set to `module`.
    pub fn stderr(module: impl Into<String>) -> Self {
        Self::with_sink(module, |line| {
            // Deliberately ignored: see the module docs (EPIPE after re-attach).
            let _ = std::io::stderr().lock().write_all(line);
        })
    }

    /// A layer handing each complete line (newline included) to `sink`.
    pub fn with_sink(
        module: impl Into<String>,
        sink: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Self {
        HclogLayer {
            module: module.into(),
            sink: Arc::new(sink),
        }
    }
}

/// hclog's level names. `WARN` is `warn`, never `warning`.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// The current UTC time in hclog's `@timestamp` format.
pub fn timestamp_now() -> String {
    format_timestamp(time::OffsetDateTime::now_utc())
}

fn format_timestamp(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP_FORMAT)
        .unwrap_or_default()
}

/// Span fields stored in the span's extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.0.insert(field.name().to_owned(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), crate::error_chain(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl<S> Layer<S> for HclogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let line = render_line(
            level_name(event.metadata().level()),
            &self.module,
            &timestamp_now(),
            fields,
        );
        (self.sink)(&line);
    }
}

/// Builds one hclog line (newline included). `fields["message"]` becomes `@message`.
fn render_line(
    level: &str,
    module: &str,
    timestamp: &str,
    mut fields: Map<String, Value>,
) -> Vec<u8> {
    let message = match fields.remove("message") {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut object = Map::new();
    object.insert("@level".into(), level.into());
    object.insert("@message".into(), message.into());
    object.insert("@module".into(), module.into());
    object.insert("@timestamp".into(), timestamp.into());
    for (k, v) in fields {
        // The four hclog keys are owned by the layer and must stay strings.
        if !object.contains_key(&k) {
            object.insert(k, v);
        }
    }

    let mut line = serde_json::to_vec(&Value::Object(object.clone())).unwrap_or_default();
    if line.len() + 1 > MAX_LINE_BYTES {
        for value in object.values_mut() {
            if let Value::String(s) = value
                && s.chars().count() > TRUNCATED_VALUE_CHARS
            {
                let cut: String = s.chars().take(TRUNCATED_VALUE_CHARS).collect();
                *s = format!("{cut}…(truncated)");
            }
        }
        object.retain(|k, v| k.starts_with('@') || v.to_string().len() < TRUNCATED_VALUE_CHARS);
        line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
    }
    line.push(b'\n');
    line
}

/// Routes panic messages through `tracing`, so that they reach the agent as one hclog
/// `error` line (with the location) instead of raw multi-line text on stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        tracing::error!(location = %location, "panic: {payload}");
    }));
}

/// Error from [`setup_tracing`].
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process-wide subscriber: an [`EnvFilter`] read from `filter_env` (falling
/// back to [`DEFAULT_FILTER`] when unset or unparsable) and an [`HclogLayer`] on stderr, and
/// routes panics through it ([`install_panic_hook`]).
pub fn setup_tracing(module: &str, filter_env: &str) -> Result<(), LoggingError> {
    let filter = std::env::var(filter_env)
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::registry()
        .with(filter)
        .with(HclogLayer::stderr(module))
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)?;
    install_panic_hook();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let lines: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = Arc::clone(&lines);
        let layer = HclogLayer::with_sink("testmod", move |l| {
            sink.lock().expect("sink lock").extend_from_slice(l);
        });
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let bytes = lines.lock().expect("lines lock").clone();
        String::from_utf8(bytes)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }

    #[test]
    fn events_have_hclog_keys_and_span_fields() {
        let out = capture(|| {
            let span = tracing::info_span!("task", task_id = "a/b/c");
            let _g = span.enter();
            tracing::warn!(attempt = 3, ok = false, "starting task");
        });
        assert_eq!(out.len(), 1);
        let line = &out[0];
        assert_eq!(line["@level"], "warn");
        assert_eq!(line["@message"], "starting task");
        assert_eq!(line["@module"], "testmod");
        assert_eq!(line["task_id"], "a/b/c");
        assert_eq!(line["attempt"], 3);
        assert_eq!(line["ok"], false);
    }

    #[test]
    fn timestamp_has_six_fractional_digits() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.1 UTC);
        assert_eq!(format_timestamp(t), "2025-01-02T03:04:05.100000Z");
    }

    #[test]
    fn reserved_keys_stay_strings() {
        let out = capture(|| tracing::info!(message = 5, "@level" = 7));
        assert_eq!(out[0]["@level"], "info");
        assert!(out[0]["@message"].is_string());
    }

    #[test]
    fn huge_lines_are_shortened() {
        let big = "x".repeat(200_000);
        let out = capture(|| tracing::error!(blob = %big, "{}", big));
        let text = out[0].to_string();
        assert!(text.len() < MAX_LINE_BYTES, "line is {} bytes", text.len());
        assert_eq!(out[0]["@level"], "error");
    }
}
