//! `hsmwatch rules check [DIR]` and `hsmwatch rules test [DIR]`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::UsageError;
use crate::alert::Alerter;
use crate::event::did_you_mean;
use crate::rules::engine::Engine;
use crate::store::{open_reader, query};

use crate::pack::DecodersFrom;
use crate::rule_tests as testing;
use crate::rules::load;

/// Rule subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files and the decoders beside them: every mistake with file, line and a "did you mean"; exit 2
    /// when there is one. Says which rules and decoders it read.
    Check {
        /// Rules directory [default: ./rules when it exists, else the built-in pack].
        dir: Option<PathBuf>,
        /// `builtin`: check the rules against the decoders built into hsmwatch, not the directory's decoders/.
        #[arg(long, value_enum, value_name = "FROM")]
        decoders: Option<DecodersFrom>,
    },
    /// Run every rule's inline tests on a virtual clock; exit 1 when one fails. Says which decoders decode the
    /// tests' `wire` lines.
    Test {
        /// Rules directory (its decoders/ decode `wire` events) [default: ./rules, else the built-in pack].
        dir: Option<PathBuf>,
        /// `builtin`: decode `wire` lines with the decoders built into hsmwatch.
        #[arg(long, value_enum, value_name = "FROM")]
        decoders: Option<DecodersFrom>,
    },
    /// Replay stored events through the rules and print what would have fired; nothing is sent or stored.
    Backtest(BacktestArgs),
}

/// Options of `hsmwatch rules backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Replay events from this time on (30m, 7d, or a UTC time).
    #[arg(long, value_parser = super::query::parse_time)]
    pub since: DateTime<Utc>,
    /// Up to this time [default: now].
    #[arg(long, value_parser = super::query::parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Only this rule.
    #[arg(long, value_name = "ID")]
    pub rule: Option<String>,
    /// Rules directory [default: rules.dir of --config, ./rules, else the built-in pack].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Database file [default: storage.path of --config, else hsmwatch.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read the database path and rules directory from this configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A failed rule test run (the exit code is 1).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} rule tests failed")]
pub struct TestsFailed {
    /// Failed tests.
    pub failed: usize,
    /// All tests.
    pub total: usize,
}

/// Runs a rule subcommand.
pub async fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Backtest(args) => backtest(args).await,
        RulesCommand::Check { dir, decoders } => {
            let pack = super::pack_of(&Default::default(), dir.as_deref(), decoders)?;
            let (loaded, decoders) = crate::app::load_pack(&pack)?;
            for warning in &loaded.warnings {
                let _ = writeln!(std::io::stderr(), "warning: {warning}");
            }
            let tests: usize = loaded.rules.iter().map(|r| r.tests.len()).sum();
            let (files, _, patterns) = decoders.counts();
            writeln!(
                std::io::stdout(),
                "{}: {} rules, {} lists, {tests} tests; {files} decoder files, {patterns} patterns: ok",
                pack.describe(),
                loaded.rules.len(),
                loaded.lists.len()
            )?;
            Ok(())
        }
        RulesCommand::Test { dir, decoders } => {
            let pack = super::pack_of(&Default::default(), dir.as_deref(), decoders)?;
            let (loaded, decoders) = crate::app::load_pack(&pack)?;
            writeln!(std::io::stdout(), "{}", pack.describe())?;
            let outcomes = testing::run_all(&loaded.rules, &decoders);
            let failed = outcomes.iter().filter(|o| !o.passed()).count();
            for outcome in &outcomes {
                if outcome.passed() {
                    writeln!(std::io::stdout(), "ok    {} / {}", outcome.rule, outcome.test)?;
                    continue;
                }
                writeln!(std::io::stdout(), "FAIL  {} / {}", outcome.rule, outcome.test)?;
                for problem in &outcome.problems {
                    writeln!(std::io::stdout(), "      {problem}")?;
                }
                writeln!(std::io::stdout(), "      expected:")?;
                for line in &outcome.expected {
                    writeln!(std::io::stdout(), "        - {line}")?;
                }
                writeln!(std::io::stdout(), "      actual:")?;
                for line in &outcome.actual {
                    writeln!(std::io::stdout(), "        - {line}")?;
                }
            }
            writeln!(std::io::stdout(), "{} passed, {failed} failed", outcomes.len() - failed)?;
            if failed > 0 {
                return Err(TestsFailed { failed, total: outcomes.len() }.into());
            }
            Ok(())
        }
    }
}

/// Replays `[since, until)` in the order events were stored, with the engine's clock following their time of receipt,
/// then runs the timers up to `until`.
async fn backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let (config, db) = super::config_and_database(args.config.as_deref(), args.db.as_deref())?;
    let pack = super::pack_of(&config.rules, args.rules.as_deref(), None)?;
    let source = pack.rules;
    let loaded = load::load(&source)?;
    let rules: Vec<Arc<crate::rules::load::Rule>> = match &args.rule {
        None => loaded.rules.clone(),
        Some(id) => {
            let chosen: Vec<_> = loaded.rules.iter().filter(|r| &r.id == id).cloned().collect();
            if chosen.is_empty() {
                let ids: Vec<&str> = loaded.rules.iter().map(|r| r.id.as_str()).collect();
                let hint = did_you_mean(id, &ids);
                return Err(UsageError(format!("no rule `{id}` in {}{hint}", source.describe())).into());
            }
            chosen
        }
    };
    let until = args.until.unwrap_or_else(Utc::now);
    let reader = open_reader(&db).await?;
    let mut engine = Engine::new(&rules, args.since);
    let mut alerter = Alerter::new(engine.rules());
    let (mut after, mut replayed, mut fired, mut notified) = (0i64, 0u64, 0u64, 0u64);
    let mut show = |alert: crate::alert::Alert| -> std::io::Result<()> {
        fired += 1;
        notified += u64::from(alert.notify);
        let held = if alert.notify { "" } else { "  (held back by throttle)" };
        writeln!(
            std::io::stdout(),
            "{}  {:<8} {:<9} {:<32} {}{held}",
            alert.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            alert.severity,
            alert.status.as_str(),
            alert.rule_id,
            crate::telemetry::escape_controls(&alert.title)
        )
    };
    loop {
        let page = query::events_between(&reader, args.since, until, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for stored in &page {
            replayed += 1;
            for firing in engine
                .advance(stored.event.created.at)
                .iter()
                .chain(engine.process(&stored.event, Some(stored.id)).iter())
            {
                show(alerter.alert(firing))?;
            }
        }
    }
    for firing in engine.advance(until) {
        show(alerter.alert(&firing))?;
    }
    writeln!(
        std::io::stdout(),
        "replayed {replayed} events through {} rules: {fired} alerts, {notified} notified, nothing sent",
        rules.len()
    )?;
    Ok(())
}
