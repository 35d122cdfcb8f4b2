//! Shared helpers of the gitops integration tests: a temp config folder and a temp redb file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anomalyd::gitops::{Problem, Reconciler, ReconcilerOptions, RescanReport, Severity};

/// A config folder and a store, both in temp dirs that vanish with the value.
pub struct Folder {
    pub config: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub db: Arc<redb::Database>,
}

impl Folder {
    pub fn new() -> Self {
        let config = tempfile::tempdir().expect("temp config dir");
        let state = tempfile::tempdir().expect("temp state dir");
        let db = redb::Database::create(state.path().join("anomalyd.redb")).expect("create redb");
        Self {
            config,
            state,
            db: Arc::new(db),
        }
    }

    pub fn dir(&self) -> &Path {
        self.config.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.config.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(path, text).expect("write config file");
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.path(relative)).expect("remove config file");
    }

    pub fn options(&self) -> ReconcilerOptions {
        ReconcilerOptions::new(self.dir())
    }

    pub fn reconciler(&self) -> Reconciler {
        Reconciler::open(self.options(), self.db.clone()).expect("open reconciler")
    }

    /// Copies every file of a folder in the repository into the config folder.
    pub fn copy_from(&self, source: &Path) {
        copy_tree(source, self.dir());
    }
}

/// Copies every file under `from` into `to`, creating subfolders.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read source dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create dir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Returns the errors of a report.
pub fn errors(report: &RescanReport) -> Vec<&Problem> {
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error);
    errors.collect()
}

/// Returns the warnings of a report.
pub fn warnings(report: &RescanReport) -> Vec<&Problem> {
    let warnings = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning);
    warnings.collect()
}

/// Finds the one problem whose message contains `text`, failing with every problem listed.
pub fn find<'a>(report: &'a RescanReport, text: &str) -> &'a Problem {
    let found: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| p.message.contains(text))
        .collect();
    assert!(
        !found.is_empty(),
        "no problem mentions {text:?}; problems: {:#?}",
        report.problems
    );
    found[0]
}

pub const COLLECTORS: &str = "\
apiVersion: anomalyd.dev/v1
kind: Collector
metadata:
  name: queue-a
spec:
  id: acme.queue-a
  fields:
    durationMs:
      type: number
      x-anomaly-direction: lower-is-better
---
apiVersion: anomalyd.dev/v1
kind: Collector
metadata:
  name: queue-b
spec:
  id: acme.queue-b
  fields:
    durationMs:
      type: number
      x-anomaly-direction: lower-is-better
    depth:
      type: number
      x-anomaly-direction: lower-is-better
";

pub const HEALTHCHECK: &str = "\
apiVersion: checkstack.io/v1alpha1
kind: Healthcheck
metadata:
  name: web
spec:
  strategy: acme.queue-runner
  intervalSeconds: 30
  config: {}
  collectors:
    - collectorId: acme.queue-a
    - collectorId: acme.queue-b
  anomaly:
    baselineWindow: 14d
    fieldOverrides:
      \"collectors.acme.queue-a.durationMs\":
        sensitivity: 2
";

pub const SYSTEM: &str = "\
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: shop
spec:
  healthchecks:
    - ref: { kind: Healthcheck, name: web }
  anomaly:
    - healthcheckRef: { kind: Healthcheck, name: web }
      notify: false
";

/// Writes the collectors, healthcheck and system every error test starts from.
pub fn write_baseline(folder: &Folder) {
    folder.write("collectors.yaml", COLLECTORS);
    folder.write("checks/web.yaml", HEALTHCHECK);
    folder.write("systems/shop.yaml", SYSTEM);
}
