//! The core (`domain`, `application`) stays provider-neutral as providers are added
//! (docs/design.md "Providers side by side", docs/adding-a-provider.md): adding Feishu / Lark
//! changed no use case, and nothing in the core may name it. The core still carries DingTalk's
//! own shapes from before providers (listed in docs/design.md as not yet moved); this guard keeps
//! every later provider out.

use std::path::{Path, PathBuf};

/// Names of providers added after DingTalk, as they could appear in code or docs.
const LATER_PROVIDERS: [&str; 4] = ["feishu", "lark", "飞书", "wecom"];

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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = Vec::new();
    for krate in ["domain", "application"] {
        files(&root.join(krate).join("src"), &mut paths)?;
        paths.push(root.join(krate).join("Cargo.toml"));
    }
    assert!(paths.len() > 20, "the core's sources were not found under {}", root.display());
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
