//! The workspace layout: no import circle between the files of any crate, and every package's
//! name is the name it is imported by.
//!
//! The import graph is read from the source text, as a reader follows it: a file imports another
//! when it names an item of it by path — `use crate::a::b::Item;`, `super::Item`, `child::f()`, in
//! `use` lines and in code alike. A path is followed through the re-exports it passes (`pub use
//! x::Item;` in a `mod.rs`), so it lands on the file that defines the item. A re-export is an
//! import only where the file also uses the name itself. A file may use what the `mod.rs` or
//! `lib.rs` above it defines (its folder's own vocabulary, such as the state every route of
//! `http/` takes) while that `mod.rs` wires the file in: such a use is not an edge. Test modules
//! (`tests.rs`, `tests/`, `#[cfg(test)] mod tests { … }`) are left out: nothing imports them, so
//! they close no circle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use tracebudget_tests::{TempDir, repo_root};

/// One file of a crate: its module path from the crate root and its code with comments and
/// literals blanked out.
struct File {
    rel: String,
    module: Vec<String>,
    code: String,
}

/// The import graph of one crate: file → (file it imports → the names it takes from it).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Blanks comments, string, byte-string and char literals (their text can hold `crate::…`).
fn code_only(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && !ident_byte(b, i.wrapping_sub(1)) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            let end = (j + close.len()).min(b.len());
            for &x in &b[i..end] {
                blank(&mut out, x);
            }
            i = end;
        } else if c == b'"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&x| x == b'\'').map(|p| i + 2 + p + 1)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &x in &b[i..end] {
                        blank(&mut out, x);
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 (only ASCII bytes are replaced)")
}

fn ident_byte(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The tokens of blanked code that matter for paths: identifiers, `::` and single punctuation.
fn tokens(code: &str) -> Vec<&str> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || !c.is_ascii() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || !b[i].is_ascii()) {
                i += 1;
            }
            out.push(&code[start..i]);
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push("::");
            i += 2;
        } else {
            out.push(&code[i..i + 1]);
            i += 1;
        }
    }
    out
}

/// Reads a `use` tree starting at `toks[i]`; returns its leaf paths (with `as` names) and the
/// index after it.
fn use_tree<'a>(toks: &[&'a str], mut i: usize, prefix: &[&'a str], out: &mut Vec<(Vec<&'a str>, &'a str)>) -> usize {
    let mut path: Vec<&str> = prefix.to_vec();
    loop {
        match toks.get(i).copied() {
            Some("{") => {
                i += 1;
                loop {
                    match toks.get(i).copied() {
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, &path, out),
                    }
                }
            }
            Some("*") => {
                out.push((path.clone(), "*"));
                return i + 1;
            }
            Some(seg) if seg != "::" && seg != ";" && seg != "," && seg != "}" => {
                path.push(seg);
                i += 1;
                if toks.get(i) == Some(&"::") {
                    i += 1;
                    continue;
                }
                let name = if toks.get(i) == Some(&"as") {
                    i += 2;
                    toks[i - 1]
                } else {
                    seg
                };
                out.push((path, name));
                return i;
            }
            _ => return i,
        }
    }
}

/// The files of one crate's `src/`, except its `main.rs` (a root nothing imports) and tests.
fn crate_files(src: &Path) -> Vec<File> {
    fn walk(src: &Path, dir: &Path, out: &mut Vec<File>) {
        let mut entries: Vec<_> = std::fs::read_dir(src.join(dir))
            .expect("read src dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let rel = dir.join(&name);
            if path.is_dir() {
                if name != "tests" {
                    walk(src, &rel, out);
                }
                continue;
            }
            if !name.ends_with(".rs") || name == "tests.rs" || (dir.as_os_str().is_empty() && name == "main.rs") {
                continue;
            }
            let mut module: Vec<String> = dir.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            let stem = name.trim_end_matches(".rs");
            if !(stem == "mod" || (dir.as_os_str().is_empty() && stem == "lib")) {
                module.push(stem.to_owned());
            }
            let source = std::fs::read_to_string(&path).expect("read source file");
            out.push(File {
                rel: rel.to_string_lossy().into_owned(),
                module,
                code: code_only(&source),
            });
        }
    }
    let mut out = Vec::new();
    walk(src, Path::new(""), &mut out);
    out
}

/// Where a path relative to module `at` points, from the crate root; `None` for another crate's.
fn absolute(at: &[String], path: &[&str], children: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut base, rest): (Vec<String>, &[&str]) = match path.first().copied()? {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (at.to_vec(), &path[1..]),
        "super" => {
            let mut base = at.to_vec();
            let mut k = 0;
            while path.get(k) == Some(&"super") {
                base.pop()?;
                k += 1;
            }
            (base, &path[k..])
        }
        first => {
            let mut child = at.to_vec();
            child.push(first.to_owned());
            if !children.contains(&child) {
                return None;
            }
            (at.to_vec(), path)
        }
    };
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Some(base)
}

/// The import graph of the crate whose sources are in `src`.
fn import_graph(src: &Path) -> Graph {
    let files = crate_files(src);
    let by_module: HashMap<Vec<String>, usize> = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
    let modules: BTreeSet<Vec<String>> = by_module.keys().cloned().collect();

    // What each file re-exports (name → absolute path) and its glob re-exports.
    let mut reexports: HashMap<usize, HashMap<String, Vec<String>>> = HashMap::new();
    let mut globs: HashMap<usize, Vec<Vec<String>>> = HashMap::new();
    // Each file's uses: (absolute path, name, is a re-export).
    let mut uses: Vec<Vec<(Vec<String>, String, bool)>> = vec![Vec::new(); files.len()];

    for (fi, file) in files.iter().enumerate() {
        let toks = tokens(&file.code);
        // The module the scanner is in: the file's, or an inline `mod x { … }` within it.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut skip_until: Option<usize> = None;
        let mut i = 0;
        while i < toks.len() {
            let t = toks[i];
            match t {
                "{" => depth += 1,
                "}" => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    if skip_until == Some(depth) {
                        skip_until = None;
                    }
                }
                _ => {}
            }
            if skip_until.is_some() {
                i += 1;
                continue;
            }
            let mut here = file.module.clone();
            here.extend(inline.iter().map(|(n, _)| n.clone()));
            if t == "mod"
                && toks.get(i + 2) == Some(&"{")
                && i + 1 < toks.len()
                && !matches!(toks.get(i.wrapping_sub(1)), Some(&"::"))
            {
                if toks[i + 1] == "tests" {
                    skip_until = Some(depth);
                } else {
                    inline.push((toks[i + 1].to_owned(), depth));
                }
                depth += 1;
                i += 3;
                continue;
            }
            if t == "use" {
                let before = &toks[..i];
                let reexport = before.last() == Some(&"pub")
                    || (before.last() == Some(&")") && before.iter().rev().take(6).any(|t| *t == "pub"));
                let mut leaves = Vec::new();
                let end = use_tree(&toks, i + 1, &[], &mut leaves);
                for (path, name) in leaves {
                    let Some(abs) = absolute(&here, &path, &modules) else {
                        continue;
                    };
                    if reexport && inline.is_empty() {
                        if name == "*" {
                            globs.entry(fi).or_default().push(abs.clone());
                        } else if name != "self" {
                            reexports.entry(fi).or_default().insert(name.to_owned(), abs.clone());
                        }
                    }
                    let used_here = name != "*" && toks.iter().filter(|t| **t == name).count() > 1;
                    if !reexport || used_here {
                        uses[fi].push((abs, name.to_owned(), reexport));
                    }
                }
                i = end;
                continue;
            }
            // A path in code: `crate::…`, `super::…`, `self::…` or `child::…`.
            if toks.get(i + 1) == Some(&"::")
                && toks.get(i.wrapping_sub(1)) != Some(&"::")
                && t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            {
                let mut path = vec![t];
                let mut j = i + 1;
                while toks.get(j) == Some(&"::")
                    && toks
                        .get(j + 1)
                        .is_some_and(|s| s.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_'))
                {
                    path.push(toks[j + 1]);
                    j += 2;
                }
                if let Some(abs) = absolute(&here, &path, &modules) {
                    let name = (*path.last().unwrap()).to_owned();
                    uses[fi].push((abs, name, false));
                }
                i = j;
                continue;
            }
            i += 1;
        }
    }

    // Follows a path down the module files and through re-exports to the defining file.
    fn resolve(
        path: &[String],
        by_module: &HashMap<Vec<String>, usize>,
        files: &[File],
        reexports: &HashMap<usize, HashMap<String, Vec<String>>>,
        globs: &HashMap<usize, Vec<Vec<String>>>,
        hops: usize,
    ) -> Option<usize> {
        let mut cur: Vec<String> = Vec::new();
        let mut at = *by_module.get(&cur)?;
        for (k, seg) in path.iter().enumerate() {
            let mut next = cur.clone();
            next.push(seg.clone());
            if let Some(&f) = by_module.get(&next) {
                cur = next;
                at = f;
                continue;
            }
            if hops < 8 {
                if let Some(target) = reexports.get(&at).and_then(|r| r.get(seg)) {
                    let mut full = target.clone();
                    full.extend(path[k + 1..].iter().cloned());
                    return resolve(&full, by_module, files, reexports, globs, hops + 1);
                }
                for glob in globs.get(&at).into_iter().flatten() {
                    let mut full = glob.clone();
                    full.push(seg.clone());
                    if let Some(f) = resolve(&full, by_module, files, reexports, globs, hops + 1)
                        && defines(&files[f].code, seg)
                    {
                        return Some(f);
                    }
                }
            }
            break;
        }
        Some(at)
    }

    let mut graph = Graph::new();
    for (fi, file) in files.iter().enumerate() {
        let edges = graph.entry(file.rel.clone()).or_default();
        for (abs, name, _) in &uses[fi] {
            if let Some(to) = resolve(abs, &by_module, &files, &reexports, &globs, 0)
                && to != fi
                && !file.module.starts_with(&files[to].module)
            {
                edges.entry(files[to].rel.clone()).or_default().insert(name.clone());
            }
        }
    }
    graph
}

/// Whether blanked code defines an item named `name`.
fn defines(code: &str, name: &str) -> bool {
    let toks = tokens(code);
    toks.windows(2).any(|w| {
        w[1] == name
            && matches!(
                w[0],
                "fn" | "struct" | "enum" | "const" | "static" | "type" | "trait" | "union" | "mod"
            )
    })
}

/// The import circles of a graph: its strongly connected components of more than one file.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// The workspace members, from the root `Cargo.toml`.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| root.join(m.as_str().unwrap()))
        .collect()
}

fn describe(graph: &Graph, circle: &[String]) -> String {
    let mut out = String::new();
    for from in circle {
        for (to, names) in &graph[from] {
            if circle.contains(to) {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                out.push_str(&format!("\n    {from} -> {to}: {}", names.join(", ")));
            }
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_circle() {
    let mut found = Vec::new();
    for member in members(&repo_root()) {
        let src = member.join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = import_graph(&src);
        let name = member.file_name().unwrap().to_string_lossy().into_owned();
        for circle in circles(&graph) {
            found.push(format!(
                "{name}/src: {}{}",
                circle.join(", "),
                describe(&graph, &circle)
            ));
        }
    }
    assert!(found.is_empty(), "import circles:\n  {}", found.join("\n  "));
}

#[test]
fn every_package_is_imported_by_its_own_name() {
    let root = repo_root();
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for (key, dep) in workspace["workspace"]["dependencies"].as_table().unwrap() {
        assert!(dep.get("package").is_none(), "workspace dependency {key:?} is renamed");
    }
    for member in members(&root) {
        let manifest: toml::Table = std::fs::read_to_string(member.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let package = manifest["package"]["name"].as_str().unwrap().replace('-', "_");
        if let Some(lib) = manifest.get("lib").and_then(|l| l.get("name")) {
            assert_eq!(lib.as_str().unwrap(), package, "{}: [lib] name", member.display());
        }
    }
}

/// The check finds what it is for: a circle through a re-export and `super::`, another through
/// a code path, and none where a parent only re-exports a child's item.
#[test]
fn the_circle_check_finds_a_circle() {
    let dir = TempDir::new("layout");
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub use d::Leaf;\n",
    );
    write(
        "a/mod.rs",
        "mod inner;\npub use inner::Thing;\n/// `crate::b::Never` in a comment\npub struct Base;\n",
    );
    write("a/inner.rs", "use super::Base;\npub struct Thing(Base);\n");
    write("b.rs", "pub fn f() -> crate::c::C { crate::c::C }\npub struct B;\n");
    write(
        "c.rs",
        "use crate::{b::B, Leaf};\npub struct C;\nfn g(_: B, _: Leaf) { let _ = \"crate::a::Base\"; }\n",
    );
    write(
        "d.rs",
        "use crate::a::Thing;\npub struct Leaf(Thing);\n#[cfg(test)]\nmod tests { use crate::b::f; }\n",
    );
    let graph = import_graph(&src);
    assert_eq!(circles(&graph), vec![vec!["b.rs".to_owned(), "c.rs".to_owned()]]);
    assert_eq!(graph["c.rs"]["d.rs"], BTreeSet::from(["Leaf".to_owned()]));
    assert_eq!(graph["d.rs"]["a/inner.rs"], BTreeSet::from(["Thing".to_owned()]));
    assert!(!graph["d.rs"].contains_key("b.rs"), "test modules are left out");
    assert!(
        !graph["a/mod.rs"].contains_key("a/inner.rs"),
        "a re-export alone is not an import"
    );

    // The folder's `mod.rs` now uses its child's item itself, and the child its folder's `Base`:
    // not a circle. A sibling that uses the child closes one through `b.rs`.
    write(
        "a/mod.rs",
        "mod inner;\npub use inner::Thing;\npub struct Base;\nfn h(_: Thing) {}\n",
    );
    write(
        "a/inner.rs",
        "use super::Base;\npub struct Thing(Base);\nfn k() { crate::b::f(); }\n",
    );
    write("b.rs", "pub fn f() {}\npub struct B(crate::a::Thing);\n");
    let graph = import_graph(&src);
    assert!(graph["a/mod.rs"].contains_key("a/inner.rs"));
    assert!(
        !graph["a/inner.rs"].contains_key("a/mod.rs"),
        "a file may use its folder's items"
    );
    assert_eq!(circles(&graph), vec![vec!["a/inner.rs".to_owned(), "b.rs".to_owned()]]);
}

/// The binary's three layers import downward only: `cli` uses `app` and `http`, `http` uses
/// `app`, and `app` uses neither.
#[test]
fn the_binary_layers_import_downward() {
    let graph = import_graph(&repo_root().join("api/src"));
    fn layer(file: &str) -> Option<&str> {
        file.split('/').next().filter(|l| ["cli", "app", "http"].contains(l))
    }
    let mut wrong = Vec::new();
    for (from, edges) in &graph {
        for (to, names) in edges {
            let upward = matches!(
                (layer(from), layer(to)),
                (Some("app"), Some("cli" | "http")) | (Some("http"), Some("cli"))
            );
            if upward {
                wrong.push(format!("{from} -> {to}: {names:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n  {}",
        wrong.join("\n  ")
    );
    assert!(graph.keys().any(|f| f.starts_with("app/")) && graph.keys().any(|f| f.starts_with("http/")));
}
