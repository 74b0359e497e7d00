//! `hsmwatch rules check [DIR]` and `hsmwatch rules test [DIR]`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::decode::Decoders;
use crate::pack::RuleSource;
use crate::rules::{load, testing};

/// Rule subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files: every mistake with file, line and a "did you mean"; exit 2 when there is one.
    Check {
        /// Rules directory [default: ./rules when it exists, else the built-in pack].
        dir: Option<PathBuf>,
    },
    /// Run every rule's inline tests on a virtual clock; exit 1 when one fails.
    Test {
        /// Rules directory (its decoders/ decode `wire` events) [default: ./rules, else the built-in pack].
        dir: Option<PathBuf>,
    },
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
pub fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check { dir } => {
            let source = RuleSource::resolve(dir.as_deref());
            let loaded = load::load(&source)?;
            Decoders::load(&source)?;
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let tests: usize = loaded.rules.iter().map(|r| r.tests.len()).sum();
            println!(
                "{}: {} rules, {} lists, {tests} tests: ok",
                source.describe(),
                loaded.rules.len(),
                loaded.lists.len()
            );
            Ok(())
        }
        RulesCommand::Test { dir } => {
            let source = RuleSource::resolve(dir.as_deref());
            let loaded = load::load(&source)?;
            let decoders = Decoders::load(&source)?;
            let outcomes = testing::run_all(&loaded.rules, &decoders);
            let failed = outcomes.iter().filter(|o| !o.passed()).count();
            for outcome in &outcomes {
                if outcome.passed() {
                    println!("ok    {} / {}", outcome.rule, outcome.test);
                    continue;
                }
                println!("FAIL  {} / {}", outcome.rule, outcome.test);
                for problem in &outcome.problems {
                    println!("      {problem}");
                }
                println!("      expected:");
                for line in &outcome.expected {
                    println!("        - {line}");
                }
                println!("      actual:");
                for line in &outcome.actual {
                    println!("        - {line}");
                }
            }
            println!("{} passed, {failed} failed", outcomes.len() - failed);
            if failed > 0 {
                return Err(TestsFailed { failed, total: outcomes.len() }.into());
            }
            Ok(())
        }
    }
}
