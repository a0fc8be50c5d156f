//! A YAML tree with positions, built from yaml-rust2's event parser.
//!
//! The loaders of YAML crates drop positions and keep one of two duplicate keys; lint needs
//! the line and column of every key and value, and must see duplicates.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based, relative to the YAML text.
    pub line: usize,
    /// 1-based character column.
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar {
        value: String,
        /// Plain scalars are typed by YAML (numbers, booleans, null); quoted ones are strings.
        plain: bool,
        pos: Pos,
    },
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pos: Pos,
    },
    Alias {
        pos: Pos,
    },
}

/// What a scalar means once YAML's core schema has typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    Str,
    Null,
    Bool,
    Number,
}

impl Node {
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. }
            | Node::Seq { pos, .. }
            | Node::Map { pos, .. }
            | Node::Alias { pos } => *pos,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn scalar_kind(&self) -> Option<ScalarKind> {
        let Node::Scalar { value, plain, .. } = self else {
            return None;
        };
        if !plain {
            return Some(ScalarKind::Str);
        }
        Some(match value.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => ScalarKind::Null,
            "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => ScalarKind::Bool,
            v if v.parse::<i64>().is_ok()
                || v.parse::<f64>().is_ok() && !v.chars().any(char::is_alphabetic)
                || matches!(v, ".inf" | "-.inf" | ".nan" | ".NaN" | ".Inf")
                || v.starts_with("0x") && i64::from_str_radix(&v[2..], 16).is_ok()
                || v.starts_with("0o") && i64::from_str_radix(&v[2..], 8).is_ok() =>
            {
                ScalarKind::Number
            }
            _ => ScalarKind::Str,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Scalar { .. } => match self.scalar_kind() {
                Some(ScalarKind::Null) => "null",
                Some(ScalarKind::Bool) => "a boolean",
                Some(ScalarKind::Number) => "a number",
                _ => "a string",
            },
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
            Node::Alias { .. } => "an alias",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    docs: Vec<Node>,
}

fn pos(mark: Marker) -> Pos {
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Node::Seq { items, .. }) => items.push(node),
            Some(Node::Map { entries, .. }) => {
                // Keys and values alternate; a pending key is stored with a placeholder value.
                match entries.last_mut() {
                    Some((
                        _,
                        v @ Node::Alias {
                            pos: Pos { line: 0, .. },
                        },
                    )) => *v = node,
                    _ => entries.push((
                        node,
                        Node::Alias {
                            pos: Pos { line: 0, col: 0 },
                        },
                    )),
                }
            }
            _ => self.docs.push(node),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, _, _) => self.push_value(Node::Scalar {
                value,
                plain: style == TScalarStyle::Plain,
                pos: pos(mark),
            }),
            Event::Alias(_) => self.push_value(Node::Alias {
                pos: Pos {
                    line: mark.line().max(1),
                    col: mark.col() + 1,
                },
            }),
            Event::SequenceStart(..) => self.stack.push(Node::Seq {
                items: Vec::new(),
                pos: pos(mark),
            }),
            Event::MappingStart(..) => self.stack.push(Node::Map {
                entries: Vec::new(),
                pos: pos(mark),
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(node) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            _ => {}
        }
    }
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, true)
        .map_err(|e| YamlError {
            pos: pos(*e.marker()),
            message: e.info().to_string(),
        })?;
    Ok(builder.docs)
}

/// Duplicate keys at any depth: (key, first position, duplicate position).
pub fn duplicate_keys(node: &Node, out: &mut Vec<(String, Pos, Pos)>) {
    match node {
        Node::Map { entries, .. } => {
            for (i, (key, value)) in entries.iter().enumerate() {
                if let Some(k) = key.as_str()
                    && let Some((first, _)) =
                        entries[..i].iter().find(|(f, _)| f.as_str() == Some(k))
                {
                    out.push((k.to_string(), first.pos(), key.pos()));
                }
                duplicate_keys(value, out);
            }
        }
        Node::Seq { items, .. } => items.iter().for_each(|n| duplicate_keys(n, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse("name: x\ndescription: \"y\"\nmeta:\n  a: 1\n").unwrap();
        let Node::Map { entries, .. } = &docs[0] else {
            panic!()
        };
        assert_eq!(entries[0].0.pos(), Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos(), Pos { line: 1, col: 7 });
        assert_eq!(entries[1].1.scalar_kind(), Some(ScalarKind::Str));
        let Node::Map { entries: inner, .. } = &entries[2].1 else {
            panic!()
        };
        assert_eq!(inner[0].0.pos(), Pos { line: 4, col: 3 });
        assert_eq!(inner[0].1.scalar_kind(), Some(ScalarKind::Number));
    }

    #[test]
    fn finds_duplicates_and_reports_errors() {
        let docs = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let mut dups = Vec::new();
        duplicate_keys(&docs[0], &mut dups);
        assert_eq!(
            dups,
            [("a".into(), Pos { line: 1, col: 1 }, Pos { line: 3, col: 1 })]
        );
        let err = parse("a: b: c\n").unwrap_err();
        assert_eq!(err.pos.line, 1);
    }

    #[test]
    fn empty_values_and_typing() {
        let docs = parse("a:\nb: yes\nc: true\nd: 1.5\ne: 1.0.0\n").unwrap();
        let Node::Map { entries, .. } = &docs[0] else {
            panic!()
        };
        let kinds: Vec<_> = entries.iter().map(|(_, v)| v.scalar_kind()).collect();
        use ScalarKind::*;
        assert_eq!(
            kinds,
            [Some(Null), Some(Str), Some(Bool), Some(Number), Some(Str)]
        );
    }
}
