//! `dockhand policy new NAME --kind ownership|kill --lang rust|python`:
//! writes a policy project that builds and passes `dockhand policy test` as
//! written.
//!
//! * Rust: a standalone cargo project (its own workspace) depending on the
//!   policy SDK by path. The SDK is `--sdk PATH` (the `guest-policies/sdk`
//!   directory of a dockhand checkout) or, by default, the one of the
//!   checkout this binary was built from.
//! * Python: a module using `dockhand_policy.py`, copied from `--sdk PATH`
//!   (the `guest-policies/python` directory of a checkout; same default),
//!   and the contract's WIT, embedded in this binary.
//!
//! Each gets a README with the next commands, one fixture and a
//! `dockhand-policy.json` manifest that `build` and `test` read.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::build::COMPONENTIZE_PY_VERSION;
use super::check::KindArg;
use super::project::{
    FIXTURES_DIR, Lang, MANIFEST, Manifest, ManifestKind, NAME_RULE, is_valid_name,
};
use crate::cli::{CommandResult, Failure, Status};

/// The contract, for Python projects (componentize-py reads it).
pub const POLICY_WIT: &str = include_str!("../../../../../wit/policy.wit");

/// File name of the Python helper module.
pub const PY_HELPER: &str = "dockhand_policy.py";

/// The SDK directories of the checkout this binary was built from.
const CHECKOUT_RUST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-policies/sdk");
const CHECKOUT_PY_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-policies/python");

/// Arguments of `dockhand policy new`.
#[derive(Debug, Clone, clap::Args)]
pub struct NewArgs {
    /// Policy name: lower-case letters, digits and `-`; also the directory created.
    pub name: String,
    /// Which world the policy implements.
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where the SDK is: for Rust the `guest-policies/sdk` crate, for Python the directory
    /// holding `dockhand_policy.py` (`guest-policies/python`). Default: those of the dockhand
    /// checkout this binary was built from.
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
    /// Directory to create (default: ./NAME). It must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Why no project was written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("invalid policy name {0:?}: {NAME_RULE}")]
    Name(String),
    #[error("{}: already exists and is not empty", .0.display())]
    Exists(PathBuf),
    /// The SDK was not found where it was looked for.
    #[error("{what} not found at {} ({hint})", .path.display())]
    Sdk {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{}: {what}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> NewError + 'a {
    move |source| NewError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl NewArgs {
    /// Writes the project and the next commands to stdout.
    pub fn execute(&self) -> CommandResult {
        run(self, &mut io::stdout().lock())
            .map_err(|e| Failure::new("dockhand policy new", e, Status::Failed))?;
        Ok(Status::Success)
    }
}

/// Writes the project; returns its directory.
pub fn run(args: &NewArgs, out: &mut dyn Write) -> Result<PathBuf, NewError> {
    if !is_valid_name(&args.name) {
        return Err(NewError::Name(args.name.clone()));
    }
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        let empty = fs::read_dir(&dir)
            .map_err(io_err(&dir, "cannot list"))?
            .next()
            .is_none();
        if !empty {
            return Err(NewError::Exists(dir));
        }
    }
    let kind = match args.kind {
        KindArg::Ownership => ManifestKind::Ownership,
        KindArg::Kill => ManifestKind::Kill,
    };
    let kind_name = match kind {
        ManifestKind::Ownership => "ownership",
        ManifestKind::Kill => "kill",
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let fixture = match kind {
        ManifestKind::Ownership => include_str!("templates/ownership.json.tmpl"),
        ManifestKind::Kill => include_str!("templates/kill.json.tmpl"),
    };
    files.push((
        Path::new(FIXTURES_DIR).join("example.json"),
        fixture.to_owned(),
    ));
    files.push((
        ".gitignore".into(),
        include_str!("templates/gitignore.tmpl").into(),
    ));
    let module = match args.lang {
        Lang::Rust => {
            let sdk = locate(
                args.sdk.as_deref(),
                CHECKOUT_RUST_SDK,
                "Cargo.toml",
                "the dockhand policy SDK (a crate directory with Cargo.toml)",
            )?;
            let sdk_text = sdk.to_string_lossy().replace('\\', "/");
            let (source, trait_name, export) = match kind {
                ManifestKind::Ownership => (
                    include_str!("templates/ownership.rs.tmpl"),
                    "OwnershipPolicy",
                    "export_ownership",
                ),
                ManifestKind::Kill => (
                    include_str!("templates/kill.rs.tmpl"),
                    "KillPolicy",
                    "export_kill",
                ),
            };
            let fill = |t: &str| {
                t.replace("{{name}}", &args.name)
                    .replace("{{kind}}", kind_name)
                    .replace("{{sdk}}", &sdk_text)
                    .replace("{{trait}}", trait_name)
                    .replace("{{export}}", export)
            };
            files.push((
                "Cargo.toml".into(),
                fill(include_str!("templates/Cargo.toml.tmpl")),
            ));
            files.push(("src/lib.rs".into(), fill(source)));
            files.push((
                "README.md".into(),
                fill(include_str!("templates/README.rust.md.tmpl")),
            ));
            None
        }
        Lang::Python => {
            let sdk = locate(
                args.sdk.as_deref(),
                CHECKOUT_PY_SDK,
                PY_HELPER,
                "the dockhand Python helper module (a directory with dockhand_policy.py)",
            )?;
            let helper_path = sdk.join(PY_HELPER);
            let helper =
                fs::read_to_string(&helper_path).map_err(io_err(&helper_path, "cannot read"))?;
            let (source, entry) = match kind {
                ManifestKind::Ownership => {
                    (include_str!("templates/ownership.py.tmpl"), "classify")
                }
                ManifestKind::Kill => (include_str!("templates/kill.py.tmpl"), "decide"),
            };
            let fill = |t: &str| {
                t.replace("{{name}}", &args.name)
                    .replace("{{kind}}", kind_name)
                    .replace("{{entry}}", entry)
                    .replace("{{componentize_py}}", COMPONENTIZE_PY_VERSION)
            };
            files.push(("app.py".into(), fill(source)));
            files.push((PY_HELPER.into(), helper));
            files.push(("wit/policy.wit".into(), POLICY_WIT.to_owned()));
            files.push((
                "README.md".into(),
                fill(include_str!("templates/README.python.md.tmpl")),
            ));
            Some("app".to_owned())
        }
    };
    let manifest = Manifest {
        name: args.name.clone(),
        kind,
        lang: args.lang,
        module,
    };
    let mut manifest_text =
        serde_json::to_string_pretty(&manifest).expect("a manifest always serializes");
    manifest_text.push('\n');
    files.push((MANIFEST.into(), manifest_text));

    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent, "cannot create the directory"))?;
        }
        fs::write(&path, text).map_err(io_err(&path, "cannot write"))?;
    }
    let shown = dir.display();
    // The project is written; a closed stdout changes nothing about that.
    let _ = writeln!(
        out,
        "created {kind_name} policy `{}` ({}) in {shown}\n\nnext:\n  cd {shown}\n  dockhand policy build\n  dockhand policy test",
        args.name,
        match args.lang {
            Lang::Rust => "rust",
            Lang::Python => "python",
        },
    );
    Ok(dir)
}

/// `given`, or the checkout's default, as an absolute path that holds `marker`.
fn locate(
    given: Option<&Path>,
    default: &str,
    marker: &str,
    what: &'static str,
) -> Result<PathBuf, NewError> {
    let (path, hint) = match given {
        Some(p) => (p.to_owned(), "check --sdk"),
        None => (
            PathBuf::from(default),
            "this binary was not built from a dockhand checkout that still exists; pass --sdk PATH",
        ),
    };
    if !path.join(marker).is_file() {
        return Err(NewError::Sdk { what, path, hint });
    }
    fs::canonicalize(&path).map_err(io_err(&path, "cannot resolve"))
}
