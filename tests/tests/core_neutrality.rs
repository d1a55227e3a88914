//! The core (`domain`, `application`) stays provider-neutral as providers are added
//! (docs/design.md "Providers side by side", docs/adding-a-provider.md): adding Feishu / Lark
//! changed no use case, and nothing in the core may name it.
//!
//! The core still carries some of DingTalk's own shapes from before providers (its `msg` body
//! rules, its batch limits, comments citing its reference; docs/design.md lists them). The second
//! guard is a ratchet: DingTalk's name and codes may appear only in the files listed in
//! [`DINGTALK_LEFT`], at most as often as listed. Moving one out lowers its number here; a new
//! mention anywhere fails.

use std::path::{Path, PathBuf};

/// Names of providers added after DingTalk, as they could appear in code or docs.
const LATER_PROVIDERS: [&str; 4] = ["feishu", "lark", "飞书", "wecom"];

/// DingTalk's name, and codes and API names that are DingTalk's alone.
const DINGTALK: [&str; 4] = ["dingtalk", "143105", "60121", "asyncsend"];

/// Where the core still names DingTalk, and how many lines at most (relative to the repository).
const DINGTALK_LEFT: [(&str, usize); 3] = [
    // The work-notification body is DingTalk's `msg` object, validated against its limits.
    ("domain/src/message.rs", 25),
    // Reads the outbox errors written before providers were side by side.
    ("application/src/usecases/local/messages.rs", 1),
    ("application/src/usecases/dispatch_tests.rs", 1),
];

fn core_files() -> std::io::Result<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = Vec::new();
    for krate in ["domain", "application"] {
        files(&root.join(krate).join("src"), &mut paths)?;
        paths.push(root.join(krate).join("Cargo.toml"));
    }
    assert!(paths.len() > 20, "the core's sources were not found under {}", root.display());
    Ok(paths)
}

/// `path` relative to the repository root, with `/` separators.
fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rel = path.strip_prefix(&root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[test]
fn the_core_names_dingtalk_only_where_it_did_and_no_more_often() -> std::io::Result<()> {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for path in core_files()? {
        let text = std::fs::read_to_string(&path)?.to_lowercase();
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| DINGTALK.iter().any(|name| line.contains(name)))
            .map(|(n, line)| format!("  {}:{}: {}", relative(&path), n + 1, line.trim()))
            .collect();
        let name = relative(&path);
        let allowed = DINGTALK_LEFT.iter().find(|(file, _)| *file == name).map_or(0, |(_, n)| *n);
        if lines.len() > allowed {
            problems.push(format!(
                "{name}: {} lines name DingTalk or its codes, {allowed} allowed; move them to the DingTalk adapter:\n{}",
                lines.len(),
                lines.join("\n")
            ));
        }
        seen.push((name, lines.len()));
    }
    for (file, allowed) in DINGTALK_LEFT {
        let now = seen.iter().find(|(name, _)| name == file).map_or(0, |(_, n)| *n);
        if now < allowed {
            problems.push(format!("{file}: {now} lines left, {allowed} allowed: lower its number in DINGTALK_LEFT"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn the_core_names_no_provider_added_after_dingtalk() -> std::io::Result<()> {
    let paths = core_files()?;
    let mut hits = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path)?.to_lowercase();
        for (n, line) in text.lines().enumerate() {
            if let Some(name) = LATER_PROVIDERS.iter().find(|name| line.contains(*name)) {
                hits.push(format!("{}:{}: {name}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "the core names a provider; move it to the provider's adapter:\n{}", hits.join("\n"));
    Ok(())
}
