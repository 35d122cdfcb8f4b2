//! The Prometheus text exposition served at `GET /metrics`: counters from the writer, open
//! anomalies from the store, GitOps document errors, the notification outbox and the process.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::engine::{Kind, State};
use crate::store::read::Totals;
use crate::writer::StatsSnapshot;

/// Content type of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub writer: StatsSnapshot,
    pub totals: Totals,
    /// Documents of the config folder whose last rescan failed; `None` without a folder.
    pub gitops_errors: Option<u64>,
    /// True when the last rescan could not read the config folder itself.
    pub gitops_folder_unreadable: bool,
    pub outbox: Outbox,
    pub process: Process,
}

/// State of the notification outbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbox {
    /// Notifications waiting to be delivered.
    pub depth: u64,
    /// Delivery attempts that failed since start.
    pub delivery_failures: u64,
}

/// Basics of this process, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub start_time_seconds: f64,
    pub uptime_seconds: f64,
}

static STARTED: OnceLock<(SystemTime, Instant)> = OnceLock::new();

/// Records the process start; the first call wins. Call it early in `main` or `serve`.
pub fn note_start() {
    STARTED.get_or_init(|| (SystemTime::now(), Instant::now()));
}

/// Builds the outbox figures from the pending row count and the delivery worker's counters.
pub fn outbox(depth: u64, deliveries: &crate::notify::DeliveryMetrics) -> Outbox {
    Outbox {
        depth,
        delivery_failures: deliveries.attempts().saturating_sub(deliveries.delivered()),
    }
}

impl Process {
    /// Reads resident memory and open descriptors of this process.
    pub fn read() -> Self {
        let (wall, mono) = *STARTED.get_or_init(|| (SystemTime::now(), Instant::now()));
        Self {
            resident_bytes: resident_bytes(),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            start_time_seconds: wall
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            uptime_seconds: mono.elapsed().as_secs_f64(),
        }
    }
}

/// VmRSS of this process in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_bytes(&status)
}

/// Parses the `VmRSS:` line of a `/proc/PID/status` file.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const KINDS: [(Kind, &str); 2] = [(Kind::Spike, "spike"), (Kind::Drift, "drift")];
/// States of an open row; a recovered row is closed.
const OPEN_STATES: [(State, &str); 2] = [
    (State::Suspicious, "suspicious"),
    (State::Anomaly, "anomaly"),
];

/// Writes the exposition.
pub fn render(scrape: &Scrape) -> String {
    let mut out = Exposition::default();
    let w = &scrape.writer;
    out.counter("anomalyd_results_total", "Check results stored.", w.results);
    out.counter(
        "anomalyd_field_evaluations_total",
        "Fields evaluated against their baseline.",
        w.field_evaluations,
    );
    out.counter(
        "anomalyd_invalid_samples_total",
        "Field values that could not be evaluated (wrong type or not finite).",
        w.invalid_samples,
    );
    out.gauge(
        "anomalyd_series",
        "Series known.",
        scrape.totals.series as f64,
    );
    out.gauge(
        "anomalyd_storage_failed",
        "1 once a storage error stopped all writes until a restart, else 0.",
        f64::from(u8::from(w.storage_failed)),
    );

    render_open(&mut out, &scrape.totals);
    render_analyzer(&mut out, w);

    if let Some(errors) = scrape.gitops_errors {
        out.gauge(
            "anomalyd_gitops_documents_in_error",
            "Documents of the config folder not applied at the last rescan.",
            errors as f64,
        );
        out.gauge(
            "anomalyd_gitops_folder_unreadable",
            "1 when the last rescan could not read the config folder, so its changes are not applied.",
            f64::from(u8::from(scrape.gitops_folder_unreadable)),
        );
    }
    out.gauge(
        "anomalyd_outbox_depth",
        "Notifications waiting to be delivered.",
        scrape.outbox.depth as f64,
    );
    out.counter(
        "anomalyd_delivery_failures_total",
        "Notification delivery attempts that failed.",
        scrape.outbox.delivery_failures,
    );

    render_process(&mut out, &scrape.process);
    out.text
}

fn render_open(out: &mut Exposition, totals: &Totals) {
    out.header(
        "anomalyd_open_anomalies",
        "gauge",
        "Open anomaly rows by kind and state.",
    );
    for (kind, kind_name) in KINDS {
        for (state, state_name) in OPEN_STATES {
            let count = totals.open.get(&(kind, state)).copied().unwrap_or(0);
            out.line(
                &format!("anomalyd_open_anomalies{{kind=\"{kind_name}\",state=\"{state_name}\"}}"),
                count as f64,
            );
        }
    }
}

fn render_analyzer(out: &mut Exposition, w: &StatsSnapshot) {
    out.counter(
        "anomalyd_analyzer_runs_total",
        "Analyzer runs committed.",
        w.analyzer_runs,
    );
    out.header(
        "anomalyd_analyzer_duration_seconds_total",
        "counter",
        "Time spent in analyzer runs.",
    );
    out.line(
        "anomalyd_analyzer_duration_seconds_total",
        w.analyzer_time.as_secs_f64(),
    );
    out.gauge(
        "anomalyd_analyzer_last_duration_seconds",
        "Duration of the last analyzer run.",
        w.last_analyzer_time.as_secs_f64(),
    );
    out.counter(
        "anomalyd_retention_follow_up_passes_total",
        "Retention passes run after a pass reached its raw sample limit.",
        w.retention_follow_ups,
    );
}

fn render_process(out: &mut Exposition, p: &Process) {
    if let Some(bytes) = p.resident_bytes {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            bytes as f64,
        );
    }
    if let Some(fds) = p.open_fds {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            fds as f64,
        );
    }
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        p.start_time_seconds,
    );
    out.gauge(
        "anomalyd_uptime_seconds",
        "Seconds since the process started.",
        p.uptime_seconds,
    );
}

/// Text being written, one metric family after another.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, series: &str, value: f64) {
        let _ = writeln!(self.text, "{series} {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.line(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_labels() {
        let mut scrape = Scrape::default();
        scrape.writer.results = 7;
        scrape.writer.retention_follow_ups = 4;
        scrape.totals.series = 3;
        scrape.totals.open.insert((Kind::Drift, State::Anomaly), 2);
        scrape.gitops_errors = Some(1);
        scrape.gitops_folder_unreadable = true;
        let text = render(&scrape);
        assert!(text.contains("# TYPE anomalyd_results_total counter\nanomalyd_results_total 7\n"));
        assert!(text.contains("anomalyd_series 3\n"));
        assert!(text.contains("anomalyd_storage_failed 0\n"));
        assert!(text.contains("anomalyd_retention_follow_up_passes_total 4\n"));
        assert!(text.contains("anomalyd_open_anomalies{kind=\"drift\",state=\"anomaly\"} 2\n"));
        assert!(text.contains("anomalyd_open_anomalies{kind=\"spike\",state=\"suspicious\"} 0\n"));
        assert!(
            !text.contains("state=\"recovered\""),
            "a closed state is listed: {text}"
        );
        assert!(text.contains("anomalyd_gitops_documents_in_error 1\n"));
        assert!(text.contains("anomalyd_gitops_folder_unreadable 1\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn leaves_out_gitops_without_a_folder() {
        assert!(!render(&Scrape::default()).contains("gitops"));
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tanomalyd\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(12345 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
    }
}
