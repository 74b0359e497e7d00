//! What one poll read from an appliance, by role: the scalars, and the rows of the HSM, partition and disk tables
//! (cells grouped by their index). Numbers are kept as read; the table's `values` name them when they are shown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::{PollError, Session};
use super::objects::{Arcs, Object, Objects};
use crate::config::snmp::ResolvedTarget;

/// One row of a table: column role without its table (`serial`, `fips_mode`) → value as text.
pub type Row = BTreeMap<String, String>;

/// Everything one poll read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Scalar role → value as text.
    pub scalars: BTreeMap<String, String>,
    /// The HSMs of the appliance (the HSM table's rows).
    pub hsms: Vec<Row>,
    /// The partitions (the partition table's rows).
    pub partitions: Vec<Row>,
    /// The appliance's disks (UCD's dskTable rows: `path`, `percent`); saved readings from before have none.
    #[serde(default)]
    pub disks: Vec<Row>,
}

/// Polls `target` once for every object of the table.
pub async fn poll(target: &ResolvedTarget, objects: &Objects) -> Result<Reading, PollError> {
    let mut session = Session::open(target).await?;
    let oids: Vec<Arcs> = objects.scalars.iter().map(|o| o.oid.clone()).collect();
    let mut reading = Reading::default();
    for (object, read) in objects.scalars.iter().zip(session.get(&oids).await?) {
        if let Some(value) = read.into_text() {
            reading.scalars.insert(object.role.to_owned(), value);
        }
    }
    reading.hsms = walk_table(&mut session, &objects.columns, "hsm.").await?;
    reading.partitions = walk_table(&mut session, &objects.columns, "partition.").await?;
    reading.disks = walk_table(&mut session, &objects.columns, "disk.").await?;
    Ok(reading)
}

/// The rows of the table whose columns' roles start with `table` (`hsm.`), in index order.
async fn walk_table(session: &mut Session, columns: &[Object], table: &str) -> Result<Vec<Row>, PollError> {
    let mut rows: BTreeMap<Arcs, Row> = BTreeMap::new();
    for column in columns.iter().filter(|c| c.role.starts_with(table)) {
        let name = column.role.trim_start_matches(table).to_owned();
        for (index, read) in session.walk(&column.oid).await? {
            if let Some(value) = read.into_text() {
                rows.entry(index).or_default().insert(name.clone(), value);
            }
        }
    }
    Ok(rows.into_values().collect())
}

impl Reading {
    /// A scalar, as read.
    pub fn scalar(&self, role: &str) -> Option<&str> {
        self.scalars.get(role).map(String::as_str)
    }

    /// A number scalar.
    pub fn number(&self, role: &str) -> Option<i128> {
        self.scalar(role).and_then(|v| v.parse().ok())
    }

    /// The name of a row: its serial, else its label, else `?`.
    pub fn row_name(row: &Row) -> &str {
        row.get("serial").or_else(|| row.get("label")).map_or("?", String::as_str)
    }

    /// The highest storage use of the HSMs and partitions, in percent.
    pub fn highest_storage_pct(&self) -> Option<f64> {
        self.hsms.iter().chain(&self.partitions).filter_map(Reading::storage_pct).reduce(f64::max)
    }

    /// The fullest disk of the appliance, in percent used.
    pub fn highest_disk_pct(&self) -> Option<f64> {
        self.disks.iter().filter_map(|row| row.get("percent")?.parse().ok()).reduce(f64::max)
    }

    /// Storage in use of a row, in percent, when it has both sizes and a total above zero.
    pub fn storage_pct(row: &Row) -> Option<f64> {
        let total: f64 = row.get("storage_total")?.parse().ok()?;
        let used: f64 = row.get("storage_allocated")?.parse().ok()?;
        (total > 0.0).then(|| used * 100.0 / total)
    }
}

/// The name the table gives a role's number (`2` of `ntls.status`: `down`).
fn value_name<'a>(objects: &'a Objects, role: &str, value: &str) -> Option<&'a String> {
    objects.object(role).and_then(|o| value.parse::<i64>().ok().and_then(|n| o.values.get(&n)))
}

/// A value with its name from the table's `values` (`down(2)`), or as read.
pub fn named(objects: &Objects, role: &str, value: &str) -> String {
    match value_name(objects, role, value) {
        Some(name) => format!("{name}({value})"),
        None => value.to_owned(),
    }
}

/// Only the name of a value (`down`), or the value as read.
pub fn name_only(objects: &Objects, role: &str, value: &str) -> String {
    value_name(objects, role, value).cloned().unwrap_or_else(|| value.to_owned())
}
