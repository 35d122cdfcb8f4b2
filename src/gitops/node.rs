//! A YAML document as a tree of nodes that each remember their line and column, so validation can
//! point at the exact key or value it rejects.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Line and column of a node, both counted from 1. Zero means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    fn of(location: &serde_saphyr::Location) -> Self {
        Self {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub at: Position,
}

/// The value of a node. Mapping keys keep their own positions and their order.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: scalars of any type are kept in their text form.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub at: Position,
}

impl NodeValue {
    /// Names the YAML type for messages such as "expected a string, found a mapping".
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Returns the node at a path below this one, such as `config.url` or
    /// `collectors[0].config.url`, or the deepest node on the way when the rest is missing.
    pub fn locate(&self, path: &str) -> &Node {
        let mut node = self;
        for segment in path.split('.') {
            let (name, indexes) = segment.split_once('[').unwrap_or((segment, ""));
            let steps = std::iter::once(Step::Key(name)).chain(
                indexes
                    .split('[')
                    .filter_map(|i| i.trim_end_matches(']').parse().ok())
                    .map(Step::Index),
            );
            for step in steps {
                let next = match (&node.value, step) {
                    (NodeValue::Map(entries), Step::Key(key)) => entries
                        .iter()
                        .find(|(k, _)| k.text == key)
                        .map(|(_, child)| child),
                    (NodeValue::Seq(items), Step::Index(index)) => items.get(index),
                    _ => None,
                };
                match next {
                    Some(child) => node = child,
                    None => return node,
                }
            }
        }
        node
    }

    /// Converts the node to JSON for free-form blocks such as a strategy `config`. Mapping keys
    /// become strings, and a float that JSON cannot hold (NaN, infinity) becomes null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            NodeValue::Null => J::Null,
            NodeValue::Bool(b) => J::Bool(*b),
            NodeValue::Int(i) => J::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            NodeValue::Str(s) => J::String(s.clone()),
            NodeValue::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(key, node)| (key.text.clone(), node.to_json()))
                    .collect(),
            ),
        }
    }
}

/// One step of a path given to [`Node::locate`].
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            at: Position::of(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KeyText>::deserialize(deserializer)?;
        Ok(Key {
            text: spanned.value.0,
            at: Position::of(&spanned.referenced),
        })
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        Ok(i64::try_from(v).map_or(NodeValue::Float(v as f64), NodeValue::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeValue, E> {
        Ok(i64::try_from(v).map_or(NodeValue::Float(v as f64), NodeValue::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeValue, E> {
        Ok(i64::try_from(v).map_or(NodeValue::Float(v as f64), NodeValue::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// A mapping key in text form, whatever scalar type YAML gave it.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NodeValue::deserialize(deserializer)? {
            NodeValue::Str(s) => Ok(KeyText(s)),
            NodeValue::Int(i) => Ok(KeyText(i.to_string())),
            NodeValue::Float(f) => Ok(KeyText(f.to_string())),
            NodeValue::Bool(b) => Ok(KeyText(b.to_string())),
            NodeValue::Null => Ok(KeyText("null".to_owned())),
            other => Err(de::Error::custom(format!(
                "a mapping key must be a scalar, found {}",
                other.type_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_entry<'a>(node: &'a Node, key: &str) -> &'a Node {
        let NodeValue::Map(entries) = &node.value else {
            panic!("expected a mapping, found {:?}", node.value);
        };
        &entries
            .iter()
            .find(|(k, _)| k.text == key)
            .expect("key present")
            .1
    }

    #[test]
    fn nested_values_keep_positions() {
        let text = "a: 1\nb:\n  c: [x, 2.5]\n---\n# only a comment\n---\nz: ~\n";
        let docs: Vec<Node> = serde_saphyr::from_multiple(text).expect("valid yaml");
        assert_eq!(docs.len(), 2);
        let c = map_entry(map_entry(&docs[0], "b"), "c");
        let NodeValue::Seq(items) = &c.value else {
            panic!("expected a list");
        };
        assert_eq!(items[0].value, NodeValue::Str("x".into()));
        assert_eq!(
            items[1].at,
            Position {
                line: 3,
                column: 10
            }
        );
        assert_eq!(map_entry(&docs[1], "z").value, NodeValue::Null);
    }

    #[test]
    fn to_json_keeps_types() {
        let node: Node = serde_saphyr::from_str("a: [1, true, x, 1.5]\n").expect("valid yaml");
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": [1, true, "x", 1.5]})
        );
    }
}
