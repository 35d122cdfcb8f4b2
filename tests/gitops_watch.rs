//! The watcher on a real temp folder: creates, in-place edits, editor-style renames, deletes and
//! a broken edit followed by a fix each take effect within 2 s, also in a folder that replaced
//! the watched one. The status stays readable while
//! a rescan waits for its commit.

mod gitops_support;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use anomalyd::config::ConfigSnapshot;
use anomalyd::gitops::{DatabaseHandle, DocumentState, Reconciler, RescanReport, Watching};
use gitops_support::{Folder, HEALTHCHECK, copy_tree, write_baseline};
use tokio::sync::watch;

const APPLY_WITHIN: Duration = Duration::from_secs(2);

async fn start(folder: &Folder) -> Watching {
    let reconciler = Arc::new(folder.reconciler());
    let mut reports = reconciler.subscribe_reports();
    let watching = reconciler.spawn().expect("start watcher");
    let first = tokio::time::timeout(APPLY_WITHIN, reports.wait_for(Option::is_some)).await;
    first
        .expect("initial rescan in time")
        .expect("reports open");
    watching
}

/// Waits until the configuration in effect satisfies `done`.
async fn until(
    changes: &mut watch::Receiver<Arc<ConfigSnapshot>>,
    what: &str,
    done: impl FnMut(&Arc<ConfigSnapshot>) -> bool,
) {
    let waited = tokio::time::timeout(APPLY_WITHIN, changes.wait_for(done)).await;
    let seen = waited.unwrap_or_else(|_| panic!("{what} not applied within {APPLY_WITHIN:?}"));
    seen.expect("snapshot channel open");
}

/// Waits until a rescan report satisfies `done`.
async fn until_report(
    reports: &mut watch::Receiver<Option<Arc<RescanReport>>>,
    what: &str,
    mut done: impl FnMut(&RescanReport) -> bool,
) {
    let check = |r: &Option<Arc<RescanReport>>| r.as_deref().is_some_and(&mut done);
    let waited = tokio::time::timeout(APPLY_WITHIN, reports.wait_for(check)).await;
    let seen = waited.unwrap_or_else(|_| panic!("{what} not reported within {APPLY_WITHIN:?}"));
    seen.expect("report channel open");
}

fn interval(snapshot: &ConfigSnapshot) -> Option<u32> {
    snapshot.healthchecks.get("web").map(|h| h.interval_secs)
}

#[tokio::test]
async fn initial_rescan_applies_the_folder() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let snapshot = watching.reconciler().snapshot();
    assert_eq!(interval(&snapshot), Some(30));
    assert!(snapshot.systems.contains_key("shop"));
}

#[tokio::test]
async fn idle_folder_is_not_rescanned() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut reports = watching.reconciler().subscribe_reports();
    reports.mark_unchanged();
    // Reading the files must not count as a change: a rescan here would mean the watcher
    // triggers itself, every debounce interval, forever.
    let rescanned = tokio::time::timeout(Duration::from_millis(1500), reports.changed()).await;
    assert!(
        rescanned.is_err(),
        "the folder was rescanned without any change"
    );
}

#[tokio::test]
async fn created_file_is_applied() {
    let folder = Folder::new();
    let watching = start(&folder).await;
    let mut changes = watching.reconciler().subscribe();
    write_baseline(&folder);
    until(&mut changes, "new files", |s| {
        s.systems.contains_key("shop")
    })
    .await;
}

#[tokio::test]
async fn edit_in_place_is_applied() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut changes = watching.reconciler().subscribe();
    folder.write(
        "checks/web.yaml",
        &HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 15"),
    );
    until(&mut changes, "in-place edit", |s| interval(s) == Some(15)).await;
}

#[tokio::test]
async fn rename_over_the_file_is_applied() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut changes = watching.reconciler().subscribe();
    for (round, seconds) in [20, 25, 35].into_iter().enumerate() {
        let edited = HEALTHCHECK.replace(
            "intervalSeconds: 30",
            &format!("intervalSeconds: {seconds}"),
        );
        folder.write("checks/.web.yaml.swp", &edited);
        std::fs::rename(
            folder.path("checks/.web.yaml.swp"),
            folder.path("checks/web.yaml"),
        )
        .expect("rename over the file");
        let what = format!("rename {round}");
        until(&mut changes, &what, |s| interval(s) == Some(seconds)).await;
    }
}

fn with_interval(seconds: u32) -> String {
    HEALTHCHECK.replace(
        "intervalSeconds: 30",
        &format!("intervalSeconds: {seconds}"),
    )
}

#[tokio::test]
async fn replaced_folder_is_followed() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut changes = watching.reconciler().subscribe();

    // Deploy a new folder the usual way: prepare it beside the old one, then swap them.
    let staged = folder.dir().with_extension("new");
    let retired = folder.dir().with_extension("old");
    std::fs::create_dir(&staged).expect("create the staged folder");
    copy_tree(folder.dir(), &staged);
    std::fs::write(staged.join("checks/web.yaml"), with_interval(15)).expect("edit staged");
    std::fs::rename(folder.dir(), &retired).expect("move the old folder away");
    std::fs::rename(&staged, folder.dir()).expect("move the new folder in");
    until(&mut changes, "replaced folder", |s| interval(s) == Some(15)).await;

    // Edits in the new folder take effect through its own watch.
    for seconds in [45, 50] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        folder.write("checks/web.yaml", &with_interval(seconds));
        let what = format!("edit to {seconds} s in the new folder");
        until(&mut changes, &what, |s| interval(s) == Some(seconds)).await;
    }
    std::fs::remove_dir_all(&retired).expect("remove the old folder");
}

#[tokio::test]
async fn deleted_file_is_removed() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut changes = watching.reconciler().subscribe();
    folder.remove("systems/shop.yaml");
    until(&mut changes, "delete", |s| s.systems.is_empty()).await;
}

#[tokio::test]
async fn broken_edit_then_fix() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let reconciler = watching.reconciler().clone();
    let mut reports = reconciler.subscribe_reports();
    let mut changes = reconciler.subscribe();
    let before = reconciler.snapshot();

    folder.write(
        "checks/web.yaml",
        "apiVersion: checkstack.io/v1alpha1\nkind: [\n",
    );
    let file_failed = |r: &RescanReport| {
        r.documents
            .iter()
            .any(|d| d.file.to_str() == Some("checks/web.yaml") && d.state == DocumentState::Error)
    };
    until_report(&mut reports, "broken edit", file_failed).await;
    assert_eq!(
        reconciler.snapshot(),
        before,
        "the broken edit changed nothing"
    );

    folder.write(
        "checks/web.yaml",
        &HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 50"),
    );
    until(&mut changes, "fix", |s| interval(s) == Some(50)).await;
    let rows = reconciler.status();
    let row = rows
        .iter()
        .find(|d| d.file.to_str() == Some("checks/web.yaml"));
    assert_eq!(row.map(|r| r.state), Some(DocumentState::Synced));
}

#[tokio::test]
async fn requested_rescan_runs() {
    let folder = Folder::new();
    write_baseline(&folder);
    let watching = start(&folder).await;
    let mut reports = watching.reconciler().subscribe_reports();
    reports.mark_unchanged();
    watching.request_rescan();
    let changed = tokio::time::timeout(APPLY_WITHIN, reports.changed()).await;
    changed.expect("rescan in time").expect("reports open");
}

/// A store handle that signals each use, so a test can wait until a rescan reaches its commit.
struct ReportingDatabase {
    db: Arc<redb::Database>,
    uses: mpsc::Sender<()>,
}

impl DatabaseHandle for ReportingDatabase {
    fn database(&self) -> &redb::Database {
        self.uses.send(()).ok();
        &self.db
    }
}

#[test]
fn status_readable_during_rescan_commit() {
    let folder = Folder::new();
    write_baseline(&folder);
    let (uses, used) = mpsc::channel();
    let db = folder.db.clone();
    let handle = Arc::new(ReportingDatabase { db, uses });
    let opened = Reconciler::open(folder.options(), handle);
    let reconciler = Arc::new(opened.expect("open reconciler"));
    reconciler.rescan().expect("first rescan");
    let before = reconciler.status();
    folder.write(
        "checks/api.yaml",
        &HEALTHCHECK.replace("name: web", "name: api"),
    );
    while used.try_recv().is_ok() {}

    // The rescan's write transaction waits behind this one, as it would behind the writer.
    let blocking_write = folder.db.begin_write().expect("begin the blocking write");
    let rescanning = {
        let reconciler = reconciler.clone();
        std::thread::spawn(move || reconciler.rescan())
    };
    used.recv_timeout(APPLY_WITHIN)
        .expect("the rescan reaches its commit");
    let (sent, status) = mpsc::channel();
    let reader = reconciler.clone();
    std::thread::spawn(move || sent.send((reader.status(), reader.status_json())));
    let (rows, json) = status
        .recv_timeout(APPLY_WITHIN)
        .expect("status returned while the rescan waits for its commit");
    assert_eq!(rows, before);
    assert!(!json.contains("checks/api.yaml"), "{json}");

    blocking_write.abort().expect("abort the blocking write");
    let report = rescanning.join().expect("rescan thread");
    assert!(report.expect("rescan").changed);
    let after = reconciler.status();
    let files: Vec<_> = after.iter().filter_map(|d| d.file.to_str()).collect();
    assert!(files.contains(&"checks/api.yaml"), "{files:?}");
}
