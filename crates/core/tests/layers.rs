//! The core's shape, checked: the model at the bottom imports nothing above it, the ports stand
//! on the model alone, and no two modules import each other in a circle, except inside one
//! folder of use cases. The import graph is read from the sources (`crate::…` and `super::…`
//! paths outside test modules).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that import nothing of the core: the clock, the crypto primitives and the trace spans' helpers.
const LEAVES: &[&str] = &["clock", "code", "spans"];

/// Whether `module` belongs to the bottom layer: the model and the errors it reports.
fn bottom(module: &str) -> bool {
    module == "model" || module.starts_with("model::") || module == "error"
}

#[test]
fn leaves_import_nothing_of_the_core() {
    let graph = graph();
    for leaf in LEAVES {
        assert_eq!(graph[*leaf], BTreeSet::new(), "{leaf} must import nothing of the core");
    }
}

#[test]
fn the_model_imports_nothing_above_it() {
    for (module, imports) in graph().iter().filter(|(m, _)| bottom(m)) {
        let above: Vec<_> = imports.iter().filter(|i| !bottom(i) && !LEAVES.contains(&i.as_str())).collect();
        assert!(above.is_empty(), "{module} (the model) imports {above:?}, which stand above it");
    }
}

#[test]
fn the_ports_stand_on_the_model_alone() {
    let graph = graph();
    let above: Vec<_> = graph["ports"].iter().filter(|i| !bottom(i) && !LEAVES.contains(&i.as_str())).collect();
    assert!(above.is_empty(), "ports import {above:?}: ports may name only the model's types");
}

#[test]
fn no_import_cycle_outside_one_folder() {
    for cycle in cycles(&graph()) {
        let folders: BTreeSet<_> = cycle.iter().map(|m| m.split("::").next().unwrap_or_default().to_string()).collect();
        let nested = cycle.iter().all(|m| m.contains("::"));
        assert!(folders.len() == 1 && nested, "these modules import each other in a circle: {cycle:?}");
    }
}

/// Every module of the core (by path: `engine::check`, `model::user`) and the modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    read_dir(&root, &root, &mut sources);
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let mut imports = BTreeSet::new();
            for path in paths(text, "crate::") {
                imports.extend(resolve(&modules, &path));
            }
            let parent = module.rsplit_once("::").map(|(p, _)| p.to_string());
            if let Some(parent) = parent {
                for path in paths(text, "super::") {
                    imports.extend(resolve(&modules, &format!("{parent}::{path}")).or(Some(parent.clone())));
                }
            }
            imports.remove(module);
            (module.clone(), imports)
        })
        .collect()
}

fn read_dir(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("the core's sources") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_dir(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src").with_extension("");
            let module = relative.to_string_lossy().replace('/', "::").replace("::mod", "");
            if module != "lib" {
                out.insert(module, std::fs::read_to_string(&path).expect("a source file"));
            }
        }
    }
}

/// The paths that follow `prefix` in `text`, with `use prefix{a, b::c}` groups spread out.
fn paths(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()));
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            out.push(rest[..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The longest module that `path` names (`model::user::User` → `model::user`).
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| modules.contains(m))
}

/// The strongly connected groups of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let at = s.stack.iter().rposition(|m| *m == v).unwrap_or_default();
            let group: Vec<String> = s.stack.drain(at..).map(str::to_string).collect();
            if group.len() > 1 {
                s.found.push(group);
            }
        }
    }
    let mut s = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}
