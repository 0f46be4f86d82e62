//! The document as an ordered tree: SOPS's MAC hashes values in document order, so maps keep their key order
//! (a `serde_json::Map` would sort them).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One YAML/JSON value, maps in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null`, `~` or nothing.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer past `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in document order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Node::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key {
                Node::Str(s) => s,
                Node::Int(i) => i.to_string(),
                Node::UInt(u) => u.to_string(),
                Node::Bool(b) => b.to_string(),
                _ => return Err(de::Error::custom("only string keys are supported")),
            };
            if out.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            out.push((key, map.next_value()?));
        }
        Ok(Node::Map(out))
    }
}

/// The bytes SOPS hashes for a value it did not decrypt (Go's `ToBytes` on what yaml.v3 decoded): integers in
/// decimal, floats in the shortest form without exponent, booleans `True`/`False`; `None` for null (not hashed).
pub fn plain_bytes(node: &Node) -> Option<Vec<u8>> {
    match node {
        Node::Null | Node::Seq(_) | Node::Map(_) => None,
        Node::Bool(true) => Some(b"True".to_vec()),
        Node::Bool(false) => Some(b"False".to_vec()),
        Node::Int(i) => Some(i.to_string().into_bytes()),
        Node::UInt(u) => Some(u.to_string().into_bytes()),
        Node::Float(f) => Some(go_float(*f).into_bytes()),
        Node::Str(s) => Some(s.as_bytes().to_vec()),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn go_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    format!("{f}")
}

/// The tree as JSON for the parser, `sops` keys dropped by the caller.
pub fn to_json(node: Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::from(i),
        Node::UInt(u) => Value::from(u),
        Node::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Node::Map(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_document_order_and_scalars_their_types() {
        let node: Node = serde_saphyr::from_str("b: 1\na: [true, 1.5, x, ~]\nc: '7'\n").expect("parses");
        assert_eq!(
            node,
            Node::Map(vec![
                ("b".into(), Node::Int(1)),
                (
                    "a".into(),
                    Node::Seq(vec![
                        Node::Bool(true),
                        Node::Float(1.5),
                        Node::Str("x".into()),
                        Node::Null
                    ])
                ),
                ("c".into(), Node::Str("7".into())),
            ])
        );
    }

    #[test]
    fn plain_values_hash_as_go_prints_them() {
        assert_eq!(plain_bytes(&Node::Bool(true)).unwrap(), b"True");
        assert_eq!(plain_bytes(&Node::Float(1.0)).unwrap(), b"1");
        assert_eq!(plain_bytes(&Node::Float(0.25)).unwrap(), b"0.25");
        assert_eq!(plain_bytes(&Node::Int(-3)).unwrap(), b"-3");
        assert_eq!(plain_bytes(&Node::Null), None);
    }
}
