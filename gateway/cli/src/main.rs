//! `gerbang`: the gateway binary and Ditjen's tools.
#![forbid(unsafe_code)]

mod admin;
mod audit;
mod certs;
mod demo;
mod log;
mod options;
mod policy;
mod reader;
mod readiness;
mod sam;

use std::ffi::OsString;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use options::{ActionArg, ChannelArg, ReportFormat, SanctionArg};

/// mimalloc instead of glibc's malloc: allocation was about 15 % of a bare pingora proxy's
/// CPU (loadtest/RESULTS.md, "Allocator").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gerbang",
    version,
    about = "Policy gateway in front of the DWH Terpusat"
)]
struct Cli {
    /// The configuration file, for every command that reads one (default:
    /// config/gerbang.toml in the working directory if it exists, else /etc/gerbang/gerbang.toml).
    /// `report` and `audit verify` read its [audit]; with --dir, they read it only when it
    /// exists. `report` also reads its PKS files, for who owes data balikan. `policy diff`
    /// takes the PKS files that go with a bare policy directory from it, and asks its admin
    /// listener with --running.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: load and check the configuration, then proxy until stopped (SIGHUP reloads the
    /// PKS files; SIGUSR2 upgrades to the binary now at this path with no dropped request).
    Serve {
        /// Set by a running gateway for the process that takes over from it on SIGUSR2: the
        /// socket it hands its listeners over on.
        #[arg(long, hide = true, value_name = "SOCKET")]
        upgrade_from: Option<PathBuf>,
    },
    /// Check the configuration, the vocabulary and every PKS file; list every problem with file, line and field.
    Check,
    /// Read a password from standard input and print its argon2id hash for a PKS file.
    Passwd,
    /// Ditjen's policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Certificates for development.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// The decision log: check that no record was edited, removed, inserted or reordered.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A semester's use per Pengguna and User ID from the decision log (art. 40), and data
    /// balikan per Pengguna and PKS against their lookups, with who is behind.
    Report {
        /// `YYYY-1` (January–June) or `YYYY-2` (July–December).
        #[arg(long)]
        semester: String,
        #[arg(long)]
        pengguna: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// The log directory (default: [audit] dir of the configuration); repeat it for the
        /// logs of several instances, added up into one report, nothing counted twice.
        #[arg(long)]
        dir: Vec<PathBuf>,
        /// Where archived days are (default: [audit] archive_dir of the configuration); with
        /// several --dir, one per --dir by position ('' for none), or none at all.
        #[arg(long)]
        archive_dir: Vec<OsString>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ask the running gateway to reload its PKS files, policies and sanctions (admin API).
    Reload,
    /// Today's quota use, from the running gateway (admin API).
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Sanctions of art. 45 (reduce quota, deactivate a User ID or SAM, cut a network, freeze or end a PKS), through the running gateway.
    Sanksi {
        #[command(subcommand)]
        command: SanksiCommand,
    },
    /// Card-reader SAM keys.
    Sam {
        #[command(subcommand)]
        command: SamCommand,
    },
    /// A card-reader simulator that signs requests as a reader does.
    Reader {
        #[command(subcommand)]
        command: ReaderCommand,
    },
    /// Run dwh-sim, the SAM sidecar and the gateway with the example configuration, show a tour, and keep serving.
    Demo,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run the policy test cases (data in policies/tests/*.toml) against the PKS files.
    Test {
        #[arg(long, default_value = "policies/tests")]
        cases: PathBuf,
    },
    /// Show what the rules decide for one request, and which rules decided it.
    Explain {
        #[arg(long)]
        user: String,
        /// The business action (any case).
        #[arg(long, value_enum, ignore_case = true)]
        action: ActionArg,
        #[arg(long, value_enum, default_value_t = ChannelArg::WebService)]
        channel: ChannelArg,
        /// The WIB day (default: today).
        #[arg(long)]
        at: Option<chrono::NaiveDate>,
        /// The source address (default: the User ID's first registered one).
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
    },
    /// Prove every invariant (policies/invariants/*.toml) for every request the schema allows, with the cvc5 solver; print a counterexample for each one broken.
    Verify {
        /// The policy directory (default: [policy] dir of the configuration).
        #[arg(long)]
        policies: Option<PathBuf>,
        /// The invariants directory (default: invariants/ in the policy directory).
        #[arg(long)]
        invariants: Option<PathBuf>,
    },
    /// What an edit changes, per Pengguna and User ID (actions, channels, elements, quota, validity), and whether the rules changed meaning.
    Diff {
        /// Compare the running gateway's set with the files on disk (admin API).
        #[arg(long, conflicts_with_all = ["old", "new"])]
        running: bool,
        /// The WIB day to decide for (default: today).
        #[arg(long)]
        at: Option<chrono::NaiveDate>,
        /// Before: a gerbang.toml, a directory holding one, or a policy directory.
        #[arg(required_unless_present = "running")]
        old: Option<PathBuf>,
        /// After: the same kinds.
        #[arg(required_unless_present = "running")]
        new: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the chain and seals, one verdict per log directory. Exit 0: all intact; 1: any
    /// tampered, the first bad record named; 2: none tampered but any not verified (no key,
    /// unreadable directory or file, bad configuration).
    Verify {
        /// The log directory (default: [audit] dir of the configuration); repeat it for the
        /// logs of several instances.
        #[arg(long)]
        dir: Vec<PathBuf>,
        /// Where archived days are (default: [audit] archive_dir of the configuration); with
        /// several --dir, one per --dir by position ('' for none), or none at all. Days
        /// handed to an archive_command are stepped over by their manifest entries.
        #[arg(long)]
        archive_dir: Vec<OsString>,
        /// The key file (default: [audit] key_file of the configuration, also with --dir,
        /// else GERBANG_AUDIT_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Used, limit, remaining and reset time per User ID.
    Show {
        #[arg(long, conflicts_with = "pengguna")]
        user: Option<String>,
        #[arg(long)]
        pengguna: Option<String>,
    },
}

#[derive(Subcommand)]
enum SanksiCommand {
    /// The sanctions in force.
    List,
    /// Apply a sanction; it is written to the sanctions file and in force at once.
    Add {
        #[arg(long, value_enum)]
        jenis: SanctionArg,
        /// The User ID, CIDR, SAM id or PKS number it applies to.
        #[arg(long)]
        sasaran: String,
        /// The reduced daily quota (kurangi_kuota only).
        #[arg(long)]
        kuota_harian: Option<u32>,
        /// Why (e.g. the number of the Director General's letter).
        #[arg(long)]
        alasan: String,
        /// Who applies it.
        #[arg(long, default_value = "")]
        oleh: String,
    },
    /// Lift a sanction by its id.
    Lift { id: String },
}

#[derive(Subcommand)]
enum SamCommand {
    /// Generate a SAM key pair: the private key to a file (mode 0600) for the reader, the
    /// public key printed as the [[sam]] table of a PKS file.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// The SAM's id as personalised by Ditjen (letters, digits, `_`, `.`, `-`).
        #[arg(long)]
        id: String,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ReaderCommand {
    /// Sign and send a CALL_NIK as a card reader; print the answer. Exit 0: data; 3: refused.
    Lookup(reader::LookupArgs),
}

#[derive(Subcommand)]
enum CertsCommand {
    /// A development CA with server and client certificates (keys stay on this machine).
    Dev {
        #[arg(long, default_value = "certs/dev")]
        dir: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Where the Debian package installs the configuration.
const INSTALLED_CONFIG: &str = "/etc/gerbang/gerbang.toml";

/// `--config` when not given: `config/gerbang.toml` in the working directory (a checkout),
/// else the installed [`INSTALLED_CONFIG`], so that commands work on a server without flags.
fn default_config() -> PathBuf {
    gerbang_core::default_config_path(
        Path::new("config/gerbang.toml"),
        Path::new(INSTALLED_CONFIG),
    )
}

impl Command {
    /// Whether the command reads a configuration file; `report` and `audit verify` read
    /// one only when it is given or found (they can work from --dir alone).
    fn reads_config(&self) -> Option<bool> {
        match self {
            Self::Report { .. } | Self::Audit { .. } => Some(false),
            Self::Passwd | Self::Certs { .. } | Self::Sam { .. } | Self::Reader { .. } => None,
            Self::Serve { .. }
            | Self::Check
            | Self::Reload
            | Self::Demo
            | Self::Policy { .. }
            | Self::Quota { .. }
            | Self::Sanksi { .. } => Some(true),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shown = match cli.command.reads_config() {
        Some(true) => Some(cli.config.clone().unwrap_or_else(default_config)),
        Some(false) => cli.config.clone(),
        None => None,
    };
    match run(cli.command, cli.config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // The file may be a default the operator did not choose (see `default_config`).
            if let Some(config) = shown {
                eprintln!("(configuration: {})", config.display());
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, given: Option<PathBuf>) -> Result<ExitCode> {
    let config = given.clone().unwrap_or_else(default_config);
    match command {
        Command::Serve { upgrade_from } => {
            let _log = log::init();
            gerbang_proxy::serve(&config, upgrade_from.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let checked = gerbang_core::check(&config).and_then(|config| {
                gerbang_policy::load_snapshot(&config).map(|snap| (config, snap))
            });
            match checked {
                Ok((config, snap)) => {
                    println!(
                        "ok: {} with {} PKS file(s), {} User ID(s) and {} Cedar rule(s) (set {}) are valid",
                        config.path.display(),
                        snap.agreements().len(),
                        snap.user_count(),
                        snap.engine().policy_count(),
                        snap.engine().hash()
                    );
                    let now = chrono::Utc::now().timestamp();
                    for gap in readiness::gaps(&config, snap.agreements().len(), now) {
                        eprintln!("warning: {gap}");
                    }
                    let proved = policy::check_invariants(&config, &snap)?;
                    // Freeing 5,000 agreements' entities piece by piece takes a seventh of a
                    // check; the process ends now and the memory goes with it.
                    std::mem::forget(snap);
                    Ok(if proved {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                Err(errors) => {
                    for e in errors.iter() {
                        eprintln!("{e}");
                    }
                    eprintln!("{} problem(s) found; nothing was loaded", errors.0.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Policy {
            command: PolicyCommand::Test { cases },
        } => policy::test(&config, &cases),
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    user,
                    action,
                    channel,
                    at,
                    ip,
                },
        } => policy::explain(&config, &user, action.0, channel.into(), at, ip),
        Command::Policy {
            command:
                PolicyCommand::Verify {
                    policies,
                    invariants,
                },
        } => policy::verify(&config, policies, invariants),
        Command::Policy {
            command:
                PolicyCommand::Diff {
                    running,
                    at,
                    old,
                    new,
                },
        } => match (running, old, new) {
            (true, _, _) => policy::diff_running(&config),
            (false, Some(old), Some(new)) => policy::diff(&config, &old, &new, at),
            _ => anyhow::bail!("give OLD and NEW, or --running"),
        },
        Command::Passwd => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "the password is empty");
            let hash = gerbang_policy::hash_password(password)
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
            println!("{hash}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs {
            command: CertsCommand::Dev { dir, force },
        } => {
            certs::dev(&dir, force)?;
            println!(
                "wrote a development CA and server/client certificates to {}",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sam {
            command: SamCommand::Keygen { out, id, force },
        } => {
            sam::keygen(&out, &id, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reader {
            command: ReaderCommand::Lookup(args),
        } => reader::lookup(&args),
        Command::Demo => demo::run(&config),
        Command::Reload => admin::reload(&config),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    dir,
                    archive_dir,
                    key_file,
                },
        } => Ok(audit::verify(given.as_deref(), dir, archive_dir, key_file)),
        Command::Report {
            semester,
            pengguna,
            format,
            dir,
            archive_dir,
            out,
        } => audit::report(
            given.as_deref(),
            dir,
            archive_dir,
            &semester,
            pengguna.as_deref(),
            format.into(),
            out,
        ),
        Command::Quota {
            command: QuotaCommand::Show { user, pengguna },
        } => admin::quota_show(&config, user.as_deref(), pengguna.as_deref()),
        Command::Sanksi { command } => match command {
            SanksiCommand::List => admin::sanctions_list(&config),
            SanksiCommand::Add {
                jenis,
                sasaran,
                kuota_harian,
                alasan,
                oleh,
            } => admin::sanctions_add(&config, jenis.0, &sasaran, kuota_harian, &alasan, &oleh),
            SanksiCommand::Lift { id } => admin::sanctions_lift(&config, &id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gerbang").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--config` is one option for every command, before or after the command's name, as
    /// the systemd unit, the package test, the Makefile and the docs give it.
    #[test]
    fn one_config_option_before_or_after_the_command() {
        for args in [
            &["serve", "--config", "x.toml"][..],
            &["-c", "x.toml", "check"],
            &["policy", "diff", "--running", "-c", "x.toml"],
            &["sanksi", "lift", "--config", "x.toml", "s-1"],
            &["report", "--semester", "2026-2", "-c", "x.toml"],
        ] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.config.as_deref(), Some(Path::new("x.toml")), "{args:?}");
        }
        let cli = parse(&["audit", "verify", "--dir", "log"]).expect("no config");
        assert_eq!(cli.config, None);
        assert_eq!(cli.command.reads_config(), Some(false));
    }

    /// Several instances' logs: `--dir` repeats, and `--archive-dir ''` (no archive for
    /// that directory) is a value, so archives pair with directories by position.
    #[test]
    fn dir_and_archive_dir_repeat_and_an_empty_archive_is_kept() {
        let cli = parse(&[
            "audit",
            "verify",
            "--dir",
            "a",
            "--archive-dir",
            "",
            "--dir",
            "b",
            "--archive-dir",
            "b-arsip",
        ]);
        let Ok(Command::Audit {
            command: AuditCommand::Verify {
                dir, archive_dir, ..
            },
        }) = cli.map(|c| c.command)
        else {
            panic!("audit verify with two --dir does not parse");
        };
        assert_eq!(dir, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(
            archive_dir,
            vec![OsString::new(), OsString::from("b-arsip")]
        );
        let cli = parse(&["report", "--semester", "2026-2", "--dir", "a", "--dir", "b"]);
        assert!(
            matches!(cli.map(|c| c.command), Ok(Command::Report { dir, .. }) if dir.len() == 2)
        );
    }

    #[test]
    fn enumerated_options_are_checked_by_clap() {
        let cli = parse(&["report", "--semester", "2026-2", "--format", "markdown"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Report {
                format: ReportFormat::Md,
                ..
            })
        ));
        let err = parse(&["report", "--semester", "2026-2", "--format", "pdf"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("csv, json, md, html"), "{err}");
        let cli = parse(&["policy", "explain", "--user", "u", "--action", "callnik"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Command::Policy {
                command: PolicyCommand::Explain {
                    action: ActionArg(gerbang_policy::Action::CallNik),
                    channel: ChannelArg::WebService,
                    ..
                }
            })
        ));
        let err = parse(&[
            "sanksi",
            "add",
            "--jenis",
            "x",
            "--sasaran",
            "u",
            "--alasan",
            "a",
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("kurangi_kuota"), "{err}");
    }
}
