//! Where rules and decoders come from: a directory on disk, or the pack shipped inside the binary.
//!
//! The shipped `rules/` directory is embedded at build time, so `hsmwatch serve` works from any directory; a rules
//! directory named in the config (or `./rules`, when it exists) replaces it.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

/// The shipped pack, as it was in `rules/` at build time.
pub static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/rules");

/// The directory looked for when the config names none.
pub const DEFAULT_DIR: &str = "rules";

/// The chosen source of rules and decoders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// Files under this directory.
    Dir(PathBuf),
    /// The pack embedded in the binary.
    Embedded,
}

impl RuleSource {
    /// The configured directory, else `./rules` when it exists, else the embedded pack.
    pub fn resolve(configured: Option<&Path>) -> RuleSource {
        match configured {
            Some(dir) => RuleSource::Dir(dir.to_owned()),
            None if Path::new(DEFAULT_DIR).is_dir() => RuleSource::Dir(PathBuf::from(DEFAULT_DIR)),
            None => RuleSource::Embedded,
        }
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            RuleSource::Dir(dir) => format!("directory {}", dir.display()),
            RuleSource::Embedded => "the pack embedded in the binary".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_directory_wins() {
        assert_eq!(
            RuleSource::resolve(Some(Path::new("/etc/hsmwatch/rules"))),
            RuleSource::Dir("/etc/hsmwatch/rules".into())
        );
    }

    #[test]
    fn the_embedded_pack_holds_the_shipped_files() {
        assert!(EMBEDDED.get_file("README.md").is_some());
    }
}
