//! `anomalyd replay` over real NAB traces and small hand-written inputs, through the library
//! entry point and the built binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anomalyd::engine::Timestamp;
use anomalyd::replay::{self, ReplayArgs, ReplaySummary};

const EC2: &str = "realKnownCause/ec2_request_latency_system_failure.csv";

fn nab(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nab")
        .join(relative)
}

fn args(input: PathBuf) -> ReplayArgs {
    ReplayArgs {
        input,
        format: None,
        system: "replay".into(),
        healthcheck: "replay".into(),
        field: replay::CSV_FIELD_PATH.into(),
        direction: None,
        sensitivity: None,
        confirmation_window: None,
        min_absolute_delta: None,
        min_relative_delta: None,
        baseline_window: None,
        config_dir: None,
        events: None,
        scores: None,
    }
}

fn civil_utc(text: &str) -> Timestamp {
    let civil: jiff::civil::DateTime = text.parse().expect("label timestamp");
    let instant = jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .expect("in range");
    Timestamp(instant.as_millisecond())
}

/// Reads the labelled anomaly windows of one NAB file as inclusive time ranges.
fn labelled_windows(file: &str) -> Vec<(Timestamp, Timestamp)> {
    let text = fs::read_to_string(nab("labels/combined_windows.json")).expect("labels");
    let labels: serde_json::Value = serde_json::from_str(&text).expect("labels are JSON");
    labels[file]
        .as_array()
        .expect("the file has labelled windows")
        .iter()
        .map(|window| {
            let bound = |i: usize| civil_utc(window[i].as_str().expect("a timestamp"));
            (bound(0), bound(1))
        })
        .collect()
}

fn run_quietly(args: &ReplayArgs) -> (ReplaySummary, String) {
    let mut summary_text = Vec::new();
    let summary = replay::run(args, &mut summary_text).expect("replay succeeds");
    (
        summary,
        String::from_utf8(summary_text).expect("utf-8 summary"),
    )
}

#[test]
fn ec2_failure_confirmed_in_two_windows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = args(nab(EC2));
    args.events = Some(dir.path().join("events.ndjson"));
    let (summary, _) = run_quietly(&args);

    let windows = labelled_windows(EC2);
    assert_eq!(windows.len(), 3);
    let hit: Vec<bool> = windows
        .iter()
        .map(|(start, end)| {
            summary
                .confirmed()
                .filter_map(|episode| episode.confirmed_at)
                .any(|at| *start <= at && at <= *end)
        })
        .collect();
    let hits = hit.iter().filter(|hit| **hit).count();
    assert!(hits >= 2, "confirmed in windows {hit:?}: {summary}");
    assert_eq!(summary.rows, 4032);
    assert_eq!(summary.samples, 4032);
    assert_eq!(summary.invalid_samples, 0);
}

#[test]
fn flatline_never_confirms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = args(nab("artificialNoAnomaly/art_flatline.csv"));
    args.events = Some(dir.path().join("events.ndjson"));
    let (summary, _) = run_quietly(&args);
    assert_eq!(summary.confirmed().count(), 0, "{summary}");
    assert!(summary.analyzer_runs > 0);
}

#[test]
fn replay_is_deterministic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut outputs = Vec::new();
    for name in ["first.ndjson", "second.ndjson"] {
        let mut args = args(nab(EC2));
        args.events = Some(dir.path().join(name));
        run_quietly(&args);
        outputs.push(fs::read_to_string(dir.path().join(name)).expect("events written"));
    }
    assert!(!outputs[0].is_empty());
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn scores_mark_the_confirmation_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("step.csv");
    fs::write(&input, csv_with(48, 3)).expect("write input");
    let mut args = args(input);
    args.events = Some(dir.path().join("events.ndjson"));
    args.scores = Some(dir.path().join("scores.csv"));
    let (summary, summary_text) = run_quietly(&args);

    assert_eq!(summary.confirmed().count(), 1, "{summary_text}");
    assert!(
        summary_text.contains("1 confirmed anomaly\n"),
        "{summary_text}"
    );
    let scores = fs::read_to_string(dir.path().join("scores.csv")).expect("scores written");
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines.len(), 52);
    assert_eq!(lines[0], "timestamp,value,score");
    assert_eq!(lines[1], "2020-01-01 00:00:00,100,0");
    let scored: Vec<(usize, f64)> = lines[1..]
        .iter()
        .enumerate()
        .map(|(row, line)| {
            (
                row,
                line.rsplit(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("score"),
            )
        })
        .filter(|(_, score)| *score > 0.0)
        .collect();
    assert_eq!(scored.len(), 1, "{scored:?}");
    let (row, score) = scored[0];
    assert_eq!(
        row, 50,
        "the third anomalous row confirms with the default window of 3"
    );
    assert!(score > 0.9, "{score}");
    assert!(score <= 1.0, "{score}");

    let events = fs::read_to_string(dir.path().join("events.ndjson")).expect("events written");
    let states: Vec<String> = events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON event"))
        .filter(|event| event["type"] == "state-changed")
        .map(|event| event["state"].as_str().expect("state").to_owned())
        .collect();
    assert_eq!(states, ["suspicious", "anomaly"]);
}

#[test]
fn ndjson_results_replay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::new();
    for i in 0..40 {
        let value = if i < 36 { 100 + i % 4 } else { 900 };
        let status = if i == 10 { "unhealthy" } else { "healthy" };
        text.push_str(&format!(
            "{{\"system\":\"shop\",\"healthcheck\":\"api\",\"status\":\"{status}\",\
             \"timestamp\":\"2020-01-01T00:{i:02}:00Z\",\
             \"collectors\":{{\"custom.probe\":{{\"latencyMs\":{value},\"note\":null}}}}}}\n"
        ));
    }
    let input = dir.path().join("results.ndjson");
    fs::write(&input, text).expect("write input");
    let mut args = args(input);
    args.direction = Some(replay::DirectionArg::LowerIsBetter);
    args.events = Some(dir.path().join("events.ndjson"));
    let (summary, _) = run_quietly(&args);

    assert_eq!(summary.rows, 40);
    assert_eq!(summary.samples, 80);
    assert_eq!(summary.unhealthy_samples, 2);
    assert_eq!(
        summary.invalid_samples, 39,
        "the null note of every healthy row"
    );
    let confirmed: Vec<_> = summary.confirmed().collect();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(
        confirmed[0].key.field_path,
        "collectors.custom.probe.latencyMs"
    );
}

#[test]
fn scores_rejected_for_ndjson() {
    let mut args = args(PathBuf::from("results.ndjson"));
    args.scores = Some(PathBuf::from("scores.csv"));
    let error = replay::run(&args, &mut Vec::new()).expect_err("scores need CSV");
    assert!(
        error.to_string().contains("--scores needs CSV input"),
        "{error}"
    );
}

#[test]
fn invalid_flags_rejected() {
    type Change = fn(&mut ReplayArgs);
    let cases: [(Change, &str); 7] = [
        (|a| a.sensitivity = Some(0.0), "--sensitivity"),
        (|a| a.system = "Bad".into(), "--system"),
        (|a| a.healthcheck = "web check".into(), "--healthcheck"),
        (|a| a.field = "collectors.Bad.value".into(), "--field"),
        (|a| a.confirmation_window = Some(0), "--confirmation-window"),
        (
            |a| a.baseline_window = Some("2w".into()),
            "--baseline-window",
        ),
        (|a| a.field = "value".into(), "--field"),
    ];
    for (change, flag) in cases {
        let mut args = args(nab(EC2));
        change(&mut args);
        let error = replay::run(&args, &mut Vec::new()).expect_err(flag);
        assert!(error.to_string().contains(flag), "{error}");
    }
}

#[test]
fn binary_writes_only_requested_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("step.csv");
    fs::write(&input, csv_with(48, 3)).expect("write input");
    let output = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .current_dir(dir.path())
        .args(["replay", "step.csv", "--direction", "lower-is-better"])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 events");
    assert!(stdout.lines().count() >= 2, "events on stdout: {stdout}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 summary");
    assert!(stderr.contains("replayed 51 rows"), "{stderr}");
    let files: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(files.len(), 1, "only the input remains: {files:?}");
}

#[test]
fn binary_reports_bad_csv_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("bad.csv");
    fs::write(
        &input,
        "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,fast\n",
    )
    .expect("write input");
    let output = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .args(["replay", input.to_str().expect("utf-8 path")])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).expect("utf-8 error");
    assert!(
        stderr.contains("CSV line 3: value `fast` is not a number"),
        "{stderr}"
    );
}

/// `normal` rows around 100 then `anomalous` rows of 1000, five minutes apart.
fn csv_with(normal: usize, anomalous: usize) -> String {
    let mut text = String::from("timestamp,value\n");
    for i in 0..normal + anomalous {
        let minutes = i * 5;
        let value = if i < normal { 100 + i % 3 } else { 1000 };
        text.push_str(&format!(
            "2020-01-01 {:02}:{:02}:00,{value}\n",
            minutes / 60,
            minutes % 60
        ));
    }
    text
}

fn folder_args(dir: &Path, input: PathBuf) -> ReplayArgs {
    let mut args = args(input);
    args.config_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops"));
    args.system = "payments-api".into();
    args.healthcheck = "payments-api-http".into();
    args.field = "collectors.healthcheck-http.request.responseTimeMs".into();
    args.events = Some(dir.join("events.ndjson"));
    args
}

#[test]
fn config_dir_settings_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The folder's assignment sets a confirmation window of 4 for this field.
    let three = dir.path().join("three.csv");
    fs::write(&three, csv_with(48, 3)).expect("write input");
    let (summary, _) = run_quietly(&folder_args(dir.path(), three));
    assert_eq!(summary.suspicious_episodes(), 1);
    assert_eq!(
        summary.confirmed().count(),
        0,
        "three rows do not reach a window of 4"
    );

    let four = dir.path().join("four.csv");
    fs::write(&four, csv_with(48, 4)).expect("write input");
    let (summary, _) = run_quietly(&folder_args(dir.path(), four));
    assert_eq!(summary.confirmed().count(), 1, "{summary}");
}

#[test]
fn config_dir_rejects_settings_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = folder_args(dir.path(), nab(EC2));
    args.sensitivity = Some(2.0);
    let error = replay::run(&args, &mut Vec::new()).expect_err("flags and folder conflict");
    assert!(
        error
            .to_string()
            .contains("--sensitivity cannot be combined"),
        "{error}"
    );
}

/// Runs the binary on `input` written into a fresh folder, with `--events` and `--scores`
/// pointing into it and the scores file already holding earlier output. Returns the exit
/// status, stdout, stderr and the folder.
fn run_binary_on(name: &str, input: &str) -> (bool, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join(name), input).expect("write input");
    fs::write(dir.path().join("scores.csv"), "earlier output\n").expect("write scores");
    let output = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .current_dir(dir.path())
        .args([
            "replay",
            name,
            "--events",
            "events.ndjson",
            "--scores",
            "scores.csv",
        ])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    (output.status.success(), stdout, stderr, dir)
}

/// Asserts that a rejected replay wrote no events and left the scores file alone.
fn assert_nothing_written(dir: &Path, stdout: &str) {
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert!(
        !dir.join("events.ndjson").exists(),
        "an events file was created"
    );
    let scores = fs::read_to_string(dir.join("scores.csv")).expect("scores file");
    assert_eq!(scores, "earlier output\n");
}

#[test]
fn binary_rejects_empty_csv() {
    for input in ["", "\n  \n"] {
        let (success, stdout, stderr, dir) = run_binary_on("empty.csv", input);
        assert!(!success, "{input:?} was accepted");
        assert!(stderr.contains("empty.csv is empty"), "{stderr}");
        assert!(stderr.contains("`timestamp,value` rows"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert_nothing_written(dir.path(), &stdout);
    }
}

#[test]
fn binary_rejects_header_only_csv() {
    let (success, stdout, stderr, dir) = run_binary_on("header.csv", "timestamp,value\n\n");
    assert!(!success);
    assert!(
        stderr.contains("header.csv has a header but no rows"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_nothing_written(dir.path(), &stdout);
}

#[test]
fn binary_rejects_backward_timestamps() {
    let input = concat!(
        "timestamp,value\n",
        "2020-01-01 00:00:00,1\n",
        "2020-01-01 00:05:00,2\n",
        "2020-01-01 00:05:00,3\n",
        "2020-01-01 00:04:59,4\n",
        "2020-01-01 00:10:00,5\n",
    );
    let (success, stdout, stderr, dir) = run_binary_on("unsorted.csv", input);
    assert!(!success);
    assert!(
        stderr.contains(
            "unsorted.csv line 5: timestamp 2020-01-01 00:04:59 is earlier than \
             2020-01-01 00:05:00 on line 4"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_nothing_written(dir.path(), &stdout);
}

#[test]
fn ndjson_backward_timestamps_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = |minute: u32| {
        format!(
            "{{\"system\":\"shop\",\"healthcheck\":\"api\",\"status\":\"healthy\",\
             \"timestamp\":\"2020-01-01T00:{minute:02}:00Z\",\
             \"collectors\":{{\"custom.probe\":{{\"latencyMs\":100}}}}}}\n"
        )
    };
    let input = dir.path().join("results.ndjson");
    fs::write(&input, [line(1), line(2), line(0)].concat()).expect("write input");
    let mut unsorted = args(input);
    unsorted.events = Some(dir.path().join("events.ndjson"));
    let error = replay::run(&unsorted, &mut Vec::new()).expect_err("rows out of order");
    let message = error.to_string();
    assert!(message.contains("results.ndjson line 3"), "{message}");
    assert!(
        message.contains("2020-01-01T00:00:00Z is earlier than 2020-01-01T00:02:00Z on line 2"),
        "{message}"
    );
    assert!(!dir.path().join("events.ndjson").exists());

    let empty = dir.path().join("empty.ndjson");
    fs::write(&empty, "\n").expect("write input");
    let error = replay::run(&args(empty), &mut Vec::new()).expect_err("no rows");
    assert!(
        error.to_string().contains("empty.ndjson is empty"),
        "{error}"
    );
}

#[test]
fn equal_timestamps_replay_in_file_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = csv_with(48, 3);
    text.push_str("2020-01-01 04:10:00,100\n");
    let input = dir.path().join("repeated.csv");
    fs::write(&input, text).expect("write input");
    let mut args = args(input);
    args.events = Some(dir.path().join("events.ndjson"));
    let (summary, _) = run_quietly(&args);
    assert_eq!(summary.rows, 52);
    assert_eq!(summary.confirmed().count(), 1, "{summary}");
}

/// `normal` rows around 100 then `anomalous` rows of 10, five minutes apart.
fn csv_with_drop(normal: usize, anomalous: usize) -> String {
    csv_with(normal, anomalous).replace(",1000\n", ",10\n")
}

/// Replays `text` as series `system`/`healthcheck`/`field`, with the test folder or without,
/// and returns the summary lines of the confirmed episodes and the number of suspicious ones.
fn episodes_of(text: &str, identity: [&str; 3], with_folder: bool) -> (Vec<String>, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("series.csv");
    fs::write(&input, text).expect("write input");
    let mut args = args(input);
    args.system = identity[0].into();
    args.healthcheck = identity[1].into();
    args.field = identity[2].into();
    args.events = Some(dir.path().join("events.ndjson"));
    if with_folder {
        args.config_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops"));
    }
    let (summary, _) = run_quietly(&args);
    let confirmed = summary.confirmed().map(ToString::to_string).collect();
    (confirmed, summary.suspicious_episodes())
}

#[test]
fn config_dir_keeps_unmentioned_direction() {
    const DNS: &str = "collectors.healthcheck-dns.lookup.resolutionTimeMs";
    // The test folder sets nothing for these fields: the first two have no catalogue entry,
    // the third is a built-in field whose catalogue direction is lower-is-better.
    let cases = [
        (["replay", "replay", replay::CSV_FIELD_PATH], true, 1),
        (["replay", "replay", replay::CSV_FIELD_PATH], false, 1),
        (
            ["payments-api", "payments-api-http", replay::CSV_FIELD_PATH],
            false,
            1,
        ),
        (["replay", "replay", DNS], true, 1),
        (["replay", "replay", DNS], false, 0),
    ];
    for (identity, rises, expected) in cases {
        let text = if rises {
            csv_with(48, 3)
        } else {
            csv_with_drop(48, 3)
        };
        let (flags, flag_suspicious) = episodes_of(&text, identity, false);
        let (folder, folder_suspicious) = episodes_of(&text, identity, true);
        assert_eq!(
            flags.len(),
            expected,
            "{identity:?} rises {rises}: {flags:?}"
        );
        assert_eq!(folder, flags, "{identity:?} rises {rises}");
        assert_eq!(
            folder_suspicious, flag_suspicious,
            "{identity:?} rises {rises}"
        );
    }
}

#[test]
fn output_over_input_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("trace.csv");
    std::fs::write(&input, csv_with(30, 0)).expect("write trace");
    let before = std::fs::read(&input).expect("read trace");

    let mut over_input = args(input.clone());
    over_input.events = Some(input.clone());
    let error = replay::run(&over_input, &mut Vec::new()).expect_err("events over the input");
    assert!(
        error.to_string().contains("is also the input file"),
        "{error}"
    );

    let mut shared = args(input.clone());
    shared.events = Some(dir.path().join("out.ndjson"));
    shared.scores = Some(dir.path().join("out.ndjson"));
    let error = replay::run(&shared, &mut Vec::new()).expect_err("one file for both outputs");
    assert!(
        error.to_string().contains("is also the --events file"),
        "{error}"
    );

    assert_eq!(std::fs::read(&input).expect("read trace"), before);
    assert!(!dir.path().join("out.ndjson").exists());
}
