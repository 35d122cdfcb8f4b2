//! Effective settings of one series, resolved from the configuration snapshot.

use crate::config::ConfigSnapshot;
use crate::engine::{self, EffectiveSettings, SchemaField};
use crate::series::SeriesKey;

/// Splits a canonical field path `collectors.<collector id>.<field>` into collector id and field.
///
/// Collector ids contain dots (`healthcheck-http.request`) but field names do not, so the field
/// is the part after the last dot.
pub fn split_field_path(field_path: &str) -> Option<(&str, &str)> {
    let rest = field_path.strip_prefix("collectors.")?;
    let (collector_id, field) = rest.rsplit_once('.')?;
    if collector_id.is_empty() || field.is_empty() {
        return None;
    }
    Some((collector_id, field))
}

/// Looks up the schema annotations of a series' field, if its collector declares the field.
pub fn schema_field<'a>(config: &'a ConfigSnapshot, key: &SeriesKey) -> Option<&'a SchemaField> {
    let (collector_id, field) = split_field_path(&key.field_path)?;
    config.schema_field(collector_id, field)
}

/// Resolves every setting of a series through the assignment, template, schema and engine
/// default layers.
pub fn effective_settings(config: &ConfigSnapshot, key: &SeriesKey) -> EffectiveSettings {
    resolve_with_schema(config, key, schema_field(config, key))
}

pub(crate) fn resolve_with_schema(
    config: &ConfigSnapshot,
    key: &SeriesKey,
    schema: Option<&SchemaField>,
) -> EffectiveSettings {
    engine::resolve(
        &key.field_path,
        config.template(&key.healthcheck),
        config.assignment(&key.system, &key.healthcheck),
        schema,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_field_path_cases() {
        let cases = [
            (
                "collectors.healthcheck-http.request.responseTimeMs",
                Some(("healthcheck-http.request", "responseTimeMs")),
            ),
            ("collectors.replay.csv.value", Some(("replay.csv", "value"))),
            ("collectors.plain.value", Some(("plain", "value"))),
            ("latencyMs", None),
            ("collectors.nodot", None),
            ("collectors..value", None),
            ("collectors.x.", None),
        ];
        for (path, expected) in cases {
            assert_eq!(split_field_path(path), expected, "path {path}");
        }
    }
}
