//! Typed reads of a probe's settings from the strategy `config` and the matching collector's
//! `config`, with errors that name the healthcheck and the key.

use std::time::Duration;

use serde_json::{Map, Value};

use super::ProbeConfigError;

/// Maximum timeout a probe accepts, in milliseconds (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// One config object and the key path it sits at, for example `config` or
/// `collectors[0].config`.
struct Layer<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
}

/// Reads settings from several config objects; a key in a later object wins.
pub(crate) struct ConfigReader<'a> {
    healthcheck: &'a str,
    layers: Vec<Layer<'a>>,
}

impl<'a> ConfigReader<'a> {
    pub(crate) fn new(healthcheck: &'a str) -> Self {
        Self {
            healthcheck,
            layers: Vec::new(),
        }
    }

    /// Adds a config object; `null` adds nothing and any other non-object is an error.
    pub(crate) fn layer(
        mut self,
        prefix: impl Into<String>,
        value: &'a Value,
    ) -> Result<Self, ProbeConfigError> {
        let prefix = prefix.into();
        match value {
            Value::Null => Ok(self),
            Value::Object(map) => {
                self.layers.push(Layer { prefix, map });
                Ok(self)
            }
            _ => Err(ProbeConfigError::new(
                self.healthcheck,
                prefix,
                "must be a map",
            )),
        }
    }

    /// Returns the keys set in any layer that are not in `known`, as full key paths.
    pub(crate) fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        let mut unknown = Vec::new();
        for layer in &self.layers {
            for key in layer.map.keys() {
                if !known.contains(&key.as_str()) {
                    unknown.push(format!("{}.{key}", layer.prefix));
                }
            }
        }
        unknown
    }

    /// Returns the error for `key` as found in the layer that sets it.
    pub(crate) fn error(&self, key: &str, reason: impl Into<String>) -> ProbeConfigError {
        ProbeConfigError::new(self.healthcheck, self.path(key), reason)
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ProbeConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => self.plain_text(key, text).map(Some),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<String, ProbeConfigError> {
        self.string(key)?
            .ok_or_else(|| self.error(key, "is missing"))
    }

    pub(crate) fn boolean(&self, key: &str, default: bool) -> Result<bool, ProbeConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }

    /// Reads an integer in `range`.
    pub(crate) fn integer(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ProbeConfigError> {
        let Some(value) = self.get(key).filter(|value| !value.is_null()) else {
            return Ok(None);
        };
        let number = value.as_u64().or_else(|| whole_number(value));
        match number {
            Some(number) if range.contains(&number) => Ok(Some(number)),
            _ => Err(self.error(
                key,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// Reads a timeout in milliseconds.
    pub(crate) fn timeout(
        &self,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ProbeConfigError> {
        let millis = self.integer(key, 1..=MAX_TIMEOUT_MS).map_err(|mut error| {
            error.reason = format!(
                "must be a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS}, such as 5000 \
                 for 5 seconds"
            );
            error
        })?;
        Ok(millis.map_or(default, Duration::from_millis))
    }

    /// Reads a list of strings.
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, ProbeConfigError> {
        let items = match self.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(self.error(key, "must be a list of strings")),
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => self.plain_text(&format!("{key}[{index}]"), text),
                _ => Err(self.error(&format!("{key}[{index}]"), "must be a string")),
            })
            .collect()
    }

    /// Reads name/value pairs written either as a map of strings or as a list of
    /// `{ name, value }` entries.
    pub(crate) fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, ProbeConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| Ok((name.clone(), self.pair_value(key, name, value)?)))
                .collect(),
            Some(Value::Array(entries)) => entries
                .iter()
                .enumerate()
                .map(|(index, entry)| self.pair_entry(key, index, entry))
                .collect(),
            Some(_) => Err(self.error(key, "must be a map of strings or a list of {name, value}")),
        }
    }

    fn pair_entry(
        &self,
        key: &str,
        index: usize,
        entry: &Value,
    ) -> Result<(String, String), ProbeConfigError> {
        let at = format!("{key}[{index}]");
        let name = entry.get("name").and_then(Value::as_str);
        let value = entry.get("value");
        match (name, value) {
            (Some(name), Some(value)) => {
                Ok((name.to_owned(), self.pair_value(&at, "value", value)?))
            }
            _ => Err(self.error(&at, "must have a string `name` and a `value`")),
        }
    }

    /// Reads one value of a pair; numbers and booleans are taken in their text form.
    fn pair_value(&self, key: &str, name: &str, value: &Value) -> Result<String, ProbeConfigError> {
        let at = format!("{key}.{name}");
        match value {
            Value::String(text) => self.plain_text(&at, text),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            _ => Err(self.error(&at, "must be a string")),
        }
    }

    /// Rejects `${{ secrets.NAME }}` templates, which the configuration keeps unresolved.
    fn plain_text(&self, key: &str, text: &str) -> Result<String, ProbeConfigError> {
        if text.contains("${{") {
            return Err(self.error(
                key,
                "contains a `${{ ... }}` template, which built-in probes do not resolve; \
                 write the value itself or push results for this check instead",
            ));
        }
        Ok(text.to_owned())
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        let root = key.split(['.', '[']).next().unwrap_or(key);
        self.layers
            .iter()
            .rev()
            .find_map(|layer| layer.map.get(root))
    }

    /// Returns the full path of `key` in the layer that sets it, or in the first layer.
    fn path(&self, key: &str) -> String {
        let root = key.split(['.', '[']).next().unwrap_or(key);
        let layer = self
            .layers
            .iter()
            .rev()
            .find(|layer| layer.map.contains_key(root))
            .or(self.layers.first());
        match layer {
            Some(layer) => format!("{}.{key}", layer.prefix),
            None => format!("config.{key}"),
        }
    }
}

fn whole_number(value: &Value) -> Option<u64> {
    let number = value.as_f64()?;
    let whole = number.fract() == 0.0 && number >= 0.0 && number <= u64::MAX as f64;
    // The range check above keeps the cast exact for every value a config can hold.
    whole.then_some(number as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn collector_layer_wins() {
        let strategy = json!({"url": "http://a", "timeout": 100});
        let collector = json!({"url": "http://b"});
        let reader = ConfigReader::new("api")
            .layer("config", &strategy)
            .and_then(|reader| reader.layer("collectors[0].config", &collector))
            .expect("both layers are maps");
        assert_eq!(
            reader.string("url").expect("a string").as_deref(),
            Some("http://b")
        );
        assert_eq!(
            reader
                .timeout("timeout", Duration::ZERO)
                .expect("a timeout"),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn error_names_healthcheck_and_key() {
        let collector = json!({"timeout": "soon"});
        let reader = ConfigReader::new("api")
            .layer("collectors[1].config", &collector)
            .expect("a map");
        let error = reader
            .timeout("timeout", Duration::ZERO)
            .expect_err("a string is not a timeout");
        let message = error.to_string();
        assert!(message.contains("`api`"), "{message}");
        assert!(
            message.contains("collectors[1].config.timeout"),
            "{message}"
        );
        assert!(message.contains("milliseconds"), "{message}");
    }

    #[test]
    fn pairs_accept_map_and_list() {
        let map = json!({"headers": {"Accept": "text/plain", "X-Retries": 3}});
        let list = json!({"headers": [{"name": "Accept", "value": "text/plain"}]});
        let from_map = ConfigReader::new("api")
            .layer("config", &map)
            .expect("a map");
        let from_list = ConfigReader::new("api")
            .layer("config", &list)
            .expect("a map");
        assert_eq!(
            from_map.pairs("headers").expect("valid pairs"),
            vec![
                ("Accept".to_owned(), "text/plain".to_owned()),
                ("X-Retries".to_owned(), "3".to_owned())
            ]
        );
        assert_eq!(
            from_list.pairs("headers").expect("valid pairs"),
            vec![("Accept".to_owned(), "text/plain".to_owned())]
        );
    }

    #[test]
    fn secret_template_is_rejected() {
        let config = json!({"url": "https://${{ secrets.HOST }}/"});
        let reader = ConfigReader::new("api")
            .layer("config", &config)
            .expect("a map");
        let error = reader
            .string("url")
            .expect_err("templates are not resolved");
        assert!(error.to_string().contains("config.url"), "{error}");
    }

    #[test]
    fn unknown_keys_are_listed() {
        let config = json!({"url": "http://a", "timout": 5});
        let reader = ConfigReader::new("api")
            .layer("config", &config)
            .expect("a map");
        assert_eq!(
            reader.unknown_keys(&["url", "timeout"]),
            vec!["config.timout"]
        );
    }

    #[test]
    fn non_map_config_is_rejected() {
        let config = json!([1, 2]);
        let error = ConfigReader::new("api")
            .layer("config", &config)
            .err()
            .expect("a list is not a config map");
        assert!(error.to_string().contains("must be a map"), "{error}");
    }
}
