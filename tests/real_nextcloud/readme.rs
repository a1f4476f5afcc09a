//! What the README tells a user to run, read from the README itself, so the suite registers Waggle
//! exactly as documented: the environment file of the first command, the manual-install daemon
//! command and the registration JSON.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail, ensure};

/// The documented steps.
#[derive(Debug)]
pub(crate) struct Readme {
    /// `config/local.env`, as `set -a; . config/local.env` would export it.
    pub(crate) env: BTreeMap<String, String>,
    /// The words of the `occ app_api:daemon:register …` line, without `occ`.
    pub(crate) daemon_register: Vec<String>,
    /// The words of the `occ app_api:app:register …` line, without `occ`.
    pub(crate) app_register: Vec<String>,
    /// The registration JSON (`waggle.json`).
    pub(crate) json: serde_json::Value,
}

impl Readme {
    pub(crate) fn load() -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md"))?;
        let first = readme.lines().find(|l| l.contains("cargo run")).context("README: no run command")?;
        ensure!(
            first.contains(". config/local.env"),
            "README's run command no longer reads config/local.env"
        );
        let env = parse_env(&std::fs::read_to_string(root.join("config/local.env"))?);
        let occ_line = |prefix: &str| -> anyhow::Result<Vec<String>> {
            let line = readme
                .lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .with_context(|| format!("README: no `{prefix}` line"))?;
            let mut words = shell_words(line)?;
            ensure!(words.first().map(String::as_str) == Some("occ"), "not an occ line: {line}");
            words.remove(0);
            Ok(words)
        };
        let daemon_register = occ_line("occ app_api:daemon:register")?;
        let app_register = occ_line("occ app_api:app:register")?;
        let start = readme.find("cat > waggle.json <<'EOF'\n").context("README: no waggle.json heredoc")?;
        let rest = &readme[start..];
        let body_start = rest.find('\n').context("heredoc")? + 1;
        let body_end = rest.find("\nEOF\n").context("README: unterminated heredoc")?;
        let json =
            serde_json::from_str(&rest[body_start..body_end]).context("README: waggle.json is not JSON")?;
        Ok(Self { env, daemon_register, app_register, json })
    }
}

/// `KEY=value` lines; comments and blank lines skipped (the file uses no quoting).
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Splits a shell command line into words: double and single quotes, `"$(cat waggle.json)"` kept as
/// one word, a trailing `# comment` dropped. Enough for the README's lines.
fn shell_words(line: &str) -> anyhow::Result<Vec<String>> {
    let mut words = vec![];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => word.push(ch),
                        None => bail!("unterminated quote in `{line}`"),
                    }
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
