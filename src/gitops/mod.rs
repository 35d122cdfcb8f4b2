//! The GitOps YAML folder: reading and parsing files, validating documents into the
//! [`ConfigSnapshot`](crate::config::ConfigSnapshot), storing the last good state in redb,
//! watching the folder and reporting per-document status.
//!
//! Raw YAML stays in this module, and the rest of the program gets only validated configuration.

mod anomaly;
mod collector;
mod envelope;
mod fields;
mod healthcheck;
mod load;
mod node;
mod notifier;
mod parse;
mod reconcile;
pub mod schema;
pub mod secrets;
mod settings;
mod status;
mod system;
mod tables;
mod validate;
mod watch;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use load::{Limits, check_folder, load_snapshot};
pub use reconcile::{DatabaseHandle, ReconcileError, Reconciler, ReconcilerOptions, RescanReport};
pub use secrets::SecretSource;
pub use status::{
    DocumentState, DocumentStatus, FolderError, FolderStatus, ReadOnlyEntity, StatusMessage,
    ensure_writable, status_body,
};
pub use watch::{WatchError, Watching};

/// Severity of a problem: an error keeps the document from being applied, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about a file of the folder, located by line and column. Both count from 1, and
/// both are 0 when the problem concerns the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Path relative to the folder.
    pub file: PathBuf,
    /// Index of the document in the file, counting non-empty documents from 0.
    pub document: Option<usize>,
    pub severity: Severity,
    pub line: u32,
    pub column: u32,
    /// Key path inside the document, for example `spec.intervalSeconds`, or empty for the whole
    /// document or file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// Formats as `file:line:col: severity: path: message`, the form editors and CI understand.
    /// A problem without a position (line 0), such as an unreadable file, leaves out
    /// `:line:col`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}: ", self.severity)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}
