//! Reading the folder: which files count, the limits on files and documents, symlinks that
//! leave the folder, and parsing each file into documents.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::node::{Node, Position};
use super::parse::parse_documents;
use super::reconcile::build_snapshot;
use super::secrets::SecretSource;
use super::validate::{Previous, Validated, validate};
use super::{Problem, Severity};
use crate::config::ConfigSnapshot;

/// Limits on what the folder may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum file size, in bytes.
    pub file_bytes: u64,
    /// Maximum number of non-empty documents in one file.
    pub documents_per_file: usize,
    /// Maximum number of YAML files read. Files past the limit, in path order, are not read.
    pub files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            file_bytes: 1024 * 1024,
            documents_per_file: 100,
            files: 1000,
        }
    }
}

/// One YAML file of the folder after reading.
#[derive(Debug)]
pub(crate) enum FileScan {
    Parsed {
        file: PathBuf,
        documents: Vec<Node>,
    },
    /// A file that could not be read or parsed. What it defined before stays as it was.
    Failed {
        file: PathBuf,
        problem: Problem,
    },
}

impl FileScan {
    pub fn file(&self) -> &Path {
        match self {
            FileScan::Parsed { file, .. } | FileScan::Failed { file, .. } => file,
        }
    }
}

/// The whole folder after reading: files plus warnings about entries that were skipped.
#[derive(Debug, Default)]
pub(crate) struct FolderScan {
    pub files: Vec<FileScan>,
    pub notes: Vec<Problem>,
}

/// Reads and parses every `*.yaml` and `*.yml` file below `dir`. Fails only when `dir` itself
/// cannot be listed.
pub(crate) fn scan_folder(dir: &Path, limits: &Limits) -> std::io::Result<FolderScan> {
    let root = dir.canonicalize()?;
    let mut scan = FolderScan::default();
    let mut paths = Vec::new();
    collect_paths(&root, Path::new(""), &mut paths, &mut scan.notes)?;
    paths.sort();
    for (i, relative) in paths.into_iter().enumerate() {
        if i >= limits.files {
            let message = format!(
                "too many files: at most {} YAML files are read; this one and later ones are \
                 skipped and keep their last applied state",
                limits.files
            );
            scan.files
                .push(failed(relative, Position::default(), message));
            continue;
        }
        scan.files.push(read_file(&root, relative, limits));
    }
    Ok(scan)
}

fn failed(file: PathBuf, at: Position, message: String) -> FileScan {
    let problem = Problem {
        file: file.clone(),
        document: None,
        severity: Severity::Error,
        line: at.line,
        column: at.column,
        path: String::new(),
        message,
    };
    FileScan::Failed { file, problem }
}

/// Lists YAML files below `root/relative`, skipping hidden and editor temporary names.
fn collect_paths(
    root: &Path,
    relative: &Path,
    paths: &mut Vec<PathBuf>,
    notes: &mut Vec<Problem>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored_name(&name) {
            continue;
        }
        let path = relative.join(&name);
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_paths(root, &path, paths, notes)?;
        } else if is_yaml_name(&name) {
            paths.push(path);
        } else if file_type.is_symlink() && root.join(&path).is_dir() {
            notes.push(Problem {
                file: path,
                document: None,
                severity: Severity::Warning,
                line: 0,
                column: 0,
                path: String::new(),
                message: "symlinked folders are not followed; move the files into the folder"
                    .into(),
            });
        }
    }
    Ok(())
}

fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Hidden files and the temporary names editors and package tools write next to a file.
fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name == "4913"
        || [".swp", ".swx", ".tmp"].iter().any(|s| name.ends_with(s))
        || [".dpkg-", ".ucf-"].iter().any(|s| name.contains(s))
}

fn read_file(root: &Path, relative: PathBuf, limits: &Limits) -> FileScan {
    let bytes = match read_bytes(root, &relative, limits) {
        Ok(bytes) => bytes,
        Err(message) => return failed(relative, Position::default(), message),
    };
    let text = match decode_utf8(bytes) {
        Ok(text) => text,
        Err((at, message)) => return failed(relative, at, message),
    };
    match parse_documents(&text, limits) {
        Ok(documents) => FileScan::Parsed {
            file: relative,
            documents,
        },
        Err(failure) => failed(relative, failure.at, failure.message),
    }
}

fn read_bytes(root: &Path, relative: &Path, limits: &Limits) -> Result<Vec<u8>, String> {
    let path = root.join(relative);
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve the file: {e}"))?;
    if !real.starts_with(root) {
        return Err(format!(
            "symlink leads outside the folder to {}; refused, copy the file into the folder",
            real.display()
        ));
    }
    let file = std::fs::File::open(&real).map_err(|e| format!("cannot open the file: {e}"))?;
    let mut bytes = Vec::new();
    let mut limited = file.take(limits.file_bytes + 1);
    limited
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > limits.file_bytes {
        return Err(format!(
            "file is larger than the limit of {} bytes; split it into several files",
            limits.file_bytes
        ));
    }
    Ok(bytes)
}

/// Decodes the file as UTF-8. A failure is placed at the first invalid byte, with the column
/// counted in characters like the YAML parser's positions.
fn decode_utf8(bytes: Vec<u8>) -> Result<String, (Position, String)> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let valid = String::from_utf8_lossy(&e.as_bytes()[..offset]);
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let at = Position {
            line: u32::try_from(valid.matches('\n').count() + 1).unwrap_or(u32::MAX),
            column: u32::try_from(valid[line_start..].chars().count() + 1).unwrap_or(u32::MAX),
        };
        let message = format!(
            "file is not valid UTF-8: byte offset {offset} starts an invalid sequence; save the \
             file as UTF-8"
        );
        (at, message)
    })
}

/// Checks a folder as `anomalyd check` does: every problem of every file, without any stored
/// state. Fails only when the folder cannot be listed.
pub fn check_folder(
    dir: &Path,
    secrets: &SecretSource,
    limits: &Limits,
) -> std::io::Result<Vec<Problem>> {
    load_snapshot(dir, secrets, limits).map(|(_, problems)| problems)
}

/// Loads a folder into a configuration without any stored state, for one-shot uses such as
/// replay. Documents with errors are left out, and every problem is returned beside it.
pub fn load_snapshot(
    dir: &Path,
    secrets: &SecretSource,
    limits: &Limits,
) -> std::io::Result<(ConfigSnapshot, Vec<Problem>)> {
    let scan = scan_folder(dir, limits)?;
    let validated = validate(&scan, &Previous::default(), secrets);
    let snapshot = build_snapshot(&validated.entities, secrets);
    Ok((snapshot, collect_problems(&scan, &validated)))
}

/// Lists every problem of a scan in `file:line:col` order.
pub(crate) fn collect_problems(scan: &FolderScan, validated: &Validated) -> Vec<Problem> {
    let mut problems = scan.notes.clone();
    for file in &scan.files {
        if let FileScan::Failed { problem, .. } = file {
            problems.push(problem.clone());
        }
    }
    let documents = validated.documents.iter();
    problems.extend(documents.flat_map(|d| d.problems.iter().cloned()));
    problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    problems
}
