//! Per-document status for `GET /api/v1/gitops`, and the read-only rule for entities that YAML
//! defines.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Problem, Severity};
use crate::config::Source;

/// Outcome of the last rescan for one document (or one whole file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentState {
    /// Applied without findings.
    Synced,
    /// Applied (or ignored, for kinds anomalyd does not use) with warnings.
    Warning,
    /// Not applied, so the previous definition, if any, stays in effect.
    Error,
}

/// One finding shown with a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMessage {
    pub severity: Severity,
    /// Line from 1, or 0 for a finding about the whole file (unreadable, too large).
    pub line: u32,
    pub column: u32,
    /// Key path inside the document, empty for the whole document or file.
    pub path: String,
    pub message: String,
}

impl From<&Problem> for StatusMessage {
    fn from(problem: &Problem) -> Self {
        Self {
            severity: problem.severity,
            line: problem.line,
            column: problem.column,
            path: problem.path.clone(),
            message: problem.message.clone(),
        }
    }
}

/// Status of one document of the folder. `document` is `None` for a row about a whole file that
/// could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentStatus {
    /// Path relative to the folder.
    pub file: PathBuf,
    pub document: Option<usize>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub state: DocumentState,
    pub messages: Vec<StatusMessage>,
    /// True when this document or file failed and what it defined before is still in effect.
    pub kept_previous: bool,
    /// When the definition in this document was last applied.
    pub last_applied: Option<jiff::Timestamp>,
}

impl DocumentStatus {
    /// Orders rows by file, then document, with the whole-file row first.
    pub(crate) fn sort_key(&self) -> (PathBuf, Option<usize>) {
        (self.file.clone(), self.document)
    }
}

/// Works out the state from the findings.
pub(crate) fn state_of(messages: &[StatusMessage]) -> DocumentState {
    let worst = messages.iter().map(|m| m.severity).max();
    match worst {
        Some(Severity::Error) => DocumentState::Error,
        Some(Severity::Warning) => DocumentState::Warning,
        None => DocumentState::Synced,
    }
}

/// The config folder itself could not be read at the last rescan, for example because it was
/// moved away. The configuration applied before stays in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderError {
    pub message: String,
    /// Start of the failed rescans in a row: the time of the first of them.
    pub since: jiff::Timestamp,
}

/// The status that `GET /api/v1/gitops` serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderStatus {
    /// Rows of the last rescan that read the folder, or the stored rows before the first one.
    pub documents: Arc<Vec<DocumentStatus>>,
    /// Set while rescans fail to read the folder, and cleared by the next one that reads it.
    pub folder_error: Option<FolderError>,
}

/// Serializes the status as the JSON body of `GET /api/v1/gitops`:
/// `{"documents": [...], "folderError": null}`, or `folderError` with `message` and `since`.
pub fn status_body(status: &FolderStatus) -> String {
    let body = serde_json::json!({
        "documents": *status.documents,
        "folderError": status.folder_error,
    });
    body.to_string()
}

/// A write through the API on an entity that a YAML file defines. The HTTP layer responds with
/// 409 Conflict and this message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{kind} {name} is defined in {} (document {document}) of the config folder and is read-only \
     here; edit that file instead",
    file.display()
)]
pub struct ReadOnlyEntity {
    pub kind: String,
    pub name: String,
    pub file: PathBuf,
    pub document: usize,
}

impl ReadOnlyEntity {
    /// The HTTP status code for this error.
    pub const STATUS: u16 = 409;
}

/// Checks that an entity may be changed through the API: entities from YAML may not.
pub fn ensure_writable(kind: &str, name: &str, source: &Source) -> Result<(), ReadOnlyEntity> {
    match source {
        Source::Api => Ok(()),
        Source::Yaml { file, document } => Err(ReadOnlyEntity {
            kind: kind.to_owned(),
            name: name.to_owned(),
            file: file.clone(),
            document: *document,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_entity_is_read_only() {
        let source = Source::Yaml {
            file: PathBuf::from("systems/shop.yaml"),
            document: 1,
        };
        let err = ensure_writable("System", "shop", &source).expect_err("yaml entity");
        assert!(err.to_string().contains("systems/shop.yaml"), "{err}");
        assert_eq!(ReadOnlyEntity::STATUS, 409);
    }

    #[test]
    fn api_entity_is_writable() {
        assert_eq!(ensure_writable("System", "shop", &Source::Api), Ok(()));
    }
}
