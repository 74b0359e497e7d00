//! `hsmwatch snmp test TARGET`: polls one configured appliance once and prints what it read, or the exact failure
//! (timeout, unknown user or wrong authentication passphrase, wrong privacy passphrase), as `notify test` does for a
//! notifier.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::UsageError;
use crate::config::Config;
use crate::event::did_you_mean;
use crate::snmp::objects::Objects;
use crate::snmp::reading::{named, Reading};
use crate::telemetry::escape_controls;

/// SNMP subcommands.
#[derive(Debug, Subcommand)]
pub enum SnmpCommand {
    /// Poll one target of the configuration once and print what it read (exit 1 with the reason when it fails).
    Test {
        /// The target, by its name or address.
        target: String,
        /// The server configuration (`snmp.targets`, and `rules.dir` for the SNMP table).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs an SNMP subcommand.
pub async fn run(command: SnmpCommand) -> anyhow::Result<()> {
    let SnmpCommand::Test { target, config } = command;
    let config = Config::load(&config)?;
    let Some(found) = config.snmp.find(&target) else {
        let known: Vec<String> = config
            .snmp
            .targets
            .iter()
            .map(|t| t.name.clone().or_else(|| t.address.clone()).unwrap_or_default())
            .collect();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        return Err(
            UsageError(format!("no SNMP target `{target}` in the config{}", did_you_mean(&target, &known))).into()
        );
    };
    let resolved = found.resolve(&config.snmp.defaults)?;
    let objects = crate::snmp::objects::load(&config.rules.pack().decoders)?;
    let started = std::time::Instant::now();
    let reading = crate::snmp::reading::poll(&resolved, &objects)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {error}", resolved.name))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} ({}): answered in {:.0?}", resolved.name, resolved.address, started.elapsed())?;
    print_reading(&mut out, &objects, &reading)?;
    Ok(())
}

/// The reading, one value a line: scalars by role, then each HSM and partition row.
fn print_reading(out: &mut impl Write, objects: &Objects, reading: &Reading) -> std::io::Result<()> {
    // Values come from the network: escaped for the terminal.
    let safe = |text: &str| escape_controls(text).into_owned();
    for (role, value) in &reading.scalars {
        writeln!(out, "  {role:<24} {}", safe(&named(objects, role, value)))?;
    }
    for (table, rows) in [("hsm", &reading.hsms), ("partition", &reading.partitions)] {
        for row in rows {
            writeln!(out, "  {table} {}:", safe(Reading::row_name(row)))?;
            for (column, value) in row {
                writeln!(out, "    {column:<22} {}", safe(&named(objects, &format!("{table}.{column}"), value)))?;
            }
            if let Some(pct) = Reading::storage_pct(row) {
                writeln!(out, "    {:<22} {pct:.1}%", "storage used")?;
            }
        }
    }
    if reading.hsms.is_empty() {
        writeln!(out, "  (no HSM table rows: is this a Luna appliance, and does the user see SAFENET-HSM-MIB?)")?;
    }
    Ok(())
}
