//! `kind: Notifier` documents (`anomalyd.dev/v1`): where notifications go. The url and header
//! values are the only fields where `${{ secrets.NAME }}` templates are resolved.

use std::collections::{BTreeMap, BTreeSet};

use http::{HeaderName, HeaderValue};

use super::envelope::{NotifierRecord, read_string_map};
use super::fields::{Fields, Issues, as_list, as_string, index};
use super::node::{Node, NodeValue, Position};
use super::secrets::{SecretSource, find_templates};
use crate::config::{Importance, Notifier, NotifierFilters, NotifierFormat, Secret, Source};
use crate::engine::Kind;

/// Default request timeout.
const DEFAULT_TIMEOUT_SECS: u32 = 10;

/// Maximum request timeout a notifier may set.
const MAX_TIMEOUT_SECS: u32 = 300;

/// Reads the spec of a `Notifier` document and checks that its secrets resolve.
pub(crate) fn read(
    name: &str,
    spec: &Node,
    source: Source,
    systems: &BTreeSet<String>,
    secrets: &SecretSource,
    issues: &mut Issues,
) -> Option<NotifierRecord> {
    let mut fields = Fields::open(spec, "spec", issues)?;
    let url_at = fields.take("url").map_or(fields.at, |n| n.at);
    let url = fields.required_string("url", "the webhook address, http:// or https://", issues);
    let names_ok = fields
        .take("headers")
        .is_none_or(|node| check_header_names(node, issues));
    let headers = read_string_map(&mut fields, "headers", issues).unwrap_or_default();
    let timeout_secs = read_timeout(&mut fields, issues);
    let format = read_format(&mut fields, issues);
    let filters = read_filters(&mut fields, systems, issues);
    fields.finish(issues);
    let record = NotifierRecord {
        name: name.to_owned(),
        url: url?,
        headers: headers
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect(),
        timeout_secs: timeout_secs?,
        format: format?,
        filters: filters?,
        source,
    };
    let secrets_ok = check_secrets(&record, url_at, &headers, secrets, issues);
    (names_ok && secrets_ok).then_some(record)
}

/// Resolves the secrets of a stored notifier into the form the rest of the program uses.
pub(crate) fn resolve(record: &NotifierRecord, secrets: &SecretSource) -> Result<Notifier, String> {
    let url = secrets.resolve(&record.url).map_err(|e| e.to_string())?;
    let mut headers = BTreeMap::new();
    for (key, value) in &record.headers {
        let value = secrets.resolve(value).map_err(|e| e.to_string())?;
        headers.insert(key.clone(), Secret::new(value));
    }
    Ok(Notifier {
        name: record.name.clone(),
        url: Secret::new(url),
        headers,
        timeout_secs: record.timeout_secs,
        format: record.format,
        filters: record.filters.clone(),
        source: record.source.clone(),
    })
}

fn check_secrets(
    record: &NotifierRecord,
    url_at: Position,
    headers: &BTreeMap<String, (String, Position)>,
    secrets: &SecretSource,
    issues: &mut Issues,
) -> bool {
    let mut ok = true;
    match secrets.resolve(&record.url) {
        Ok(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            let message = "the url must start with http:// or https:// once secrets are resolved";
            issues.error(url_at, "spec.url", message);
            ok = false;
        }
        Ok(_) => {}
        Err(e) => {
            issues.error(url_at, "spec.url", e.to_string());
            ok = false;
        }
    }
    for (key, (value, at)) in headers {
        let path = format!("spec.headers.{key}");
        match secrets.resolve(value) {
            Ok(resolved) => ok &= check_header_value(value, &resolved, *at, &path, issues),
            Err(e) => {
                issues.error(*at, &path, e.to_string());
                ok = false;
            }
        }
    }
    ok
}

/// Headers the delivery worker sets on every request, which a notifier may not set as well.
/// reqwest appends a notifier's headers to the request, so a second `Content-Type` would be
/// sent beside `application/json`, and a `Content-Length` or `Transfer-Encoding` would
/// contradict the body framing that the client writes. A fixed `Idempotency-Key` would make a
/// receiver drop every notification after the first one as a repeat. `Host` stays allowed:
/// the client sends the notifier's `Host` in place of its own, which reaches a virtual host
/// by address.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "idempotency-key",
];

/// Checks each header name at its key: a valid HTTP field name (RFC 9110 token), not one the
/// delivery sets itself, and not a case-insensitive repeat of another name.
fn check_header_names(headers: &Node, issues: &mut Issues) -> bool {
    let NodeValue::Map(entries) = &headers.value else {
        // read_string_map reports a headers value that is not a mapping.
        return true;
    };
    let mut ok = true;
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (key, _) in entries {
        let name = key.text.as_str();
        let path = format!("spec.headers.{name}");
        let Ok(parsed) = HeaderName::from_bytes(name.as_bytes()) else {
            let message = format!(
                "invalid HTTP header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~ \
                 only, without spaces or colons"
            );
            issues.error(key.at, &path, message);
            ok = false;
            continue;
        };
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            let message = format!(
                "header {name} is set by anomalyd on every notification and cannot be \
                 overridden; remove it"
            );
            issues.error(key.at, &path, message);
            ok = false;
        } else if let Some(first) = seen.insert(parsed.as_str().to_owned(), name) {
            let message = format!(
                "header {name} repeats {first}; header names are case-insensitive, so keep one"
            );
            issues.error(key.at, &path, message);
            ok = false;
        }
    }
    ok
}

/// Checks a header value once its secrets are resolved, with the rules of
/// `http::HeaderValue::from_str`: no control characters other than tab. The message names the
/// offending character but never the value, which may contain a token.
fn check_header_value(
    written: &str,
    resolved: &str,
    at: Position,
    path: &str,
    issues: &mut Issues,
) -> bool {
    if HeaderValue::from_str(resolved).is_ok() {
        return true;
    }
    // HeaderValue::from_str rejects exactly the ASCII control characters other than tab.
    let found = resolved
        .chars()
        .find(|c| c.is_ascii_control() && *c != '\t')
        .map_or_else(String::new, |c| format!(" {c:?}"));
    let origin = if find_templates(written).is_empty() {
        "the value"
    } else {
        "the value with its secrets resolved"
    };
    let message = format!(
        "invalid HTTP header value: {origin} contains the control character{found}; header \
         values may not contain line breaks or control characters other than tab"
    );
    issues.error(at, path, message);
    false
}

fn read_timeout(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<u32> {
    let Some(node) = fields.take("timeoutSeconds") else {
        return Some(DEFAULT_TIMEOUT_SECS);
    };
    let timeout = fields.integer("timeoutSeconds", 1, issues)?;
    if timeout > MAX_TIMEOUT_SECS {
        let message = format!("must be at most {MAX_TIMEOUT_SECS} seconds, found {timeout}");
        issues.error(node.at, &fields.child("timeoutSeconds"), message);
        return None;
    }
    Some(timeout)
}

fn read_format(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<NotifierFormat> {
    let Some(node) = fields.take("format") else {
        return Some(NotifierFormat::Json);
    };
    let path = fields.child("format");
    match as_string(node, &path, issues)?.as_str() {
        "json" => Some(NotifierFormat::Json),
        "slack" => Some(NotifierFormat::Slack),
        other => {
            issues.error(
                node.at,
                &path,
                format!("unknown format \"{other}\"; allowed: json, slack"),
            );
            None
        }
    }
}

fn read_filters(
    fields: &mut Fields<'_>,
    systems: &BTreeSet<String>,
    issues: &mut Issues,
) -> Option<NotifierFilters> {
    let Some(node) = fields.take("filters") else {
        return Some(NotifierFilters::default());
    };
    let mut filters = Fields::open(node, &fields.child("filters"), issues)?;
    let errors_before = issues.error_count();
    let names = read_system_names(&mut filters, systems, issues);
    let kinds = read_kinds(&mut filters, issues);
    let importance = read_importance(&mut filters, issues);
    filters.finish(issues);
    let filters = NotifierFilters {
        systems: names,
        kinds,
        min_importance: importance,
    };
    (issues.error_count() == errors_before).then_some(filters)
}

fn read_system_names(
    filters: &mut Fields<'_>,
    systems: &BTreeSet<String>,
    issues: &mut Issues,
) -> Vec<String> {
    let Some(node) = filters.take("systems") else {
        return Vec::new();
    };
    let path = filters.child("systems");
    let items = as_list(node, &path, issues).unwrap_or_default();
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(name) = as_string(item, &index(&path, i), issues) else {
            continue;
        };
        if !systems.contains(&name) {
            let message = format!(
                "no System document defines \"{name}\"; kept in case the settings page does"
            );
            issues.warning(item.at, &index(&path, i), message);
        }
        names.push(name);
    }
    names
}

fn read_kinds(filters: &mut Fields<'_>, issues: &mut Issues) -> Vec<Kind> {
    let Some(node) = filters.take("kinds") else {
        return Vec::new();
    };
    let path = filters.child("kinds");
    let items = as_list(node, &path, issues).unwrap_or_default();
    let mut kinds = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match as_string(item, &index(&path, i), issues).as_deref() {
            Some("spike") => kinds.push(Kind::Spike),
            Some("drift") => kinds.push(Kind::Drift),
            Some(other) => {
                let message = format!("unknown kind \"{other}\"; allowed: spike, drift");
                issues.error(item.at, &index(&path, i), message);
            }
            None => {}
        }
    }
    kinds
}

fn read_importance(filters: &mut Fields<'_>, issues: &mut Issues) -> Importance {
    let Some(node) = filters.take("minImportance") else {
        return Importance::default();
    };
    let path = filters.child("minImportance");
    match as_string(node, &path, issues).as_deref() {
        Some("info") => Importance::Info,
        Some("warning") => Importance::Warning,
        Some(other) => {
            let message = format!("unknown importance \"{other}\"; allowed: info, warning");
            issues.error(node.at, &path, message);
            Importance::default()
        }
        None => Importance::default(),
    }
}
