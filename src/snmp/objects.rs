//! The table of what is read over SNMP and which traps have names: data (`rules/snmp/*.yaml`), not code, because
//! several Luna numbers are inferred and an operator with the vendor's MIB files must be able to correct them without
//! a new build. Every mistake is reported with its file and line.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::diagnostic::{line_of, FileError, FileErrors};
use crate::event::did_you_mean;

/// The scalar roles hsmwatch reads (GET).
pub const SCALAR_ROLES: &[&str] = &[
    "system.uptime",
    "system.name",
    "system.load1",
    "memory.total_kb",
    "memory.available_kb",
    "hsm.operation_requests",
    "hsm.operation_errors",
    "ntls.status",
    "ntls.clients",
    "ntls.links",
    "ntls.failed_connections",
    "ntls.cert_expiry",
];

/// The table columns hsmwatch reads (walked); the part before the dot names the table.
pub const COLUMN_ROLES: &[&str] = &[
    "hsm.serial",
    "hsm.firmware",
    "hsm.label",
    "hsm.model",
    "hsm.auth_method",
    "hsm.fips_mode",
    "hsm.storage_total",
    "hsm.storage_allocated",
    "hsm.partitions",
    "partition.serial",
    "partition.label",
    "partition.storage_total",
    "partition.storage_allocated",
    "disk.path",
    "disk.percent",
];

/// One object of a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectSpec {
    oid: String,
    /// The MIB name, for people (not read).
    #[serde(default, rename = "mib")]
    _mib: Option<String>,
    /// How the number is known, for people (not read).
    #[serde(default, rename = "confirmed")]
    _confirmed: Option<String>,
    #[serde(default)]
    values: BTreeMap<i64, String>,
}

/// One trap of a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrapSpec {
    name: String,
    /// The MIB name, for people (not read).
    #[serde(default, rename = "mib")]
    _mib: Option<String>,
    /// How the number is known, for people (not read).
    #[serde(default, rename = "confirmed")]
    _confirmed: Option<String>,
}

/// A file of the table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsFile {
    #[serde(default)]
    scalars: BTreeMap<String, ObjectSpec>,
    #[serde(default)]
    columns: BTreeMap<String, ObjectSpec>,
    #[serde(default)]
    traps: BTreeMap<String, TrapSpec>,
}

/// An object identifier as its arcs.
pub type Arcs = Vec<u64>;

/// An object read: its role, where it is, and the names of its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The role (`ntls.status`).
    pub role: &'static str,
    /// Its OID (a column's, for a table column).
    pub oid: Arcs,
    /// Names of the numbers of an enumeration.
    pub values: BTreeMap<i64, String>,
}

/// The whole table: scalars, columns and named traps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    /// Read with GET.
    pub scalars: Vec<Object>,
    /// Walked.
    pub columns: Vec<Object>,
    /// Trap OID → short name (`fan`).
    pub traps: BTreeMap<Arcs, String>,
}

/// Parses `1.3.6.1...` (a leading dot allowed).
pub fn parse_oid(text: &str) -> Result<Arcs, String> {
    let arcs: Result<Arcs, _> = text.trim().trim_start_matches('.').split('.').map(str::parse::<u64>).collect();
    match arcs {
        Ok(arcs) if arcs.len() >= 2 => Ok(arcs),
        _ => Err(format!("`{text}` is not an OID (numbers separated by dots, as 1.3.6.1.4.1.12383.3.1.2.1.0)")),
    }
}

/// An OID as dotted text.
pub fn oid_text(arcs: &[u64]) -> String {
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

fn known_role(role: &str, known: &'static [&'static str]) -> Option<&'static str> {
    known.iter().copied().find(|k| *k == role)
}

/// Compiles `(file name, text)` pairs; a later file's entry replaces an earlier one's.
pub fn compile(files: &[(String, String)]) -> Result<Objects, FileErrors> {
    let mut errors = Vec::new();
    let mut scalars: BTreeMap<&'static str, Object> = BTreeMap::new();
    let mut columns: BTreeMap<&'static str, Object> = BTreeMap::new();
    let mut traps = BTreeMap::new();
    for (name, text) in files {
        let error =
            |near: &str, message: String| FileError { file: name.clone(), line: line_of(text, near, 1), message };
        let parsed: ObjectsFile = match serde_yaml_ng::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(FileError {
                    file: name.clone(),
                    line: e.location().map(|l| l.line()),
                    message: e.to_string(),
                });
                continue;
            }
        };
        for (section, specs, known, into) in [
            ("scalars", &parsed.scalars, SCALAR_ROLES, &mut scalars),
            ("columns", &parsed.columns, COLUMN_ROLES, &mut columns),
        ] {
            for (role, spec) in specs {
                let Some(role) = known_role(role, known) else {
                    let message =
                        format!("{section}: `{role}` is not a role hsmwatch reads{}", did_you_mean(role, known));
                    errors.push(error(role, message));
                    continue;
                };
                match parse_oid(&spec.oid) {
                    Ok(oid) => {
                        into.insert(role, Object { role, oid, values: spec.values.clone() });
                    }
                    Err(message) => errors.push(error(&spec.oid, format!("{section}.{role}: {message}"))),
                }
            }
        }
        for (oid, spec) in &parsed.traps {
            match parse_oid(oid) {
                Ok(arcs) if !spec.name.trim().is_empty() => {
                    traps.insert(arcs, spec.name.clone());
                }
                Ok(_) => errors.push(error(oid, format!("traps: `{oid}` needs a name"))),
                Err(message) => errors.push(error(oid, format!("traps: {message}"))),
            }
        }
    }
    if !errors.is_empty() {
        return Err(FileErrors(errors));
    }
    Ok(Objects { scalars: scalars.into_values().collect(), columns: columns.into_values().collect(), traps })
}

impl Objects {
    /// The object of a role, if the table has it.
    pub fn object(&self, role: &str) -> Option<&Object> {
        self.scalars.iter().chain(&self.columns).find(|o| o.role == role)
    }

    /// The short name of a trap OID (`fan`), when the table knows it.
    pub fn trap_name(&self, oid: &[u64]) -> Option<&str> {
        self.traps.get(oid).map(String::as_str)
    }
}

/// The table of a pack: its `snmp/` files, else the shipped ones.
pub fn load(source: &crate::pack::RuleSource) -> Result<Objects, FileErrors> {
    let read_error = |error: std::io::Error| {
        FileErrors(vec![FileError { file: source.describe(), line: None, message: format!("snmp/: {error}") }])
    };
    let mut files = source.yaml_files("snmp").map_err(read_error)?;
    if files.is_empty() {
        files = crate::pack::RuleSource::Embedded.yaml_files("snmp").map_err(read_error)?;
    }
    compile(&files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_compiles_and_names_every_role() {
        let objects = load(&crate::pack::RuleSource::Embedded).unwrap();
        for role in SCALAR_ROLES.iter().chain(COLUMN_ROLES) {
            assert!(objects.object(role).is_some(), "{role} is in the shipped table");
        }
        assert_eq!(objects.object("ntls.status").unwrap().values.get(&2).map(String::as_str), Some("down"));
        assert_eq!(objects.trap_name(&parse_oid("1.3.6.1.4.1.23629.1.5.2.2.2").unwrap()), Some("fan"));
    }

    #[test]
    fn mistakes_are_named_with_file_and_line() {
        let text = "scalars:\n  ntls.status: {oid: 1.3.6.1.4.1.12383.3.1.2.1.0}\n  ntls.stats: {oid: 1.3.6.1}\ncolumns:\n  hsm.serial: {oid: 1.3.six}\ntraps:\n  1.3.6.1.6.3.1.1.5.1: {name: ''}\n";
        let errors = compile(&[("luna.yaml".into(), text.into())]).unwrap_err().to_string();
        assert!(
            errors.contains(
                "luna.yaml:3: scalars: `ntls.stats` is not a role hsmwatch reads (did you mean `ntls.status`?)"
            ),
            "{errors}"
        );
        assert!(errors.contains("luna.yaml:5: columns.hsm.serial: `1.3.six` is not an OID"), "{errors}");
        assert!(errors.contains("luna.yaml:7: traps: `1.3.6.1.6.3.1.1.5.1` needs a name"), "{errors}");
        let unknown_key = compile(&[("x.yaml".into(), "scalars:\n  ntls.status: {oid: 1.3.6, walk: true}\n".into())]);
        assert!(unknown_key.unwrap_err().to_string().starts_with("x.yaml:2"), "serde's own errors keep their line");
    }

    #[test]
    fn a_later_file_corrects_an_earlier_one() {
        let shipped = ("a.yaml".to_owned(), "scalars:\n  ntls.status: {oid: 1.3.6.1.4.1.12383.3.1.2.1.0}\n".to_owned());
        let fix = ("b.yaml".to_owned(), "scalars:\n  ntls.status: {oid: .1.3.6.1.4.1.12383.3.1.2.9.0}\n".to_owned());
        let objects = compile(&[shipped, fix]).unwrap();
        assert_eq!(oid_text(&objects.object("ntls.status").unwrap().oid), "1.3.6.1.4.1.12383.3.1.2.9.0");
    }
}
