//! Puts the git revision into `hsmwatch --version` (HSMWATCH_GIT_REV), or "unknown" outside a git checkout; and
//! rebuilds when a migration is added, which sqlx's `migrate!` embeds but does not watch for.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=HSMWATCH_GIT_REV={revision}");
    // Rebuilt when HEAD moves or the index changes (a commit, a checkout, a staged edit), or a migration comes or goes.
    for path in [".git/HEAD", ".git/index", "migrations", "migrations_postgres"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let path = format!(".git/{reference}");
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
