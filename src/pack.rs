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

    /// The YAML files directly under `subdir` (`""` for the top level), sorted by name, as `(path, text)`.
    pub fn yaml_files(&self, subdir: &str) -> std::io::Result<Vec<(String, String)>> {
        let is_yaml = |name: &str| name.ends_with(".yaml") || name.ends_with(".yml");
        let mut files = Vec::new();
        match self {
            RuleSource::Dir(dir) => {
                let dir = if subdir.is_empty() { dir.clone() } else { dir.join(subdir) };
                if !dir.is_dir() {
                    return Ok(files);
                }
                for entry in std::fs::read_dir(&dir)? {
                    let path = entry?.path();
                    if path.is_file() && is_yaml(&path.to_string_lossy()) {
                        let text = std::fs::read_to_string(&path)?;
                        files.push((path.display().to_string(), text));
                    }
                }
            }
            RuleSource::Embedded => {
                let dir = if subdir.is_empty() { Some(&EMBEDDED) } else { EMBEDDED.get_dir(subdir) };
                for file in dir.into_iter().flat_map(|d| d.files()) {
                    let name = file.path().display().to_string();
                    if is_yaml(&name) {
                        let text = file.contents_utf8().unwrap_or_default().to_owned();
                        files.push((format!("(embedded) rules/{name}"), text));
                    }
                }
            }
        }
        files.sort();
        Ok(files)
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
        let decoders = RuleSource::Embedded.yaml_files("decoders").unwrap();
        assert!(decoders.iter().any(|(name, _)| name.ends_with("decoders/lunash.yaml")), "{decoders:?}");
    }

    #[test]
    fn a_directory_lists_its_yaml_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("decoders")).unwrap();
        std::fs::write(dir.path().join("decoders/b.yaml"), "b").unwrap();
        std::fs::write(dir.path().join("decoders/a.yml"), "a").unwrap();
        std::fs::write(dir.path().join("decoders/notes.txt"), "x").unwrap();
        let files = RuleSource::Dir(dir.path().to_owned()).yaml_files("decoders").unwrap();
        let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
        assert!(RuleSource::Dir(dir.path().join("none")).yaml_files("decoders").unwrap().is_empty());
    }
}
