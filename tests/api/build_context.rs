//! `.dockerignore` against `.gitignore`: whatever git ignores (local state, build outputs) stays out
//! of the image's build context, and every source file git tracks goes in. Git itself says what it
//! ignores (`git check-ignore`); the `.dockerignore` side is read with Docker's rules:
//!
//! - a pattern is relative to the context root (a leading `/` changes nothing) and is matched segment
//!   by segment: `*` and `?` within one path segment, `**` across any number of segments;
//! - a path is excluded when the last pattern matching it, or one of its parent directories, is not
//!   an exception (`!`).

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Tracked files that are kept out of the context on purpose.
const TRACKED_BUT_EXCLUDED: &[&str] = &["config/local.env"];

struct Pattern {
    segments: Vec<String>,
    exception: bool,
}

fn dockerignore() -> Vec<Pattern> {
    std::fs::read_to_string(Path::new(ROOT).join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (exception, p) = l.strip_prefix('!').map_or((false, l), |p| (true, p));
            let segments = p
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_owned)
                .collect();
            Pattern { segments, exception }
        })
        .collect()
}

/// `*` and `?` within one segment.
fn segment_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_matches(&pattern[1..], name) || (!name.is_empty() && segment_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => segment_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => segment_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn path_matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|skip| path_matches(&pattern[1..], &path[skip..])),
        Some(p) => {
            !path.is_empty()
                && segment_matches(p.as_bytes(), path[0].as_bytes())
                && path_matches(&pattern[1..], &path[1..])
        }
    }
}

fn excluded(patterns: &[Pattern], path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = false;
    for pattern in patterns {
        let hit = (1..=segments.len()).any(|n| path_matches(&pattern.segments, &segments[..n]));
        if hit {
            out = !pattern.exception;
        }
    }
    out
}

/// Paths a `.gitignore` entry stands for: at the root, and deeper down when the entry is not
/// anchored; the directory's contents when it names a directory; wildcards filled in.
fn samples(entry: &str) -> Vec<String> {
    let dir_only = entry.ends_with('/');
    let body = entry.trim_end_matches('/');
    let anchored = body.starts_with('/') || body.contains('/');
    let name = body.trim_start_matches('/').replace("**", "deep").replace('*', "sample").replace('?', "x");
    let mut bases = vec![name.clone()];
    if !anchored {
        bases.push(format!("some/nested/{name}"));
    }
    let mut out = Vec::new();
    for base in bases {
        if !dir_only {
            out.push(base.clone());
        }
        out.push(format!("{base}/inner/file"));
    }
    out
}

fn git(args: &[&str]) -> std::process::Output {
    Command::new("git").current_dir(ROOT).args(args).output().expect("git runs")
}

#[test]
fn every_gitignore_entry_is_kept_out_of_the_build_context() {
    let patterns = dockerignore();
    let gitignore = std::fs::read_to_string(Path::new(ROOT).join(".gitignore")).unwrap();
    let entries: Vec<&str> =
        gitignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(entries.len() >= 10, "read the .gitignore: {entries:?}");
    let mut missing = Vec::new();
    for entry in entries {
        assert!(!entry.starts_with('!'), "a negated .gitignore entry needs a rule here: {entry}");
        for path in samples(entry) {
            // The sample must be something git really ignores, or it proves nothing.
            let ignored = git(&["check-ignore", "--no-index", "-q", &path]);
            assert_eq!(ignored.status.code(), Some(0), "git does not ignore {path} (from `{entry}`)");
            if !excluded(&patterns, &path) {
                missing.push(format!("{path} (.gitignore `{entry}`)"));
            }
        }
    }
    assert!(missing.is_empty(), ".dockerignore lets these into the build context: {missing:#?}");
}

#[test]
fn every_tracked_source_is_in_the_build_context() {
    let patterns = dockerignore();
    let listed = git(&["ls-files", "-z"]);
    assert!(listed.status.success());
    let files: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "config/defaults.toml", "start.sh"] {
        assert!(files.iter().any(|f| f == needed), "git tracks {needed}");
    }
    let dropped: Vec<&String> = files
        .iter()
        .filter(|f| excluded(&patterns, f) != TRACKED_BUT_EXCLUDED.contains(&f.as_str()))
        .collect();
    assert!(dropped.is_empty(), "tracked files the context gets wrong: {dropped:#?}");
}

/// The matcher above, on Docker's documented examples, so a mistake in it cannot hide a gap.
#[test]
fn the_dockerignore_reading_follows_dockers_rules() {
    let p = |lines: &[&str]| -> Vec<Pattern> {
        lines
            .iter()
            .map(|l| {
                let (exception, body) = l.strip_prefix('!').map_or((false, *l), |b| (true, b));
                Pattern {
                    segments: body.trim_matches('/').split('/').map(str::to_owned).collect(),
                    exception,
                }
            })
            .collect()
    };
    assert!(excluded(&p(&["*/temp*"]), "somedir/temporary.txt"));
    assert!(!excluded(&p(&["*/temp*"]), "temporary.txt"));
    assert!(excluded(&p(&["*/*/temp*"]), "somedir/subdir/temporary.txt"));
    assert!(excluded(&p(&["temp?"]), "tempa"));
    assert!(!excluded(&p(&["temp?"]), "tempab"));
    assert!(excluded(&p(&["**/*.go"]), "a/b/c.go") && excluded(&p(&["**/*.go"]), "c.go"));
    assert!(excluded(&p(&["target"]), "target/debug/waggle"), "a matching directory takes its contents");
    assert!(!excluded(&p(&["target"]), "src/target"), "not anchored at any depth");
    assert!(!excluded(&p(&["*.md", "!README*.md"]), "README-secret.md"));
    assert!(excluded(&p(&["*.md", "!README*.md", "README-secret.md"]), "README-secret.md"));
}
