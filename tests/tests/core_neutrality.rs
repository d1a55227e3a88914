//! The core (`domain`, `application`) is provider-neutral (docs/design.md "Providers side by
//! side", docs/adding-a-provider.md): no provider's name, code, limit or API name appears in it.
//! Each provider's shapes, limits and codes live in its adapter (`adapters::outbound::<provider>`,
//! `adapters::inbound::<provider>_events`), reached through the ports.

use std::path::{Path, PathBuf};

/// The providers' names, and codes and API names that belong to one provider alone, as they could
/// appear in code, comments or docs.
const PROVIDER_NAMES: [&str; 8] = ["dingtalk", "143105", "60121", "asyncsend", "feishu", "lark", "飞书", "wecom"];

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
fn the_core_names_no_provider() -> std::io::Result<()> {
    let paths = core_files()?;
    let mut hits = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path)?.to_lowercase();
        for (n, line) in text.lines().enumerate() {
            if let Some(name) = PROVIDER_NAMES.iter().find(|name| line.contains(*name)) {
                hits.push(format!("{}:{}: {name}: {}", relative(path), n + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "the core names a provider; move it to the provider's adapter:\n{}", hits.join("\n"));
    Ok(())
}
