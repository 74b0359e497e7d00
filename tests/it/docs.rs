//! The documentation stays true: `docs/events.md` names every field, action, category, outcome, format and dataset
//! hsmwatch produces; `docs/rules.md` names every key the rule loader accepts (read from the loader itself) and its
//! examples load; the README names every notifier key the configuration accepts; and nothing in the repository points
//! at documents outside it.

use std::path::{Path, PathBuf};

use hsmwatch::event::{field, ACTIONS, CATEGORIES, OUTCOMES};
use hsmwatch::rules::schema::{
    AbsenceSpec, DetectSpec, DistinctSpec, ExpectSpec, FullStepSpec, MessageSpec, NewValueSpec, RuleSpec, SequenceSpec,
    TestEventSpec, TestSpec, ThresholdSpec,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The names `text` does not mention as `` `name` ``.
fn undocumented<'a>(text: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names.into_iter().filter(|name| !text.contains(&format!("`{name}`"))).collect()
}

/// The names serde lists after "expected one of" (or "expected") in an error about an unknown key or variant: what
/// the type accepts, read from the code rather than retyped.
fn accepted<T: serde::de::DeserializeOwned + std::fmt::Debug>(probe: &str) -> Vec<String> {
    let error = serde_yaml_ng::from_str::<T>(probe).expect_err("the probe names an unknown key").to_string();
    let list = error.split("expected").nth(1).unwrap_or_else(|| panic!("no list in {error:?}"));
    let names: Vec<String> = list.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    assert!(!names.is_empty(), "{error}");
    names
}

#[test]
fn events_md_names_everything_an_event_can_carry() {
    let doc = read("docs/events.md");
    let mut datasets: Vec<String> = vec![hsmwatch::decode::cloudhsm::DATASET.into(), "syslog".into()];
    for (_, text) in hsmwatch::pack::RuleSource::Dir(root().join("rules")).yaml_files("decoders").unwrap() {
        let lines = text.lines().filter_map(|l| l.trim().strip_prefix("dataset: ")).map(|d| d.trim().to_owned());
        datasets.extend(lines);
    }
    let formats = ["rfc5424", "rfc3164", "luna_file", "cloudhsm_audit", "unparsed"];
    let names = field::ALL
        .iter()
        .chain(ACTIONS)
        .chain(CATEGORIES)
        .chain(OUTCOMES)
        .chain(formats.iter())
        .copied()
        .chain(datasets.iter().map(String::as_str));
    assert_eq!(undocumented(&doc, names), Vec::<&str>::new(), "missing from docs/events.md");
}

#[test]
fn rules_md_names_every_key_the_loader_accepts() {
    let doc = read("docs/rules.md");
    let probe = "zz_not_a_key: 1";
    let mut keys: Vec<String> = Vec::new();
    keys.extend(accepted::<RuleSpec>(probe));
    keys.extend(accepted::<DetectSpec>("type: zz_not_a_type"));
    keys.extend(accepted::<ThresholdSpec>(probe));
    keys.extend(accepted::<DistinctSpec>(probe));
    keys.extend(accepted::<AbsenceSpec>(probe));
    keys.extend(accepted::<NewValueSpec>(probe));
    keys.extend(accepted::<SequenceSpec>(probe));
    keys.extend(accepted::<FullStepSpec>(probe));
    keys.extend(accepted::<MessageSpec>(probe));
    keys.extend(accepted::<TestSpec>(probe));
    keys.extend(accepted::<TestEventSpec>(probe));
    keys.extend(accepted::<ExpectSpec>(probe));
    let names = keys
        .iter()
        .map(String::as_str)
        .chain(hsmwatch::rules::selection::MODIFIERS.iter().copied())
        .chain(hsmwatch::rules::load::TEMPLATE_VARIABLES.iter().copied());
    assert_eq!(undocumented(&doc, names), Vec::<&str>::new(), "missing from docs/rules.md");
}

#[test]
fn the_examples_of_rules_md_load() {
    let doc = read("docs/rules.md");
    let examples: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|block| block.split("\n```").next().unwrap())
        .filter(|block| !block.contains("[...]") && !block.starts_with("tests:"))
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    for example in examples {
        let loaded = hsmwatch::rules::load::compile_files(&[("docs/rules.md".into(), example.into())]);
        assert!(loaded.is_ok(), "{example}\n{}", loaded.err().map(|e| e.to_string()).unwrap_or_default());
    }
    // The tests example runs against the rule it is written for.
    let tests = doc.split("```yaml\ntests:").nth(1).unwrap().split("\n```").next().unwrap();
    let rule = doc.split("```yaml\n").nth(1).unwrap().split("tests: [...]").next().unwrap();
    let loaded = hsmwatch::rules::load::compile_files(&[("r.yaml".into(), format!("{rule}tests:{tests}"))]).unwrap();
    let decoders =
        hsmwatch::decode::Decoders::load(&hsmwatch::pack::RuleSource::Embedded).expect("the built-in decoders");
    for outcome in hsmwatch::rule_tests::run_all(&loaded.rules, &decoders) {
        assert!(outcome.passed(), "{}: {:?}", outcome.test, outcome.problems);
    }
}

#[test]
fn the_readme_names_every_notifier_key() {
    let readme = read("README.md");
    let error =
        hsmwatch::config::Config::parse("notifiers:\n  n:\n    type: webhook\n    zz_not_a_key: 1\n", Path::new("c"))
            .expect_err("an unknown notifier key")
            .to_string();
    let keys: Vec<&str> = error.split("expected one of").nth(1).unwrap().split('`').skip(1).step_by(2).collect();
    assert!(keys.contains(&"content_type"), "{error}");
    assert_eq!(undocumented(&readme, keys), Vec::<&str>::new(), "notifier keys missing from README.md");
}

/// Text files of the repository (what `git ls-files` lists), as `(path, text)`.
fn repository_texts() -> Vec<(String, String)> {
    let output = std::process::Command::new("git").arg("ls-files").current_dir(root()).output().expect("git ls-files");
    let files = String::from_utf8(output.stdout).unwrap();
    files
        .lines()
        .filter(|path| !path.starts_with("tests/data/") && *path != "tests/it/docs.rs")
        .filter_map(|path| Some((path.to_owned(), std::fs::read_to_string(root().join(path)).ok()?)))
        .collect()
}

#[test]
fn nothing_points_outside_the_repository() {
    let outside = ["EVENTS.md", "RULES.md", "DESIGN.md", "../shared", "shared/corpus", "reference/luna"];
    let mut found = Vec::new();
    for (path, text) in repository_texts() {
        for (number, line) in text.lines().enumerate() {
            if let Some(name) = outside.iter().find(|name| line.contains(**name)) {
                found.push(format!("{path}:{}: {name}", number + 1));
            }
        }
    }
    assert!(found.is_empty(), "references to documents outside the repository:\n{}", found.join("\n"));
}

/// The store is the database's one owner: no module outside `src/store/` names a database driver or holds SQL text.
#[test]
fn sql_lives_only_in_the_store() {
    let sql = ["sqlx", "rusqlite", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "PRAGMA "];
    let mut found = Vec::new();
    for (path, text) in repository_texts() {
        if !path.starts_with("src/") || path.starts_with("src/store/") || !path.ends_with(".rs") {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            if let Some(word) = sql.iter().find(|word| line.contains(**word)) {
                found.push(format!("{path}:{}: {word}", number + 1));
            }
        }
    }
    assert!(found.is_empty(), "database access outside src/store/:\n{}", found.join("\n"));
}
