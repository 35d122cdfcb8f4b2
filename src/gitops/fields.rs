//! Typed access to the keys of a YAML mapping, collecting errors and warnings with the key path
//! and position of each offending value, and warning about keys that no reader took.

use super::Severity;
use super::node::{Key, Node, NodeValue, Position};

/// One finding inside a document, before it is attached to a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub severity: Severity,
    pub at: Position,
    pub path: String,
    pub message: String,
}

/// The findings of one document.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    pub list: Vec<Issue>,
}

impl Issues {
    pub fn error(&mut self, at: Position, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, at, path, message.into());
    }

    pub fn warning(&mut self, at: Position, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, at, path, message.into());
    }

    fn push(&mut self, severity: Severity, at: Position, path: &str, message: String) {
        self.list.push(Issue {
            severity,
            at,
            path: path.to_owned(),
            message,
        });
    }

    pub fn error_count(&self) -> usize {
        let errors = self.list.iter().filter(|i| i.severity == Severity::Error);
        errors.count()
    }
}

/// Joins a parent key path and a child key: `spec` + `config` gives `spec.config`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a list path and an index: `spec.collectors` + 0 gives `spec.collectors[0]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The keys of one mapping node. Every key read through it is marked, and [`Fields::finish`] warns
/// about the rest so that no key is dropped silently.
pub(crate) struct Fields<'a> {
    path: String,
    pub at: Position,
    entries: &'a [(Key, Node)],
    read: Vec<bool>,
}

impl<'a> Fields<'a> {
    /// Opens a mapping node. Any other node is an error and gives `None`.
    pub fn open(node: &'a Node, path: &str, issues: &mut Issues) -> Option<Self> {
        let NodeValue::Map(entries) = &node.value else {
            let found = node.value.type_name();
            issues.error(node.at, path, format!("expected a mapping, found {found}"));
            return None;
        };
        Some(Self {
            path: path.to_owned(),
            at: node.at,
            entries,
            read: vec![false; entries.len()],
        })
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Returns the node under `key` and marks it read.
    pub fn take(&mut self, key: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|(k, _)| k.text == key)?;
        self.read[i] = true;
        Some(&self.entries[i].1)
    }

    /// Returns the position of `key` itself (not its value) and marks it read.
    pub fn take_key(&mut self, key: &str) -> Option<Position> {
        let i = self.entries.iter().position(|(k, _)| k.text == key)?;
        self.read[i] = true;
        Some(self.entries[i].0.at)
    }

    /// Returns every entry not read yet and marks them read, for free-form maps.
    pub fn take_rest(&mut self) -> Vec<&'a (Key, Node)> {
        let mut rest = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if !self.read[i] {
                self.read[i] = true;
                rest.push(entry);
            }
        }
        rest
    }

    /// Reports a missing required key at the mapping itself.
    pub fn missing(&self, key: &str, what: &str, issues: &mut Issues) {
        let message = format!("missing required key `{key}` ({what})");
        issues.error(self.at, &self.path, message);
    }

    pub fn string(&mut self, key: &str, issues: &mut Issues) -> Option<String> {
        let node = self.take(key)?;
        as_string(node, &self.child(key), issues)
    }

    pub fn required_string(
        &mut self,
        key: &str,
        what: &str,
        issues: &mut Issues,
    ) -> Option<String> {
        if self.take(key).is_none() {
            self.missing(key, what, issues);
            return None;
        }
        self.string(key, issues)
    }

    pub fn bool(&mut self, key: &str, issues: &mut Issues) -> Option<bool> {
        let node = self.take(key)?;
        match node.value {
            NodeValue::Bool(b) => Some(b),
            ref other => {
                let message = format!("expected true or false, found {}", other.type_name());
                issues.error(node.at, &self.child(key), message);
                None
            }
        }
    }

    /// Reads an integer of at least `min`, naming the allowed range on error.
    pub fn integer(&mut self, key: &str, min: u32, issues: &mut Issues) -> Option<u32> {
        self.integer_in(key, min, u32::MAX, issues)
    }

    /// Reads an integer from `min` to `max`, both included.
    pub fn integer_in(
        &mut self,
        key: &str,
        min: u32,
        max: u32,
        issues: &mut Issues,
    ) -> Option<u32> {
        let node = self.take(key)?;
        as_integer(node, &self.child(key), min, max, issues)
    }

    pub fn number(&mut self, key: &str, issues: &mut Issues) -> Option<f64> {
        let node = self.take(key)?;
        match node.value {
            NodeValue::Int(i) => Some(i as f64),
            NodeValue::Float(f) if f.is_finite() => Some(f),
            ref other => {
                let message = format!("expected a finite number, found {}", describe(other));
                issues.error(node.at, &self.child(key), message);
                None
            }
        }
    }

    pub fn string_list(&mut self, key: &str, issues: &mut Issues) -> Option<Vec<String>> {
        let node = self.take(key)?;
        let path = self.child(key);
        let items = as_list(node, &path, issues)?;
        let strings = items.iter().enumerate();
        let strings = strings.filter_map(|(i, item)| as_string(item, &index(&path, i), issues));
        Some(strings.collect())
    }

    /// Warns about every key that was not read, naming its full key path.
    pub fn finish(self, issues: &mut Issues) {
        for (i, (key, _)) in self.entries.iter().enumerate() {
            if !self.read[i] {
                let path = join(&self.path, &key.text);
                issues.warning(key.at, &path, "unknown key, ignored");
            }
        }
    }
}

pub(crate) fn as_string(node: &Node, path: &str, issues: &mut Issues) -> Option<String> {
    match &node.value {
        NodeValue::Str(s) => Some(s.clone()),
        other => {
            let message = format!("expected a string, found {}", describe(other));
            issues.error(node.at, path, message);
            None
        }
    }
}

pub(crate) fn as_list<'a>(node: &'a Node, path: &str, issues: &mut Issues) -> Option<&'a [Node]> {
    match &node.value {
        NodeValue::Seq(items) => Some(items),
        other => {
            let message = format!("expected a list, found {}", other.type_name());
            issues.error(node.at, path, message);
            None
        }
    }
}

/// Reads an integer from `min` to `max`. The error names the whole range when `max` is a real
/// bound or the value is above it, and only the minimum otherwise.
pub(crate) fn as_integer(
    node: &Node,
    path: &str,
    min: u32,
    max: u32,
    issues: &mut Issues,
) -> Option<u32> {
    let value = match node.value {
        NodeValue::Int(i) => u32::try_from(i).ok().filter(|v| (min..=max).contains(v)),
        _ => None,
    };
    if value.is_none() {
        let found = describe(&node.value);
        let too_large = matches!(node.value, NodeValue::Int(i) if i > i64::from(max));
        let message = if max < u32::MAX || too_large {
            format!("expected an integer from {min} to {max}, found {found}")
        } else {
            format!("expected an integer of at least {min}, found {found}")
        };
        issues.error(node.at, path, message);
    }
    value
}

/// Describes a value for a message: scalars with their text, containers by type.
pub(crate) fn describe(value: &NodeValue) -> String {
    match value {
        NodeValue::Bool(b) => format!("`{b}`"),
        NodeValue::Int(i) => format!("`{i}`"),
        NodeValue::Float(f) => format!("`{f}`"),
        NodeValue::Str(s) => format!("the string \"{s}\""),
        other => other.type_name().to_owned(),
    }
}
