//! `anomalyd replay`: runs the detector and the analyzer over a recorded series in event time,
//! without a server or a data file, and reports what the live service would have done.
//!
//! The analyzer runs at every hh:00 boundary the input crosses, before the first row at or
//! after that boundary, exactly as the hourly schedule would have run it.

mod input;
mod report;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::analyzer::{self, HourBoundaries, MemoryHistory};
use crate::config::{ConfigSnapshot, Healthcheck, Source};
use crate::detector::{self, Detector};
use crate::engine::{BaselineWindow, Direction, FieldOverride, TemplateSettings};
use crate::gitops::{self, Limits, SecretSource};
use crate::series::SeriesKey;

pub use input::{CsvSeries, InputRow, parse_csv, parse_ndjson};
pub use report::{Episode, Recorder, ReplayEvent, ReplaySummary, confirmation_score, rfc3339};

/// Default field path of a CSV series.
pub const CSV_FIELD_PATH: &str = "collectors.replay.csv.value";

/// Errors of a replay; each names the file, line or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to write {target}: {source}")]
    Write { target: String, source: io::Error },
    #[error("CSV line {line}: {reason}")]
    CsvRow { line: usize, reason: String },
    #[error("NDJSON line {line}: {reason}")]
    NdjsonLine { line: usize, reason: String },
    #[error("invalid --{flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },
    #[error("--scores needs CSV input, because scores are one row per `timestamp,value` row")]
    ScoresNeedCsv,
    #[error("--{flag} {path} is also {other}; write each output to its own file")]
    SameFile {
        flag: &'static str,
        path: PathBuf,
        other: &'static str,
    },
    #[error("failed to read the config folder {path}: {source}")]
    ConfigDir { path: PathBuf, source: io::Error },
    #[error("--{flag} cannot be combined with --config-dir: set it in the folder instead")]
    FlagWithConfigDir { flag: &'static str },
    #[error("{path} is empty: add {expected}")]
    EmptyInput {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{path} starts with a UTF-8 byte order mark; save it without one")]
    ByteOrderMark { path: PathBuf },
    #[error("{path} has a header but no rows: add `timestamp,value` rows below the header")]
    HeaderOnly { path: PathBuf },
    #[error(
        "{path} line {line}: timestamp {timestamp} is earlier than {previous} on line \
         {previous_line}; sort the rows by timestamp, because replay runs in event time"
    )]
    OutOfOrder {
        path: PathBuf,
        line: usize,
        timestamp: String,
        previous_line: usize,
        previous: String,
    },
}

/// Input formats replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// `timestamp,value` rows, timestamps `YYYY-MM-DD HH:MM:SS` in UTC (the NAB format).
    Csv,
    /// One check result a line, in the results API shape.
    Ndjson,
}

/// Field directions as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    HigherIsBetter,
    LowerIsBetter,
    Deviation,
    Dominance,
}

impl From<DirectionArg> for Direction {
    fn from(direction: DirectionArg) -> Self {
        match direction {
            DirectionArg::HigherIsBetter => Direction::HigherIsBetter,
            DirectionArg::LowerIsBetter => Direction::LowerIsBetter,
            DirectionArg::Deviation => Direction::Deviation,
            DirectionArg::Dominance => Direction::Dominance,
        }
    }
}

/// Flags of `anomalyd replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Input file: NAB-style CSV or NDJSON check results.
    pub input: PathBuf,
    /// Input format; by default `.csv` files are CSV and everything else NDJSON.
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// System name of a CSV series.
    #[arg(long, default_value = "replay")]
    pub system: String,
    /// Healthcheck name of a CSV series.
    #[arg(long, default_value = "replay")]
    pub healthcheck: String,
    /// Canonical field path `collectors.<collector id>.<field>` of a CSV series.
    #[arg(long, default_value = CSV_FIELD_PATH)]
    pub field: String,
    /// Direction in which a change counts as worse [CSV default: the field's direction in the
    /// collector catalogue, else deviation].
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Multiplier on the 3σ band (greater than 0; higher means fewer alerts).
    #[arg(long)]
    pub sensitivity: Option<f64>,
    /// Consecutive anomalous samples before a spike is confirmed (at least 1).
    #[arg(long)]
    pub confirmation_window: Option<u32>,
    /// Smallest distance from the mean that counts, in the field's unit.
    #[arg(long)]
    pub min_absolute_delta: Option<f64>,
    /// Smallest distance from the mean that counts, as a fraction of the mean (0.5 = 50 %).
    #[arg(long)]
    pub min_relative_delta: Option<f64>,
    /// History a baseline is learned from, `<n>h` or `<n>d` from 1h to 90d [default: 7d].
    #[arg(long)]
    pub baseline_window: Option<String>,
    /// Folder of GitOps YAML files to take the settings from instead of the flags; its problems
    /// are reported and documents with errors left out.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Write events as NDJSON to this file instead of stdout.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Write `timestamp,value,score` rows to this file (CSV input only). The score is 0 except on
    /// the row that confirmed an anomaly, where it is 1 − exp(−deviation / 10).
    #[arg(long)]
    pub scores: Option<PathBuf>,
}

/// The result of replaying rows in memory.
#[derive(Debug)]
pub struct ReplayOutcome {
    pub events: Vec<ReplayEvent>,
    /// One score per input row, see [`confirmation_score`].
    pub scores: Vec<f64>,
    pub summary: ReplaySummary,
}

/// Runs `anomalyd replay`: reads the input, replays it, writes events and scores, and writes
/// the summary to `summary_out`.
/// Rejects an output path that names the input or the other output, because writing it would
/// destroy the trace or mix the two outputs.
fn check_outputs(args: &ReplayArgs) -> Result<(), ReplayError> {
    let outputs = [("events", &args.events), ("scores", &args.scores)];
    for (flag, path) in outputs
        .iter()
        .filter_map(|(flag, p)| Some((*flag, p.as_ref()?)))
    {
        if same_file(path, &args.input) {
            let other = "the input file";
            return Err(ReplayError::SameFile {
                flag,
                path: path.clone(),
                other,
            });
        }
    }
    if let (Some(events), Some(scores)) = (&args.events, &args.scores)
        && (events == scores || same_file(events, scores))
    {
        let other = "the --events file";
        return Err(ReplayError::SameFile {
            flag: "scores",
            path: scores.clone(),
            other,
        });
    }
    Ok(())
}

/// Tells whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

pub fn run(args: &ReplayArgs, summary_out: &mut dyn Write) -> Result<ReplaySummary, ReplayError> {
    let format = args.format.unwrap_or_else(|| format_of(&args.input));
    if args.scores.is_some() && format != InputFormat::Csv {
        return Err(ReplayError::ScoresNeedCsv);
    }
    check_outputs(args)?;
    let text = fs::read_to_string(&args.input).map_err(|source| ReplayError::Read {
        path: args.input.clone(),
        source,
    })?;
    if text.starts_with('\u{FEFF}') {
        return Err(ReplayError::ByteOrderMark {
            path: args.input.clone(),
        });
    }
    let rows = match format {
        InputFormat::Csv => parse_csv(&text, &csv_series(args)?)?,
        InputFormat::Ndjson => parse_ndjson(&text)?,
    };
    check_rows(&args.input, format, &text, &rows)?;
    let mut config = match &args.config_dir {
        Some(folder) => folder_config(args, folder, summary_out)?,
        None => flag_config(args, format, &rows)?,
    };
    if format == InputFormat::Csv {
        set_csv_default_direction(&mut config, &csv_key(args));
    }
    let outcome = replay(&rows, &config);

    write_events(args.events.as_deref(), &outcome.events)?;
    if let Some(path) = &args.scores {
        write_scores(path, &rows, &outcome.scores)?;
    }
    write!(summary_out, "{}", outcome.summary).map_err(|source| ReplayError::Write {
        target: "stderr".into(),
        source,
    })?;
    Ok(outcome.summary)
}

/// Replays rows through a fresh detector and analyzer in event time.
pub fn replay(rows: &[InputRow], config: &ConfigSnapshot) -> ReplayOutcome {
    let mut detector = Detector::new();
    let mut history = MemoryHistory::new();
    let mut boundaries = HourBoundaries::new();
    let mut recorder = Recorder::new(rows.len());
    let mut next_id = 0_u64;
    let mut ids = || {
        next_id += 1;
        next_id
    };

    for (index, row) in rows.iter().enumerate() {
        for at in boundaries.crossed(row.result.timestamp) {
            let Ok(run) = analyzer::run(at, &history, config, &mut detector, &mut ids);
            recorder.analyzer_run(&run, index);
        }
        for mut update in detector.process(&row.result, config, &mut ids) {
            let numeric =
                update.baseline.is_some() && analyzer::series_is_numeric(config, &update.key);
            recorder.sample(&update, numeric, index);
            if let Some(hour) = update.hour.take() {
                history.record(&update.key, hour);
            }
        }
    }
    ReplayOutcome {
        events: recorder.events,
        scores: recorder.scores,
        summary: recorder.summary,
    }
}

/// Rejects input that has no rows or whose timestamps go backwards, before anything is written.
/// Equal timestamps are accepted and replayed in file order, because several results of one
/// check run, or of different series, can share a timestamp.
fn check_rows(
    path: &Path,
    format: InputFormat,
    text: &str,
    rows: &[InputRow],
) -> Result<(), ReplayError> {
    if rows.is_empty() {
        return Err(no_rows_error(path, format, text));
    }
    let Some(pair) = rows
        .windows(2)
        .find(|pair| pair[1].result.timestamp < pair[0].result.timestamp)
    else {
        return Ok(());
    };
    let (previous, row) = (&pair[0], &pair[1]);
    Err(ReplayError::OutOfOrder {
        path: path.to_owned(),
        line: row.line,
        timestamp: timestamp_as_written(row),
        previous_line: previous.line,
        previous: timestamp_as_written(previous),
    })
}

/// Builds the error for input without rows. A non-blank CSV file without rows contains only its
/// header, because any other non-blank line either becomes a row or fails to parse.
fn no_rows_error(path: &Path, format: InputFormat, text: &str) -> ReplayError {
    let path = path.to_owned();
    match format {
        InputFormat::Csv if !text.trim().is_empty() => ReplayError::HeaderOnly { path },
        InputFormat::Csv => ReplayError::EmptyInput {
            path,
            expected: "`timestamp,value` rows",
        },
        InputFormat::Ndjson => ReplayError::EmptyInput {
            path,
            expected: "one JSON check result per line",
        },
    }
}

/// Returns a row's timestamp as the file wrote it (CSV), or in RFC 3339 (NDJSON).
fn timestamp_as_written(row: &InputRow) -> String {
    if row.timestamp_text.is_empty() {
        rfc3339(row.result.timestamp)
    } else {
        row.timestamp_text.clone()
    }
}

fn format_of(path: &Path) -> InputFormat {
    let is_csv = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"));
    if is_csv {
        InputFormat::Csv
    } else {
        InputFormat::Ndjson
    }
}

/// Builds the CSV series from the flags, whose names must pass the checks that the results API
/// applies, so a replay never accepts a series that `serve` would reject.
fn csv_series(args: &ReplayArgs) -> Result<CsvSeries, ReplayError> {
    for (flag, name) in [("system", &args.system), ("healthcheck", &args.healthcheck)] {
        crate::ingest::check_name(name)
            .map_err(|reason| ReplayError::InvalidFlag { flag, reason })?;
    }
    crate::series::check_field_path(&args.field).map_err(|reason| ReplayError::InvalidFlag {
        flag: "field",
        reason,
    })?;
    let (collector_id, field) =
        detector::split_field_path(&args.field).ok_or_else(|| ReplayError::InvalidFlag {
            flag: "field",
            reason: format!(
                "`{}` is not a field path of the form collectors.<collector id>.<field>",
                args.field
            ),
        })?;
    Ok(CsvSeries {
        system: args.system.clone(),
        healthcheck: args.healthcheck.clone(),
        collector_id: collector_id.to_owned(),
        field: field.to_owned(),
    })
}

/// Builds the configuration a replay runs with: the flags become template field overrides of
/// the replayed healthchecks. For CSV input the one series gets them; for NDJSON input every
/// field seen gets them, when any flag is given.
fn flag_config(
    args: &ReplayArgs,
    format: InputFormat,
    rows: &[InputRow],
) -> Result<ConfigSnapshot, ReplayError> {
    let field_override = flag_override(args)?;
    let baseline_window = args
        .baseline_window
        .as_deref()
        .map(parse_window)
        .transpose()?;
    let no_settings = field_override == FieldOverride::default() && baseline_window.is_none();
    if format == InputFormat::Ndjson && no_settings {
        return Ok(ConfigSnapshot::default());
    }

    let mut templates: BTreeMap<String, TemplateSettings> = BTreeMap::new();
    for row in rows {
        let template = templates
            .entry(row.result.healthcheck.clone())
            .or_insert_with(|| replay_template(baseline_window));
        for field in &row.result.fields {
            template
                .field_overrides
                .entry(field.path())
                .or_insert_with(|| field_override.clone());
        }
    }
    let healthchecks = templates
        .into_iter()
        .map(|(name, template)| (name.clone(), replay_healthcheck(name, template)))
        .collect();
    Ok(ConfigSnapshot {
        healthchecks,
        ..ConfigSnapshot::default()
    })
}

fn csv_key(args: &ReplayArgs) -> SeriesKey {
    SeriesKey {
        system: args.system.clone(),
        healthcheck: args.healthcheck.clone(),
        environment: None,
        field_path: args.field.clone(),
    }
}

/// Gives the CSV series the direction `deviation` when neither the configuration nor the field
/// catalogue sets one, so it is judged at all. The flags and a config folder go through this
/// same step, so a folder that does not mention the field leaves its direction as it is
/// without the folder.
fn set_csv_default_direction(config: &mut ConfigSnapshot, key: &SeriesKey) {
    if detector::effective_settings(config, key)
        .direction
        .value
        .is_some()
    {
        return;
    }
    field_override_mut(config, key).direction = Some(Direction::Deviation);
}

/// Finds the field override the settings resolver reads for the series: the assignment's entry
/// when there is one, because it replaces the template's entry. Otherwise it finds or creates
/// the template's entry.
fn field_override_mut<'a>(
    config: &'a mut ConfigSnapshot,
    key: &SeriesKey,
) -> &'a mut FieldOverride {
    let in_assignment = config
        .assignment(&key.system, &key.healthcheck)
        .is_some_and(|assignment| assignment.field_overrides.contains_key(&key.field_path));
    if in_assignment {
        let assignment = config
            .systems
            .get_mut(&key.system)
            .and_then(|system| system.anomaly.get_mut(&key.healthcheck))
            .expect("the assignment was found above");
        return assignment
            .field_overrides
            .get_mut(&key.field_path)
            .expect("the entry was found above");
    }
    let healthcheck = config
        .healthchecks
        .entry(key.healthcheck.clone())
        .or_insert_with(|| replay_healthcheck(key.healthcheck.clone(), replay_template(None)));
    let template = healthcheck
        .anomaly
        .get_or_insert_with(TemplateSettings::default);
    template
        .field_overrides
        .entry(key.field_path.clone())
        .or_default()
}

/// Loads the settings from a GitOps folder. Documents with errors are left out, and every
/// problem is written to `problems_out` so the operator sees what was skipped.
fn folder_config(
    args: &ReplayArgs,
    folder: &Path,
    problems_out: &mut dyn Write,
) -> Result<ConfigSnapshot, ReplayError> {
    if let Some(flag) = settings_flag(args) {
        return Err(ReplayError::FlagWithConfigDir { flag });
    }
    let secrets = SecretSource { dir: None };
    let (config, problems) =
        gitops::load_snapshot(folder, &secrets, &Limits::default()).map_err(|source| {
            ReplayError::ConfigDir {
                path: folder.to_owned(),
                source,
            }
        })?;
    for problem in &problems {
        writeln!(problems_out, "{problem}").map_err(|source| ReplayError::Write {
            target: "stderr".into(),
            source,
        })?;
    }
    Ok(config)
}

/// Returns the first settings flag given, if any.
fn settings_flag(args: &ReplayArgs) -> Option<&'static str> {
    [
        ("direction", args.direction.is_some()),
        ("sensitivity", args.sensitivity.is_some()),
        ("confirmation-window", args.confirmation_window.is_some()),
        ("min-absolute-delta", args.min_absolute_delta.is_some()),
        ("min-relative-delta", args.min_relative_delta.is_some()),
        ("baseline-window", args.baseline_window.is_some()),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
}

fn flag_override(args: &ReplayArgs) -> Result<FieldOverride, ReplayError> {
    let invalid = |flag, reason: &str| ReplayError::InvalidFlag {
        flag,
        reason: reason.to_owned(),
    };
    if args
        .sensitivity
        .is_some_and(|s| !(s.is_finite() && s > 0.0))
    {
        return Err(invalid("sensitivity", "must be a number greater than 0"));
    }
    if args.confirmation_window == Some(0) {
        return Err(invalid("confirmation-window", "must be at least 1"));
    }
    for (flag, floor) in [
        ("min-absolute-delta", args.min_absolute_delta),
        ("min-relative-delta", args.min_relative_delta),
    ] {
        if floor.is_some_and(|floor| !(floor.is_finite() && floor >= 0.0)) {
            return Err(invalid(flag, "must be a number of at least 0"));
        }
    }
    Ok(FieldOverride {
        direction: args.direction.map(Direction::from),
        sensitivity: args.sensitivity,
        confirmation_window: args.confirmation_window,
        min_absolute_delta: args.min_absolute_delta,
        min_relative_delta: args.min_relative_delta,
        ..FieldOverride::default()
    })
}

fn replay_template(baseline_window: Option<BaselineWindow>) -> TemplateSettings {
    TemplateSettings {
        enabled: true,
        baseline_window: baseline_window.unwrap_or_default(),
        notify: true,
        field_overrides: BTreeMap::new(),
    }
}

fn replay_healthcheck(name: String, template: TemplateSettings) -> Healthcheck {
    Healthcheck {
        name,
        title: None,
        strategy: "replay".into(),
        interval_secs: 0,
        config: serde_json::Value::Null,
        collectors: Vec::new(),
        anomaly: Some(template),
        source: Source::Api,
    }
}

/// Parses `<n>h` or `<n>d`, from 1h to 90d.
fn parse_window(text: &str) -> Result<BaselineWindow, ReplayError> {
    BaselineWindow::parse(text).map_err(|error| ReplayError::InvalidFlag {
        flag: "baseline-window",
        reason: error.to_string(),
    })
}

fn write_events(path: Option<&Path>, events: &[ReplayEvent]) -> Result<(), ReplayError> {
    let target = path.map_or_else(|| "stdout".to_owned(), |path| path.display().to_string());
    let write_error = |source| ReplayError::Write {
        target: target.clone(),
        source,
    };
    let mut out: BufWriter<Box<dyn Write>> = match path {
        Some(path) => BufWriter::new(Box::new(fs::File::create(path).map_err(write_error)?)),
        None => BufWriter::new(Box::new(io::stdout().lock())),
    };
    for event in events {
        serde_json::to_writer(&mut out, event).map_err(|e| write_error(e.into()))?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}

fn write_scores(path: &Path, rows: &[InputRow], scores: &[f64]) -> Result<(), ReplayError> {
    let write_error = |source| ReplayError::Write {
        target: path.display().to_string(),
        source,
    };
    let mut out = BufWriter::new(fs::File::create(path).map_err(write_error)?);
    writeln!(out, "timestamp,value,score").map_err(write_error)?;
    for (row, score) in rows.iter().zip(scores) {
        writeln!(out, "{},{},{score}", row.timestamp_text, row.value_text).map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}
