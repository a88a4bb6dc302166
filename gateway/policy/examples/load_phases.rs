//! Where a load and a reload of many PKS files spend their time and memory.
//!
//! `cargo run --release -p gerbang-policy --example load_phases -- 5000 [rounds]` writes
//! 5,000 PKS files of ten User IDs each (as `loadgen gen-config` does) into a temporary
//! directory, then loads them as `gerbang serve` does, times the phases one by one, and
//! reloads them: once unchanged, once with one file edited. Resident memory (VmRSS, VmHWM
//! from /proc/self/status) is printed after each step. A measuring tool, not a test.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use gerbang_core::{Config, PksSet, Vocabulary};
use gerbang_policy::{PolicyEngine, Snapshot, load_snapshot, reload_snapshot};

#[path = "../benches/support/synthetic.rs"]
mod synthetic;
use synthetic::{USERS_PER_PKS, pks_text};

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    format!(
        "VmRSS {} MiB, VmHWM {} MiB",
        field("VmRSS:"),
        field("VmHWM:")
    )
}

/// CPU time of the whole process (all threads), in ms: steadier than wall time on a
/// shared machine. /proc/self/stat fields 14 and 15, in clock ticks (100 per second).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    (ticks(11) + ticks(12)) * 10
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let cpu = cpu_ms();
    let out = f();
    println!(
        "{what:<40} {:>7.1} ms wall {:>6} ms cpu   {}",
        started.elapsed().as_secs_f64() * 1000.0,
        cpu_ms() - cpu,
        memory()
    );
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let pks_dir = dir.path().join("pks");
    std::fs::create_dir(&pks_dir).unwrap();
    for i in 0..n {
        std::fs::write(pks_dir.join(format!("bench-{i:05}.toml")), pks_text(i)).unwrap();
    }
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let config_text = format!(
        "[listen]\naddress = \"127.0.0.1:8443\"\nplaintext = true\n\n[upstream]\naddress = \"127.0.0.1:9080\"\n\n[pks]\ndir = \"pks\"\n\n[policy]\ndir = \"{}\"\n",
        policies.display()
    );
    let config = Config::parse(&dir.path().join("gerbang.toml"), &config_text).unwrap();
    println!("{n} PKS, {} User IDs; {}", n * USERS_PER_PKS, memory());

    if std::env::var_os("LOAD_PHASES_ONCE").is_some() {
        // Load once and stop without freeing anything: under `heaptrack`, what is "leaked"
        // is what a loaded snapshot holds.
        let snap = timed("load", || load_snapshot(&config).unwrap());
        println!("{} users", snap.user_count());
        std::process::exit(0);
    }
    if std::env::var_os("LOAD_PHASES_SERVE").is_some() {
        // A start and one reload, as in a fresh `gerbang serve` (no phases before them).
        let running = timed("load (start)", || load_snapshot(&config).unwrap());
        let edited = pks_dir.join(format!("bench-{:05}.toml", n / 2));
        write(
            &edited,
            &pks_text(n / 2).replacen("status = \"aktif\"\n", "status = \"dibekukan\"\n", 1),
        );
        let next = timed("reload, one file edited", || {
            reload_snapshot(&config, &running).unwrap()
        });
        timed("  drop of the old snapshot", || drop(running));
        println!("  {:?}, {} users", next.reuse(), next.user_count());
        let full = timed("full load beside it", || load_snapshot(&config).unwrap());
        timed("  drop of the full load", || drop(full));
        return;
    }
    println!("-- phases of a full load");
    let vocab = Vocabulary::embedded();
    let set = timed("read + parse + check PKS files", || {
        PksSet::load_dir(&pks_dir, &vocab).unwrap()
    });
    let engine = timed("policies", || {
        Arc::new(PolicyEngine::load(&policies).unwrap())
    });
    let entities = timed("Cedar entities (alone)", || {
        engine.entities(&vocab, &set.agreements).unwrap()
    });
    drop(entities);
    let snap = timed("Snapshot::build (entities + the rest)", || {
        Snapshot::build(vocab, set, engine, Vec::new()).unwrap()
    });
    timed("drop", || drop(snap));

    println!("-- load_snapshot (start) and reload_snapshot (reload) as serve calls them");
    let mut current = timed("load", || load_snapshot(&config).unwrap());
    for round in 0..rounds {
        let next = timed(&format!("full load again ({round})"), || {
            load_snapshot(&config).unwrap()
        });
        let old = std::mem::replace(&mut current, next);
        timed("  drop of the old snapshot", || drop(old));
    }
    for round in 0..rounds {
        let next = timed(&format!("reload, nothing changed ({round})"), || {
            reload_snapshot(&config, &current).unwrap()
        });
        let old = std::mem::replace(&mut current, next);
        timed("  drop of the old snapshot", || drop(old));
    }
    let edited = pks_dir.join(format!("bench-{:05}.toml", n / 2));
    for (round, extra) in ["status = \"dibekukan\"\n", "status = \"aktif\"\n"]
        .iter()
        .enumerate()
    {
        let text = pks_text(n / 2).replacen("status = \"aktif\"\n", extra, 1);
        write(&edited, &text);
        let next = timed(&format!("reload, one file edited ({round})"), || {
            reload_snapshot(&config, &current).unwrap()
        });
        println!("  {:?}", next.reuse());
        let old = std::mem::replace(&mut current, next);
        timed("  drop of the old snapshot", || drop(old));
    }
    println!("{} users in the last snapshot", current.user_count());
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}
