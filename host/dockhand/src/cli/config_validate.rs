//! `dockhand config validate FILE…`: check agent configs and jobspecs offline.
//!
//! Each file is read the way Nomad reads it ([`crate::config::hcl_file`]), the driver's schema
//! is applied like `hcldec` does ([`nomad_plugin::hcldec`]), the result is encoded to go-cty
//! msgpack and decoded by the same code the plugin runs in `SetConfig` / `StartTask`. Tasks
//! are then checked against the plugin configuration of the matching driver found among the
//! given files (or the built-in defaults). Every problem is reported with its file and line
//! where known, followed by a summary table; the outcome is invalid if anything is an error.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nomad_plugin::hclspec::Spec;

use super::{CommandResult, Failure, Status};
use crate::config::hcl_file::{self, ParsedFile};
use crate::config::{
    ConfigError, PluginConfig, RawPluginConfig, RawTaskConfig, TaskConfig, plugin_config_spec,
    task_config_spec,
};
use crate::table::Table;
use nomad_plugin::hcldec::{self, Input, Node, Severity};

/// One problem, located.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The configuration field, when the problem concerns one.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What a report entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaKind {
    /// A whole file (unreadable, bad syntax, nothing to check).
    File,
    /// A `plugin` stanza.
    Plugin,
    /// A task's driver config.
    Task,
}

impl fmt::Display for StanzaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StanzaKind::File => "file",
            StanzaKind::Plugin => "plugin",
            StanzaKind::Task => "task",
        })
    }
}

/// The result for one stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct StanzaReport {
    /// The file.
    pub file: PathBuf,
    /// Plugin, task or file.
    pub kind: StanzaKind,
    /// Plugin label or `job/group/task`.
    pub name: String,
    /// Where in the file the stanza is.
    pub location: String,
    /// Problems found.
    pub findings: Vec<Finding>,
    /// For tasks: which plugin config the task was checked against.
    pub checked_against: Option<String>,
}

impl StanzaReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// The result of validating a set of files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// One entry per stanza (or per unusable file).
    pub stanzas: Vec<StanzaReport>,
}

/// Whether everything validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// No errors (warnings allowed): exit status 0.
    Valid,
    /// At least one error: exit status 1.
    Invalid,
}

impl Validity {
    /// How the command ends.
    pub fn status(self) -> Status {
        match self {
            Validity::Valid => Status::Success,
            Validity::Invalid => Status::Failed,
        }
    }

    /// The process exit status.
    pub fn code(self) -> u8 {
        self.status().code()
    }
}

impl Report {
    /// Whether any stanza has an error.
    pub fn has_errors(&self) -> bool {
        self.stanzas.iter().any(|s| s.errors() > 0)
    }

    /// The outcome.
    pub fn validity(&self) -> Validity {
        if self.has_errors() {
            Validity::Invalid
        } else {
            Validity::Valid
        }
    }
}

/// Arguments of `dockhand config validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Nomad agent configs (with a `plugin "docker"` or `plugin "dockhand"` stanza) and
    /// jobspecs, in HCL or JSON. Tasks are checked against the plugin config found among
    /// these files, or against the built-in defaults.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl ValidateArgs {
    /// Run against stdout: exit status 0 when valid, 1 when any error was found, 2 when the
    /// report could not be written.
    pub fn execute(&self) -> CommandResult {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        run(&self.files, &mut lock)
            .map(Validity::status)
            .map_err(|e| Failure::unusable("dockhand config validate: cannot write report", e))
    }
}

/// Validate `files` and write findings and the summary table to `out`.
pub fn run(files: &[PathBuf], out: &mut dyn Write) -> io::Result<Validity> {
    let report = validate_files(files);
    render(&report, out)?;
    Ok(report.validity())
}

struct Loaded {
    index: usize,
    path: PathBuf,
    parsed: ParsedFile,
}

/// Validate `files` without printing.
pub fn validate_files(files: &[PathBuf]) -> Report {
    // (file index, entry): rows are reported in the order the files were given.
    let mut rows: Vec<(usize, StanzaReport)> = Vec::new();
    let mut loaded = Vec::new();
    for (index, path) in files.iter().enumerate() {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                rows.push((
                    index,
                    file_error(path, None, format!("cannot read file: {e}")),
                ));
                continue;
            }
        };
        match hcl_file::parse_file(&text) {
            Ok(parsed) if parsed.plugins.is_empty() && parsed.tasks.is_empty() => {
                let mut msg = "no docker-compatible plugin stanza or task found".to_owned();
                if !parsed.skipped.is_empty() {
                    msg.push_str(&format!(" (skipped: {})", parsed.skipped.join(", ")));
                }
                rows.push((index, file_error(path, None, msg)));
            }
            Ok(parsed) => loaded.push(Loaded {
                index,
                path: path.clone(),
                parsed,
            }),
            Err(e) => {
                let line = match &e {
                    hcl_file::FileError::Hcl { line, .. }
                    | hcl_file::FileError::Json { line, .. } => Some(*line),
                    hcl_file::FileError::Unrecognized(_) => None,
                };
                rows.push((index, file_error(path, line, e.to_string())));
            }
        }
    }
    // Plugin stanzas first: tasks are checked against them.
    let mut plugins: Vec<(String, String, PluginConfig)> = Vec::new();
    for file in &loaded {
        for stanza in &file.parsed.plugins {
            let (config, findings) = check_plugin(&stanza.config);
            if let Some(config) = config {
                plugins.push((
                    stanza.name.clone(),
                    format!("{} ({})", file.path.display(), stanza.location),
                    config,
                ));
            }
            rows.push((
                file.index,
                StanzaReport {
                    file: file.path.clone(),
                    kind: StanzaKind::Plugin,
                    name: stanza.name.clone(),
                    location: stanza.location.clone(),
                    findings,
                    checked_against: None,
                },
            ));
        }
    }
    let defaults = PluginConfig::default();
    for file in &loaded {
        for (line, message) in &file.parsed.problems {
            rows.push((file.index, file_error(&file.path, *line, message.clone())));
        }
        for task in &file.parsed.tasks {
            let chosen = plugins
                .iter()
                .find(|(name, _, _)| *name == task.driver)
                .or_else(|| plugins.first());
            let (plugin, against, agent) = match chosen {
                Some((name, at, cfg)) => (
                    cfg,
                    format!("plugin {name:?} from {at}"),
                    AgentConfig::Given,
                ),
                None => (
                    &defaults,
                    "built-in plugin defaults".to_owned(),
                    AgentConfig::Defaults,
                ),
            };
            rows.push((
                file.index,
                StanzaReport {
                    file: file.path.clone(),
                    kind: StanzaKind::Task,
                    name: task.name.clone(),
                    location: task.location.clone(),
                    findings: check_task(&task.config, plugin, agent),
                    checked_against: Some(against),
                },
            ));
        }
    }
    rows.sort_by_key(|(index, _)| *index);
    Report {
        stanzas: rows.into_iter().map(|(_, r)| r).collect(),
    }
}

fn file_error(path: &Path, line: Option<usize>, message: String) -> StanzaReport {
    StanzaReport {
        file: path.to_path_buf(),
        kind: StanzaKind::File,
        name: "-".to_owned(),
        location: String::new(),
        findings: vec![Finding {
            severity: Severity::Error,
            line,
            field: String::new(),
            message,
        }],
        checked_against: None,
    }
}

/// Apply `spec` to `body` and encode the result as go-cty msgpack, collecting schema findings
/// and the fields whose values only Nomad can know.
fn schema_bytes(
    spec: &Spec,
    body: &Node,
    findings: &mut Vec<Finding>,
    unknown: &mut Vec<String>,
) -> Vec<u8> {
    let (value, diags) = hcldec::apply(spec, body);
    unknown.extend(
        diags
            .iter()
            .filter(|d| d.unknown)
            .map(|d| d.path.to_string()),
    );
    findings.extend(diags.into_iter().map(|d| Finding {
        severity: d.severity,
        line: d.line,
        field: d.path.to_string(),
        message: d.message,
    }));
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail; an error here would be a bug in rmpv.
    if let Err(e) = rmpv::encode::write_value(&mut bytes, &value) {
        findings.push(Finding {
            severity: Severity::Error,
            line: None,
            field: String::new(),
            message: format!("internal error encoding configuration: {e}"),
        });
    }
    bytes
}

/// Whether `inner` is `outer` or inside it (`a` holds `a`, `a.b` and `a[0]`).
fn within(inner: &str, outer: &str) -> bool {
    !outer.is_empty()
        && (inner == outer
            || inner.starts_with(&format!("{outer}."))
            || inner.starts_with(&format!("{outer}[")))
}

/// Domain errors as findings, skipping fields the schema step already reported and fields
/// whose values only Nomad can know (`unknown`).
fn config_findings(
    findings: &[Finding],
    body: &Node,
    errors: Vec<ConfigError>,
    unknown: &[String],
) -> Vec<Finding> {
    let reported: BTreeSet<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.field.clone())
        .collect();
    let mut out = Vec::new();
    for e in errors {
        let field = e.field();
        // An unknown value decides checks of itself, of what it is part of, and of its parts.
        let depends_on_unknown = unknown
            .iter()
            .any(|u| within(&field, u) || within(u, &field));
        if reported.iter().any(|r| within(&field, r)) || depends_on_unknown {
            continue;
        }
        out.push(Finding {
            severity: Severity::Error,
            line: line_of(body, &field),
            message: match &e {
                ConfigError::Invalid { message, .. } => message.clone(),
                ConfigError::Decode(d) => d.to_string(),
            },
            field,
        });
    }
    out
}

/// Add domain errors (see [`config_findings`]).
fn add_config_errors(
    findings: &mut Vec<Finding>,
    body: &Node,
    errors: Vec<ConfigError>,
    unknown: &[String],
) {
    let new = config_findings(findings, body, errors, unknown);
    findings.extend(new);
}

/// The agent (plugin config) setting that decides a check of task field `field`.
fn agent_setting(field: &str) -> &'static str {
    let base = field.split(['.', '[']).next().unwrap_or_default();
    match base {
        "privileged" => "`allow_privileged`",
        "runtime" => "`allow_runtimes`",
        "cap_add" => "`allow_caps`",
        "ipc_mode" | "pid_mode" | "uts_mode" | "userns_mode" => {
            "`allow_privileged` (or `allowed_modes`)"
        }
        "volumes" | "volume_driver" | "mount" | "mounts" => "`volumes.enabled`",
        "pids_limit" => "`pids_limit`",
        _ => "the setting",
    }
}

/// Which plugin configuration a task is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentConfig {
    /// One given among the files: checks that depend on it are errors.
    Given,
    /// None given, the built-in defaults: checks that depend on the agent are warnings.
    Defaults,
}

/// Validate one plugin `config` body.
pub fn check_plugin(body: &Node) -> (Option<PluginConfig>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut unknown = Vec::new();
    let bytes = schema_bytes(&plugin_config_spec(), body, &mut findings, &mut unknown);
    match RawPluginConfig::from_msgpack(&bytes) {
        Ok(raw) => {
            let (config, errors) = PluginConfig::build(raw);
            add_config_errors(&mut findings, body, errors, &unknown);
            let ok = !findings.iter().any(|f| f.severity == Severity::Error);
            (ok.then_some(config), findings)
        }
        Err(errors) => {
            add_config_errors(&mut findings, body, errors.0, &unknown);
            (None, findings)
        }
    }
}

/// Validate one task `config` body against `plugin`. Values only Nomad can know are skipped
/// with a warning; with [`AgentConfig::Defaults`] the checks that depend on the agent's
/// settings are warnings naming the setting.
pub fn check_task(body: &Node, plugin: &PluginConfig, agent: AgentConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut unknown = Vec::new();
    let bytes = schema_bytes(&task_config_spec(), body, &mut findings, &mut unknown);
    match RawTaskConfig::from_msgpack(&bytes) {
        Ok(raw) => {
            let (task, errors) = TaskConfig::build(raw);
            add_config_errors(&mut findings, body, errors, &unknown);
            for w in &task.warnings {
                findings.push(Finding {
                    severity: Severity::Warning,
                    line: None,
                    field: w.split_whitespace().next().unwrap_or_default().to_owned(),
                    message: w.clone(),
                });
            }
            if let Err(errors) = task.validate_against(plugin) {
                let mut agent_findings = config_findings(&findings, body, errors, &unknown);
                if agent == AgentConfig::Defaults {
                    for f in &mut agent_findings {
                        f.severity = Severity::Warning;
                        f.message = format!(
                            "{}; to allow it, change {} in the agent's plugin config (no agent config given, checked against the defaults)",
                            f.message,
                            agent_setting(&f.field)
                        );
                    }
                }
                findings.extend(agent_findings);
            }
        }
        Err(errors) => add_config_errors(&mut findings, body, errors.0, &unknown),
    }
    findings
}

/// Best-effort source line of `field` (`a.b[0].c`) inside `body`.
fn line_of(body: &Node, field: &str) -> Option<usize> {
    let mut node = body;
    let mut line = body.line;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        // Look through the one-element lists blocks turn into.
        if let Input::List(items) = &node.value
            && items.len() == 1
        {
            node = &items[0];
        }
        let Input::Object(entries) = &node.value else {
            break;
        };
        let Some((_, child)) = entries.iter().rev().find(|(k, _)| k == key) else {
            break;
        };
        node = child;
        line = child.line.or(line);
        if let (Some(i), Input::List(items)) = (index, &node.value)
            && let Some(item) = items.get(i)
        {
            node = item;
            line = item.line.or(line);
        }
    }
    line
}

/// Write every finding, then the summary table.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    for s in &report.stanzas {
        for f in &s.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let at = match f.line {
                Some(l) => format!("{}:{l}", s.file.display()),
                None if !s.location.is_empty() => format!("{} ({})", s.file.display(), s.location),
                None => s.file.display().to_string(),
            };
            let what = match s.kind {
                StanzaKind::File => String::new(),
                kind => format!("{kind} {:?}: ", s.name),
            };
            let field = if f.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", f.field)
            };
            writeln!(out, "{at}: {level}: {what}{field}{}", f.message)?;
        }
    }
    if report.stanzas.iter().any(|s| !s.findings.is_empty()) {
        writeln!(out)?;
    }
    write!(out, "{}", render_table(report))?;
    let against: BTreeSet<&str> = report
        .stanzas
        .iter()
        .filter_map(|s| s.checked_against.as_deref())
        .collect();
    for a in against {
        writeln!(out, "tasks checked against {a}")?;
    }
    let invalid = report.stanzas.iter().filter(|s| s.errors() > 0).count();
    writeln!(
        out,
        "\n{} checked: {} ok, {} invalid",
        report.stanzas.len(),
        report.stanzas.len() - invalid,
        invalid
    )
}

/// The summary table alone.
pub fn render_table(report: &Report) -> String {
    let mut table = Table::new(["FILE", "KIND", "NAME", "RESULT", "ERRORS", "WARNINGS"]);
    for s in &report.stanzas {
        table.row([
            s.file.display().to_string(),
            s.kind.to_string(),
            s.name.clone(),
            if s.errors() > 0 { "invalid" } else { "ok" }.to_owned(),
            s.errors().to_string(),
            s.warnings().to_string(),
        ]);
    }
    table.render()
}
