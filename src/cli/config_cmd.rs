//! `hsmwatch config example` and `hsmwatch config check FILE`.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{Config, EXAMPLE};

/// Configuration subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented configuration file holding every default.
    Example,
    /// Check a configuration file: exits 2 and names the line at fault when it is invalid.
    Check {
        /// The YAML file.
        file: PathBuf,
    },
}

/// Runs a configuration subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => write!(std::io::stdout(), "{EXAMPLE}")?,
        ConfigCommand::Check { file } => {
            let config = Config::load(&file)?;
            // Each notifier on its own, so that every missing secret is reported, not only the first.
            for (name, notifier) in &config.notifiers {
                match notifier.resolve(name) {
                    Ok(_) => {}
                    Err(error) if error.missing_secret => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "{}: warning: {error} (here; the service may see it)",
                            file.display()
                        );
                    }
                    Err(error) => return Err(anyhow::Error::new(error).context(format!("{}", file.display()))),
                }
            }
            crate::config::notifiers::check_fallbacks(&config.notifiers)
                .map_err(|e| anyhow::Error::new(e).context(format!("{}", file.display())))?;
            // What serve refuses: a token it cannot read or too short, certificate files it cannot use.
            if config.http.address.is_some() {
                match crate::http::token(&config.http) {
                    Ok(_) => {}
                    // As for notifiers: the service may see a variable or file this shell cannot.
                    Err(error @ crate::http::HttpError::Token(_)) => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "{}: warning: {error} (here; the service may see it)",
                            file.display()
                        );
                    }
                    Err(error) => return Err(anyhow::Error::new(error).context(format!("{}", file.display()))),
                }
                crate::http::tls::server_config(&config.http)
                    .map_err(|e| anyhow::Error::new(e).context(format!("{}: http", file.display())))?;
            }
            // SNMP targets and the trap listener, each on its own; a passphrase this shell cannot read is a warning.
            let defaults = &config.snmp.defaults;
            let traps = config.listen.snmp_traps.iter().flat_map(|t| {
                [t.socket_address().map(|_| ()), t.communities().map(|_| ()), t.trap_users().map(|_| ())]
            });
            let mut secrets_unread = false;
            for checked in config.snmp.targets.iter().map(|t| t.resolve(defaults).map(|_| ())).chain(traps) {
                match checked {
                    Ok(()) => {}
                    Err(error) if error.missing_secret => {
                        secrets_unread = true;
                        let _ = writeln!(
                            std::io::stderr(),
                            "{}: warning: {error} (here; the service may see it)",
                            file.display()
                        );
                    }
                    Err(error) => return Err(anyhow::Error::new(error).context(format!("{}", file.display()))),
                }
            }
            // What only all targets together can get wrong (two with one name).
            if !secrets_unread {
                config.snmp.resolve().map_err(|e| anyhow::Error::new(e).context(format!("{}", file.display())))?;
            }
            // The rules and decoders it names, as serve would load them (relative paths from here).
            let pack = config.rules.pack();
            let (rules, decoders) = crate::app::load_pack(&pack)
                .map_err(|e| anyhow::Error::new(e).context(format!("{}: rules", file.display())))?;
            let (_, _, patterns) = decoders.counts();
            if !config.snmp.targets.is_empty() || config.listen.snmp_traps.is_some() {
                crate::snmp::objects::load(&pack.decoders)
                    .map_err(|e| anyhow::Error::new(e).context(format!("{}: rules (snmp/)", file.display())))?;
            }
            writeln!(
                std::io::stdout(),
                "{}: ok ({}: {} rules, {patterns} decoder patterns)",
                file.display(),
                pack.describe(),
                rules.rules.len()
            )?;
        }
    }
    Ok(())
}
