//! Benchmark: `anomalyd replay` over every NAB CSV under tests/data/nab, events written to
//! /dev/null as the binary would write them.
//!
//! Run with `cargo bench --bench replay`. Prints the time per file and in total.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anomalyd::replay::{self, ReplayArgs};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nab");
    let mut files = Vec::new();
    collect_csv(&root, &mut files);
    files.sort();

    let mut total = Duration::ZERO;
    let mut rows = 0;
    for file in &files {
        let started = Instant::now();
        let summary =
            replay::run(&args(file.clone()), &mut std::io::sink()).expect("replay succeeds");
        let elapsed = started.elapsed();
        total += elapsed;
        rows += summary.rows;
        println!(
            "{:>8.1} ms  {:>5} rows  {:>2} confirmed  {}",
            elapsed.as_secs_f64() * 1000.0,
            summary.rows,
            summary.confirmed().count(),
            file.strip_prefix(&root).unwrap_or(file).display()
        );
    }
    println!(
        "replay: {} files, {rows} rows in {:.3} s",
        files.len(),
        total.as_secs_f64()
    );
}

fn collect_csv(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("the NAB data folder is readable");
    for entry in entries.map(|entry| entry.expect("a readable folder entry").path()) {
        if entry.is_dir() {
            collect_csv(&entry, files);
        } else if entry
            .extension()
            .is_some_and(|extension| extension == "csv")
        {
            files.push(entry);
        }
    }
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
        events: Some(PathBuf::from("/dev/null")),
        scores: None,
    }
}
