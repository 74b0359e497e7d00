//! Where rules and decoders come from: a directory on disk, or the pack shipped inside the binary.
//!
//! The shipped `rules/` directory is embedded at build time, so `hsmwatch serve` works from any directory; a rules
//! directory named in the config (or `./rules`, when it exists) replaces it, with its own `decoders/` or, when the
//! configuration says so, the built-in decoders. A directory that cannot be what was meant (missing, without rule
//! files, without decoders) is an error, never an empty pack.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::diagnostic::{FileError, FileErrors};

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
    /// The configured directory, else `./rules` when it exists (named by its full path, so that logs say which
    /// folder was picked up), else the embedded pack.
    pub fn resolve(configured: Option<&Path>) -> RuleSource {
        match configured {
            Some(dir) => RuleSource::Dir(dir.to_owned()),
            None if Path::new(DEFAULT_DIR).is_dir() => {
                let cwd = std::env::current_dir().unwrap_or_default();
                RuleSource::Dir(cwd.join(DEFAULT_DIR))
            }
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

/// Where the decoders beside a rules directory come from (`rules.decoders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DecodersFrom {
    /// The rules directory's own `decoders/`.
    #[default]
    Dir,
    /// The decoders built into the binary (own rules, shipped decoders).
    Builtin,
}

/// The sources of rules and of decoders one server or command uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    /// Rule files: the top level of this source.
    pub rules: RuleSource,
    /// Decoder files: the `decoders/` of this source.
    pub decoders: RuleSource,
}

impl Pack {
    /// The configured directory (else `./rules` when it exists, else the embedded pack) and its decoders.
    pub fn resolve(dir: Option<&Path>, decoders: DecodersFrom) -> Pack {
        let rules = RuleSource::resolve(dir);
        let decoders = match decoders {
            DecodersFrom::Builtin => RuleSource::Embedded,
            DecodersFrom::Dir => rules.clone(),
        };
        Pack { rules, decoders }
    }

    /// The embedded pack, rules and decoders.
    pub fn embedded() -> Pack {
        Pack { rules: RuleSource::Embedded, decoders: RuleSource::Embedded }
    }

    /// Checks that a rules directory is what was meant: it exists, holds rule files, and has a `decoders/` with
    /// decoder files unless the built-in decoders were asked for. Each problem names the path and what is missing.
    pub fn check_present(&self) -> Result<(), FileErrors> {
        let RuleSource::Dir(dir) = &self.rules else { return Ok(()) };
        let problem = |path: &Path, message: String| {
            FileErrors(vec![FileError { file: path.display().to_string(), line: None, message }])
        };
        if !dir.is_dir() {
            return Err(problem(dir, "no such rules directory".into()));
        }
        let count = |source: &RuleSource, subdir| source.yaml_files(subdir).map(|files| files.len()).unwrap_or(0);
        if count(&self.rules, "") == 0 {
            return Err(problem(dir, "holds no rule files (*.yaml): is this the rules directory you meant?".into()));
        }
        if self.decoders == self.rules && count(&self.decoders, "decoders") == 0 {
            return Err(problem(
                &dir.join("decoders"),
                "holds no decoder files (*.yaml): copy the shipped decoders there, or set `rules.decoders: builtin` \
                 (serve --decoders builtin) to use the decoders built into hsmwatch beside these rules"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What a log line or a command's report says about where rules and decoders came from.
    pub fn describe(&self) -> String {
        match (&self.rules, &self.decoders) {
            (RuleSource::Embedded, RuleSource::Embedded) => {
                "rules and decoders: the pack embedded in the binary".into()
            }
            (RuleSource::Dir(dir), RuleSource::Dir(_)) => {
                format!("rules: directory {}, decoders: directory {}", dir.display(), dir.join("decoders").display())
            }
            (rules, decoders) => format!("rules: {}, decoders: {}", rules.describe(), decoders.describe()),
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
    fn a_directory_that_cannot_be_meant_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let message = |pack: Pack| pack.check_present().unwrap_err().to_string();
        let missing = dir.path().join("nowhere");
        assert!(message(Pack::resolve(Some(&missing), DecodersFrom::Dir)).contains("nowhere: no such rules directory"));
        assert!(message(Pack::resolve(Some(dir.path()), DecodersFrom::Dir)).contains("holds no rule files"));
        std::fs::write(dir.path().join("mine.yaml"), "id: x").unwrap();
        let error = message(Pack::resolve(Some(dir.path()), DecodersFrom::Dir));
        assert!(
            error.contains("decoders: holds no decoder files") && error.contains("rules.decoders: builtin"),
            "{error}"
        );
        let own_rules_shipped_decoders = Pack::resolve(Some(dir.path()), DecodersFrom::Builtin);
        assert_eq!(own_rules_shipped_decoders.check_present(), Ok(()));
        assert_eq!(own_rules_shipped_decoders.decoders, RuleSource::Embedded);
        std::fs::create_dir(dir.path().join("decoders")).unwrap();
        std::fs::write(dir.path().join("decoders/d.yaml"), "decoders: []").unwrap();
        assert_eq!(Pack::resolve(Some(dir.path()), DecodersFrom::Dir).check_present(), Ok(()));
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
