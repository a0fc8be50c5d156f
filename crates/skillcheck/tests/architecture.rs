//! The module graph has no cycles: every `crate::` path in a module's source is an edge to a
//! top-level module, or for `rules` to one family, so a family importing another counts too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/rules/links.rs` → `rules::links`; `src/engine/context.rs` → `engine`; `src/cli.rs` → `cli`.
fn unit_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs");
    let mut parts = rel.split('/');
    let top = parts.next().unwrap_or_default();
    match (top, parts.next()) {
        ("rules", Some(family)) if family != "mod" => format!("rules::{family}"),
        _ => top.to_string(),
    }
}

fn edges(text: &str, units: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // `crate::a::b`, and `crate::{a, b::c}` groups.
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let paths: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(str::trim)
                .collect()
        } else {
            vec![rest]
        };
        for path in paths {
            let mut segments = path
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::");
            let top = segments.next().unwrap_or_default();
            let unit = match (top, segments.next()) {
                ("rules", Some(family)) if units.contains(&format!("rules::{family}")) => {
                    format!("rules::{family}")
                }
                _ => top.to_string(),
            };
            if units.contains(&unit) {
                out.insert(unit);
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).expect("read")));
        }
    }
}

#[test]
fn no_import_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let units: BTreeSet<String> = files
        .iter()
        .map(|(rel, _)| unit_of(rel))
        .filter(|u| u != "lib" && u != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let unit = unit_of(rel);
        if !units.contains(&unit) {
            continue;
        }
        // Tests may reach anywhere; only the shipped code counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or(text);
        let mut targets = edges(code, &units);
        targets.remove(&unit);
        graph.entry(unit).or_default().extend(targets);
    }
    assert!(graph.contains_key("rules::links") && graph["cli"].contains("lint"));

    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
