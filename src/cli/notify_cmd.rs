//! `hsmwatch notify test NAME`: a sample alert through the real outbox path to one notifier.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use super::UsageError;
use crate::alert::Alert;
use crate::config::notifiers::Severity;
use crate::config::Config;
use crate::deliver;
use crate::event::did_you_mean;
use crate::store;
use crate::store::alerts::{AlertChange, Change};
use crate::store::outbox;

/// Notifier subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample alert to one notifier through the outbox, and say what the receiver answered.
    Test {
        /// The notifier, as named in the config.
        name: String,
        /// The server configuration (notifiers and database).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs a notifier subcommand.
pub async fn run(command: NotifyCommand) -> anyhow::Result<()> {
    let NotifyCommand::Test { name, config } = command;
    let config = Config::load(&config)?;
    let Some(notifier) = config.notifiers.get(&name) else {
        let known: Vec<&str> = config.notifiers.keys().map(String::as_str).collect();
        return Err(UsageError(format!("no notifier `{name}` in the config{}", did_you_mean(&name, &known))).into());
    };
    let resolved = notifier.resolve(&name)?;
    let resolved =
        crate::config::notifiers::ResolvedNotifier { alert_links: config.http.external_url.clone(), ..resolved };
    let now = Utc::now();
    let mut sample = Alert::notice(
        "hsmwatch.notify_test",
        Severity::Info,
        format!("hsmwatch.notify_test|notifier={name}"),
        format!("hsmwatch test notification for {name}"),
        "This is a test sent by `hsmwatch notify test`. No HSM event caused it.".into(),
        now,
    );
    sample.notify_to = Some(vec![name.clone()]);
    let mut conn = store::open_writer(&config.storage.path).await?;
    let id = store::in_transaction(&mut conn, async |conn| {
        let recorded = crate::store::alerts::insert(conn, &[sample.record()]).await?;
        // This command makes the first attempt itself; a running server retries it later if it fails.
        outbox::enqueue(conn, recorded[0].id, &name, now + chrono::Duration::hours(1)).await?;
        Ok(recorded[0].id)
    })
    .await?;
    let db = store::Db { writer: store::Writer::new(conn), reader: store::open_reader(&config.storage.path).await? };
    let outcome = deliver::attempt_alert(&db, &resolved, id).await.context("delivery")?;
    // A test leaves nothing open behind it, whatever the receiver answered (a failed attempt stays queued).
    let resolution = AlertChange {
        change: Change::Resolve,
        actor: "hsmwatch notify test",
        note: Some("test notification sent"),
        at: Utc::now(),
    };
    crate::store::alerts::change_state(&mut db.writer.tables().await?, id, &resolution, false).await?;
    match outcome {
        deliver::Outcome::Delivered => writeln!(std::io::stdout(), "{name}: delivered (alert {id}, now resolved)")?,
        deliver::Outcome::RetryAt(at, why) => {
            return Err(anyhow::anyhow!("{name}: not delivered: {why}; queued for another attempt at {at}"));
        }
        deliver::Outcome::Dead(why) => return Err(anyhow::anyhow!("{name}: not delivered: {why}")),
    }
    Ok(())
}
