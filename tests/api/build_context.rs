//! The image build, as far as it can be checked without a Docker engine: the build context and the
//! pins. `.dockerignore` against `.gitignore`: whatever git ignores (local state, build outputs) stays
//! out of the image's build context, and every source file git tracks goes in. Git itself says what it
//! ignores (`git check-ignore`); the `.dockerignore` side is read with Docker's rules:
//!
//! - a pattern is relative to the context root (a leading `/` changes nothing) and is matched segment
//!   by segment: `*` and `?` within one path segment, `**` across any number of segments;
//! - a path is excluded when the last pattern matching it, or one of its parent directories, is not
//!   an exception (`!`).
//!
//! Then the Dockerfile's pins (toolchain version, base images by digest argument) and the script that
//! fills the digests in, against a stub `docker`.

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

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap()
}

fn arg_default<'a>(dockerfile: &'a str, name: &str) -> &'a str {
    let prefix = format!("ARG {name}=");
    dockerfile
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the Dockerfile declares ARG {name}=…"))
}

fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The Dockerfile's base images: each FROM image (stage names aside) as (reference without the digest
/// part, `RUST_VERSION` filled in; the argument that carries its digest).
fn base_images(dockerfile: &str) -> Vec<(String, String)> {
    let text = dockerfile.replace("${RUST_VERSION}", arg_default(dockerfile, "RUST_VERSION"));
    text.lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split_whitespace().find(|w| !w.starts_with("--")))
        .filter(|image| image.contains('/'))
        .map(|image| {
            let (reference, digest_part) = image
                .split_once("${")
                .unwrap_or_else(|| panic!("{image} is not pinned by a digest argument"));
            let (arg, rest) = digest_part.split_once(":+@${").expect("${ARG:+@${ARG}}");
            assert_eq!(rest, format!("{arg}}}}}"), "{image}: the digest part is ${{ARG:+@${{ARG}}}}");
            (reference.to_owned(), arg.to_owned())
        })
        .collect()
}

/// Reproducible images: the toolchain is a full version not older than the crate's rust-version,
/// every base image goes through a digest argument, a digest is empty or well-formed, and an
/// unpinned build stops unless it is asked for.
#[test]
fn the_dockerfile_pins_the_toolchain_and_every_base_image() {
    let text = dockerfile();
    let version = arg_default(&text, "RUST_VERSION");
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().expect("numeric")).collect();
    assert_eq!(parts.len(), 3, "RUST_VERSION is a full x.y.z version: {version}");
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let msrv: Vec<u32> = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"')
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(parts[..msrv.len()] >= msrv[..], "RUST_VERSION {version} is older than rust-version {msrv:?}");

    let images = base_images(&text);
    assert_eq!(
        images,
        [
            (format!("docker.io/library/rust:{version}-bookworm"), "RUST_DIGEST".to_owned()),
            ("docker.io/library/debian:bookworm-slim".to_owned(), "DEBIAN_DIGEST".to_owned()),
            ("docker.io/library/debian:bookworm-slim".to_owned(), "DEBIAN_DIGEST".to_owned()),
        ]
    );
    for arg in ["RUST_DIGEST", "DEBIAN_DIGEST"] {
        let value = arg_default(&text, arg);
        assert!(value.is_empty() || is_digest(value), "{arg} is empty or sha256:<64 hex>: {value}");
    }
    assert!(
        text.contains(r#"if [ -z "${RUST_DIGEST}" ] || [ -z "${DEBIAN_DIGEST}" ]; then"#)
            && text.contains(r#"if [ "${ALLOW_UNPINNED}" = 1 ]; then"#),
        "an unpinned build stops unless ALLOW_UNPINNED=1"
    );
}

/// `scripts/pin-base-images.sh` with a stub `docker`: it asks for exactly the Dockerfile's base
/// images and writes the digests it got into the two arguments, changing nothing else; a failed or
/// malformed answer leaves the Dockerfile as it was. (The stub's digests are made up and only ever
/// written into a temporary copy.)
#[test]
fn the_pin_script_writes_the_registry_digests_into_the_dockerfile() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let stub = bin.join("docker");
    std::fs::write(
        &stub,
        r#"#!/bin/sh
echo "$*" >>"$STUB_DIR/docker.calls"
case "$STUB_MODE:$4" in
    fail:*) echo "error: unauthorized" >&2; exit 1 ;;
    garbage:*) echo "Name: $4"; echo "Digest: sha256:not-a-digest" ;;
    ok:*rust*) printf 'Name:      %s\nMediaType: application/vnd.oci.image.index.v1+json\nDigest:    sha256:%s\n\nManifests:\n  Name: x@sha256:%s\n' "$4" "$(printf 'a1%.0s' $(seq 32))" "$(printf 'ff%.0s' $(seq 32))" ;;
    ok:*debian*) printf 'Name:      %s\nDigest:    sha256:%s\n' "$4" "$(printf 'b2%.0s' $(seq 32))" ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let original = dockerfile();
    let copy = dir.path().join("Dockerfile");
    let run = |mode: &str| {
        Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/pin-base-images.sh"))
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("STUB_DIR", dir.path())
            .env("STUB_MODE", mode)
            .env("DOCKERFILE", &copy)
            .output()
            .unwrap()
    };

    for mode in ["fail", "garbage"] {
        std::fs::write(&copy, &original).unwrap();
        let out = run(mode);
        assert!(!out.status.success(), "{mode}: the script must fail");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), original, "{mode}: nothing written");
    }

    std::fs::write(&copy, &original).unwrap();
    let _ = std::fs::remove_file(dir.path().join("docker.calls"));
    let out = run("ok");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = arg_default(&original, "RUST_VERSION");
    let calls = std::fs::read_to_string(dir.path().join("docker.calls")).unwrap();
    assert_eq!(
        calls,
        format!(
            "buildx imagetools inspect docker.io/library/rust:{version}-bookworm\n\
             buildx imagetools inspect docker.io/library/debian:bookworm-slim\n"
        ),
        "the script asks for the Dockerfile's own base images"
    );
    let pinned = std::fs::read_to_string(&copy).unwrap();
    let rust = format!("sha256:{}", "a1".repeat(32));
    let debian = format!("sha256:{}", "b2".repeat(32));
    assert_eq!(arg_default(&pinned, "RUST_DIGEST"), rust, "the index digest, not a platform's");
    assert_eq!(arg_default(&pinned, "DEBIAN_DIGEST"), debian);
    let expected = original
        .lines()
        .map(|l| match l {
            l if l.starts_with("ARG RUST_DIGEST=") => format!("ARG RUST_DIGEST={rust}"),
            l if l.starts_with("ARG DEBIAN_DIGEST=") => format!("ARG DEBIAN_DIGEST={debian}"),
            l => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(pinned.trim_end(), expected.trim_end(), "only the two digests change");
}
