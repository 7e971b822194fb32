//! The docs: README.md, ARCHITECTURE.md, CHANGELOG.md and `docs/**/*.md`. Every relative link
//! resolves (file and heading anchor), no docs page cites an issue number, the `tracebudget check`
//! excerpts are what the binary prints, and the README's config example is valid.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tracebudget_tests::{TempDir, bin, repo_root, run};

/// Every Markdown file the link check covers, as paths relative to the repository root.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| root.join(p).exists())
        .collect();
    files.extend(docs_pages(root));
    files
}

/// `docs/**/*.md`, relative to the repository root, sorted.
fn docs_pages(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("read docs dir entry");
            let rel = dir.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                walk(root, &rel, out);
            } else if rel.extension().is_some_and(|e| e == "md") {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new("docs"), &mut out);
    out.sort();
    out
}

/// GitHub's heading anchor: lowercase, punctuation dropped except `-` and `_`, spaces → `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Lines outside fenced code blocks, with their 1-based line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The anchors of a Markdown file's headings (repeats get `-1`, `-2`, … as on GitHub).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of inline links `[text](target)` on a line, code spans removed.
fn link_targets(line: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            prose.push(c);
        }
    }
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                let target = after[..end].trim();
                if !target.is_empty() && !target.contains(' ') {
                    out.push(target.to_string());
                }
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// `a/b/../c` → `a/c` (purely lexical; `None` when it climbs out of the repository).
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[test]
fn every_relative_link_in_the_docs_resolves_to_a_file_and_heading() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(root.join(&file)).expect("read markdown");
        for (line_no, line) in prose_lines(&text) {
            for target in link_targets(line) {
                let scheme = target.split_once(':').is_some_and(|(s, _)| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                });
                if scheme || target.starts_with('<') {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let resolved = if path.is_empty() {
                    Some(file.clone())
                } else {
                    normalize(&file.parent().unwrap_or(Path::new("")).join(path))
                };
                let Some(resolved) = resolved else {
                    broken.push(format!(
                        "{}:{line_no}: `{target}` points outside the repository",
                        file.display()
                    ));
                    continue;
                };
                let full = root.join(&resolved);
                if !full.exists() {
                    broken.push(format!(
                        "{}:{line_no}: `{target}`: no file {}",
                        file.display(),
                        resolved.display()
                    ));
                    continue;
                }
                if anchor.is_empty() || resolved.extension().is_none_or(|e| e != "md") {
                    continue;
                }
                let target_text = std::fs::read_to_string(&full).expect("read link target");
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!(
                        "{}:{line_no}: `{target}`: no heading with anchor #{anchor} in {}",
                        file.display(),
                        resolved.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} relative links found: is the link parser broken?"
    );
    assert!(broken.is_empty(), "broken links in the docs:\n{}", broken.join("\n"));
}

#[test]
fn no_docs_page_cites_an_issue_number() {
    let root = repo_root();
    let mut pages = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    pages.extend(docs_pages(&root));
    let mut found = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(root.join(&page)).expect("read page");
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let cites = lower
                .match_indices("issue ")
                .any(|(at, m)| lower[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
            if cites {
                found.push(format!("{}:{}: {}", page.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "docs pages cite issue numbers (history goes to CHANGELOG.md):\n{}",
        found.join("\n")
    );
}

/// Every fenced block (any info string) in README.md and docs/**, with the page and line it
/// starts on.
fn code_blocks() -> Vec<(String, String)> {
    let root = repo_root();
    let mut pages = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    pages.extend(docs_pages(&root));
    let mut blocks = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(root.join(&page)).expect("read page");
        let mut current: Option<(usize, Vec<&str>)> = None;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                match current.take() {
                    Some((start, lines)) => {
                        blocks.push((format!("{}:{start}", page.display()), lines.join("\n") + "\n"));
                    }
                    None => current = Some((i + 1, Vec::new())),
                }
            } else if let Some((_, lines)) = current.as_mut() {
                lines.push(line);
            }
        }
    }
    blocks
}

#[test]
fn the_check_excerpts_in_the_docs_are_what_check_prints() {
    let example = repo_root().join("examples/tracebudget.toml");
    let out = run(&["check", example.to_str().unwrap()]);
    assert!(out.status.success(), "check of the example config failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);

    let windows: Vec<_> = code_blocks()
        .into_iter()
        .filter(|(_, block)| block.starts_with("Alert windows ("))
        .collect();
    assert!(
        !windows.is_empty(),
        "no \"Alert windows\" excerpt of `tracebudget check` in the docs"
    );
    for (at, block) in &windows {
        assert!(
            stdout.contains(block.as_str()),
            "{at}: this excerpt is not what `tracebudget check examples/tracebudget.toml` prints\n\
             --- excerpt ---\n{block}--- check printed ---\n{stdout}"
        );
    }

    // The error excerpt: the example with its first `journey = "checkout"` misspelt, checked as
    // `tracebudget.toml` from the directory that holds it (check prints the path it was given).
    let config = std::fs::read_to_string(&example).expect("read example config");
    let broken = config.replacen("journey = \"checkout\"", "journey = \"chekout\"", 1);
    assert_ne!(
        broken, config,
        "the example config has no `journey = \"checkout\"` any more"
    );
    let dir = TempDir::new("docs-check");
    dir.write("tracebudget.toml", &broken);
    let out = Command::new(bin())
        .args(["check", "tracebudget.toml"])
        .current_dir(dir.path())
        .output()
        .expect("run tracebudget check");
    assert_eq!(out.status.code(), Some(1), "check of the misspelt config: {out:?}");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let errors: Vec<_> = code_blocks()
        .into_iter()
        .filter(|(_, block)| block.starts_with("error: unknown journey \"chekout\""))
        .collect();
    assert!(
        !errors.is_empty(),
        "no `error: unknown journey \"chekout\"` excerpt of `tracebudget check` in the docs"
    );
    for (at, block) in &errors {
        assert!(
            printed.contains(block.as_str()),
            "{at}: this excerpt is not what `tracebudget check tracebudget.toml` prints for the example \
             with its first journey misspelt\n--- excerpt ---\n{block}--- check printed ---\n{printed}"
        );
    }
}

#[test]
fn the_readme_config_example_is_a_valid_config() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let (_, after) = readme
        .split_once("```toml\n")
        .expect("README.md has a ```toml config example");
    let (example, _) = after.split_once("```").expect("the config example's fence closes");
    let dir = TempDir::new("docs-readme");
    let path = dir.write("readme.toml", example);
    let out = run(&["check", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "README.md's config example is not a valid config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
