//! `dingbridge completions bash|zsh|fish` prints each shell's script, and the scripts the .deb
//! installs (`packaging/completions/`) are exactly what the command prints, so they cannot go
//! stale when a command or flag changes. Regenerate them with
//! `for s in bash zsh fish; do dingbridge completions $s; done` (see the file names below).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge");

fn completions(shell: &str) -> String {
    let out = Command::new(DINGBRIDGE).args(["completions", shell]).env_clear().output().unwrap();
    assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_packaged_completion_scripts_are_what_the_command_prints() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/completions");
    for (shell, file, marker) in [
        ("bash", "dingbridge.bash", "_dingbridge()"),
        ("zsh", "_dingbridge", "#compdef dingbridge"),
        ("fish", "dingbridge.fish", "complete -c dingbridge"),
    ] {
        let printed = completions(shell);
        assert!(printed.contains(marker), "{shell}: {printed}");
        assert!(printed.contains("check-config") && printed.contains("log-format"), "{shell}");
        let packaged = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert!(
            packaged == printed,
            "packaging/completions/{file} is stale: regenerate it with `dingbridge completions {shell}`"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(DINGBRIDGE).args(["completions", "tcsh"]).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
