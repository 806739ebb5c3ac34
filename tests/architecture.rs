//! The shape of `src/` that docs/architecture.md promises: no import loop between files (a file
//! that imports another never, through any chain, is imported back by it; a parent's `mod`
//! declarations and re-exports count as its imports, and `super::` as an import of the parent),
//! and `main.rs` a page of command line (at most 300 lines). Read from the source text: each
//! `use` tree and each `crate::`/`super::`/`self::` path names the file it reaches, through
//! `pub use` re-exports; a file's `#[cfg(test)] mod tests` is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root: `["media", "peer"]`.
type Module = Vec<String>;

const MAIN_MAX_LINES: usize = 300;

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The module a file holds (`src/media/mod.rs` and `src/media.rs` are `media`).
fn module_of(root: &Path, file: &Path) -> Module {
    let relative = file
        .strip_prefix(root)
        .expect("under src/")
        .with_extension("");
    let mut parts: Module = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The product code of a file: no tests module, no line comments, and `super::` inside an inline
/// module (`mod imp { ... }`) read as the file's own module.
fn product_text(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::new();
    let mut inline_module = false;
    for line in text.lines() {
        let code = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        let trimmed = code.trim_start();
        let declaration = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
        let declaration = declaration
            .strip_prefix("pub(super) ")
            .or_else(|| declaration.strip_prefix("pub(crate) "))
            .unwrap_or(declaration);
        if declaration.starts_with("mod ") && declaration.trim_end().ends_with('{') {
            inline_module = true;
        }
        if inline_module {
            out.push_str(&code.replace("super::", "self::"));
        } else {
            out.push_str(code);
        }
        out.push('\n');
    }
    out
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_owned()];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    let (mut items, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(|item| expand(item))
        .map(|path| format!("{prefix}{path}"))
        .collect()
}

/// The `use` trees of a text (`use ...;`, `pub use ...;`).
fn use_trees(text: &str, public_only: bool) -> Vec<String> {
    let mut trees = Vec::new();
    let mut rest = text;
    let keyword = if public_only { "pub use " } else { "use " };
    while let Some(at) = rest.find(keyword) {
        let starts_word = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let after = &rest[at + keyword.len()..];
        let end = after.find(';').unwrap_or(after.len());
        if starts_word {
            trees.extend(expand(&after[..end]));
        }
        rest = &after[end..];
    }
    trees
}

/// The paths written in full in a text: `crate::a::b`, `super::c`, `self::d`.
fn inline_paths(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut paths = Vec::new();
    for head in ["crate::", "super::", "self::", "peercam::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(head) {
            let at = from + found;
            from = at + head.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = text[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(text.len(), |e| at + e);
            // `super::{a, b}` is a use tree: `use_trees` reads it whole.
            if text[end..].starts_with('{') {
                continue;
            }
            paths.push(text[at..end].trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// `path` (as written in `module`) from the crate root, or `None` for another crate's.
fn absolute(module: &Module, children: &BTreeSet<String>, path: &str) -> Option<Module> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (&first, rest) = segments.split_first()?;
    let mut base = module.clone();
    let rest: Vec<&str> = match first {
        "crate" | "peercam" => {
            base.clear();
            rest.to_vec()
        }
        "self" => rest.to_vec(),
        "super" => {
            base.pop();
            let mut rest = rest;
            while let Some((&"super", more)) = rest.split_first() {
                base.pop();
                rest = more;
            }
            rest.to_vec()
        }
        child if children.contains(child) => segments.clone(),
        _ => return None,
    };
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Some(base)
}

struct Tree {
    files: BTreeMap<Module, String>,
    /// `module::Name` re-exported by `pub use` → the path it names.
    reexports: BTreeMap<Module, Module>,
}

impl Tree {
    fn children(&self, module: &Module) -> BTreeSet<String> {
        self.files
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].clone())
            .collect()
    }

    /// The file a path from the root reaches: through re-exports, then the longest prefix that
    /// is a file.
    fn resolve(&self, mut path: Module) -> Option<Module> {
        for _ in 0..8 {
            let hit = (1..=path.len())
                .rev()
                .find_map(|n| self.reexports.get(&path[..n]).map(|to| (n, to.clone())));
            let Some((n, to)) = hit else { break };
            let mut next = to;
            next.extend_from_slice(&path[n..]);
            if next == path {
                break;
            }
            path = next;
        }
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| self.files.contains_key(prefix))
    }
}

fn read_tree(root: &Path) -> Tree {
    let mut paths = Vec::new();
    source_files(root, &mut paths);
    let files: BTreeMap<Module, String> = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("a readable source file");
            (module_of(root, p), product_text(&text))
        })
        .collect();
    let mut tree = Tree {
        files,
        reexports: BTreeMap::new(),
    };
    let mut reexports = BTreeMap::new();
    for (module, text) in &tree.files {
        let children = tree.children(module);
        for path in use_trees(text, true) {
            let Some(target) = absolute(module, &children, &path) else {
                continue;
            };
            if let Some(name) = target.last() {
                let mut key = module.clone();
                key.push(name.clone());
                if key != target {
                    reexports.insert(key, target);
                }
            }
        }
    }
    tree.reexports = reexports;
    tree
}

/// Which files each file imports.
fn imports(tree: &Tree) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph = BTreeMap::new();
    for (module, text) in &tree.files {
        if module.is_empty() {
            continue;
        }
        let children = tree.children(module);
        let mut targets = BTreeSet::new();
        let written = use_trees(text, false).into_iter().chain(inline_paths(text));
        for path in written {
            if let Some(target) = absolute(module, &children, &path)
                .and_then(|absolute| tree.resolve(absolute))
                .filter(|t| !t.is_empty() && t != module)
            {
                targets.insert(target);
            }
        }
        // A parent reaching a child by its bare name (`peer::Peer`) imports it.
        for child in &children {
            if text.contains(&format!(" {child}::")) || text.contains(&format!("({child}::")) {
                let mut target = module.clone();
                target.push(child.clone());
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A chain of imports that comes back to where it started, if there is one.
fn find_loop(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut chain = path[at..].to_vec();
            chain.push(node.clone());
            return Some(chain);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(chain) = visit(next, graph, done, path) {
                return Some(chain);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_file_in_src_imports_itself_through_others() {
    let graph = imports(&read_tree(&src()));
    assert!(
        graph.len() > 40,
        "the tree was read ({} files)",
        graph.len()
    );
    let shown = |m: &Module| m.join("/");
    if let Some(chain) = find_loop(&graph) {
        let chain: Vec<String> = chain.iter().map(shown).collect();
        panic!("an import loop: {}", chain.join(" -> "));
    }
}

#[test]
fn main_rs_is_a_page_of_command_line() {
    let lines = std::fs::read_to_string(src().join("main.rs"))
        .expect("main.rs")
        .lines()
        .count();
    assert!(
        lines <= MAIN_MAX_LINES,
        "main.rs has {lines} lines; the daemon's parts belong in src/daemon/"
    );
}

#[test]
fn the_checker_sees_a_loop_and_a_re_exported_one() {
    let dir = std::env::temp_dir().join(format!("peercam-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(path, text).expect("written");
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod media;\n");
    write("a.rs", "use crate::b::Thing;\n");
    write("b.rs", "pub struct Thing;\n");
    write(
        "media/mod.rs",
        "mod peer;\nmod owner;\npub use owner::run;\npub struct Settings;\n",
    );
    write(
        "media/owner.rs",
        "use super::peer::Peer;\npub fn run() {}\n",
    );
    write("media/peer.rs", "pub struct Peer;\n");
    let graph = imports(&read_tree(&dir));
    assert_eq!(find_loop(&graph), None, "{graph:?}");
    // A child reaching back for its parent's own item, and a loop through a re-export.
    write(
        "media/peer.rs",
        "use super::Settings;\npub struct Peer;\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    );
    write("b.rs", "use crate::media::run;\npub struct Thing;\n");
    write(
        "media/owner.rs",
        "use super::peer::Peer;\nuse crate::a::x;\npub fn run() {}\n",
    );
    let graph = imports(&read_tree(&dir));
    let chain = find_loop(&graph).expect("a loop is found");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(chain.len() >= 3, "{chain:?}");
}
