//! What the demo prints besides the tour: paths as the user would type them, shell
//! quoting, and "Try it yourself" with the Web Portal's login.

use std::path::{Path, PathBuf};

use gerbang_core::{Config, UserStatus};

use super::http::Call;
use super::json::body;
use super::tour::{Samples, Tour};
use super::{DEMO_READER_KEY, PASSWORD};

/// A path as the user would type it: relative to the working directory when inside it.
pub(super) fn shown(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).ok().or_else(|| {
        // A file not yet written: canonicalize its directory.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
        Some(std::fs::canonicalize(parent).ok()?.join(path.file_name()?))
    });
    let cwd = std::env::current_dir().ok();
    match (absolute, cwd) {
        (Some(abs), Some(cwd)) => match abs.strip_prefix(&cwd) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => abs.display().to_string(),
        },
        (Some(abs), None) => abs.display().to_string(),
        _ => lexical(path).display().to_string(),
    }
}

/// `a/b/../c` as `a/c`, for paths that do not exist yet.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Quotes for a POSIX shell.
pub(super) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// "Try it yourself": ready-to-paste commands with real sample NIKs.
pub(super) fn try_it(
    tour: &Tour,
    config: &Config,
    samples: &Samples,
    gateway_log: &Path,
    sim_log: &Path,
) {
    let api = &tour.api;
    let nik = samples
        .alive
        .last()
        .map_or(samples.verify.nik.as_str(), String::as_str);
    let commands = [
        (
            "An allowed CALL_NIK (rsud_cth_01 from 127.0.0.2):",
            Call::nik([127, 0, 0, 2], "RSUD_CTH", "rsud_cth_01", nik),
        ),
        (
            "Verification by the foreign-owned fintech (fintek_api from 127.0.0.6); change a value to see \"Tidak Sesuai\":",
            Call::new(
                [127, 0, 0, 6],
                "FINTEK",
                "CALL_VERIFY_BY_ELEMEN",
                body(&[
                    ("NIK", &samples.verify.nik),
                    ("USER_ID", "fintek_api"),
                    ("PASSWORD", PASSWORD),
                    ("TRESHOLD", "90"),
                    ("NAMA_LGKP", &samples.verify.name),
                    ("TGL_LHR", &samples.verify.birth_date),
                ]),
            ),
        ),
        (
            "Search by elements, law enforcement only (polda_cth_reskrim from 127.0.0.7):",
            Call::new(
                [127, 0, 0, 7],
                "POLDA_CTH",
                "CALL_BY_ELEMEN",
                body(&[
                    ("USER_ID", "polda_cth_reskrim"),
                    ("PASSWORD", PASSWORD),
                    ("NAMA_LGKP", &samples.search.name),
                    ("TGL_LHR", &samples.search.birth_date),
                ]),
            ),
        ),
        (
            "A refusal: the right credentials from another User ID's address (127.0.0.4):",
            Call::nik([127, 0, 0, 4], "RSUD_CTH", "rsud_cth_01", nik),
        ),
    ];
    println!("\n=== Coba sendiri / Try it yourself ===");
    for (i, (what, call)) in commands.iter().enumerate() {
        println!("\n# {}. {what}", i + 1);
        println!("{}", api.curl(call));
    }
    if let Some(key) = &tour.reader {
        let key_path = config
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(DEMO_READER_KEY);
        let ca = api.ca.as_ref().map_or(String::new(), |(_, path)| {
            format!(" --ca {}", shell_quote(path))
        });
        println!(
            "\n# {}. A card-reader lookup signed with the demo reader's key {} (add --biometric no_match, or repeat with the --timestamp and --nonce it prints to see a replay refused):",
            commands.len() + 1,
            key.sam_id
        );
        println!(
            "./target/debug/gerbang reader lookup --gateway {}://localhost:{}{ca} --source 127.0.0.4 \\\n    --key {} --user bkd_kra_01 --password {PASSWORD} --nik {nik}",
            api.scheme,
            api.port,
            shell_quote(&shown(&key_path))
        );
    }
    println!("\nEvery demo User ID's password is `{PASSWORD}`. User IDs and their IP LAN:");
    match config.load_agreements() {
        Ok((_, set)) => {
            for pks in &set.agreements {
                for user in &pks.users {
                    let ips: Vec<String> = user.ip_lan.iter().map(|n| n.to_string()).collect();
                    let status = if user.status == UserStatus::Nonaktif {
                        " (nonaktif)"
                    } else {
                        ""
                    };
                    println!(
                        "  {:<18} {:<14} {} [{} .. {}]{status}",
                        user.id,
                        ips.join(", "),
                        pks.nama_pengguna,
                        pks.mulai,
                        pks.sampai
                    );
                }
            }
        }
        Err(e) => println!("  (could not list them: {e})"),
    }
    if !samples.others.is_empty() {
        let list: Vec<String> = samples
            .others
            .iter()
            .map(|(kind, nik)| format!("{kind} {nik}"))
            .collect();
        println!("More sample NIKs: {}", list.join(", "));
    }
    println!(
        "More from dwh-sim: curl '{}/__sim/sample?kind=alive&n=5' (kinds: alive, female, deceased, duplicate, inactive)",
        tour.sim.base
    );
    portal_hint(tour, config, nik);
    println!(
        "Gateway log: {}   dwh-sim log: {}",
        shown(gateway_log),
        shown(sim_log)
    );
    if let Some(admin) = &config.admin {
        println!(
            "\nAdmin listener (loopback): http://{0}/metrics for Prometheus (monitoring/), and with the token:",
            admin.address
        );
        println!("  ./target/debug/gerbang quota show --pengguna rsud-kota-contoh");
        println!(
            "  ./target/debug/gerbang sanksi add --jenis nonaktifkan_user --sasaran rsud_cth_01 --alasan 'uji sanksi'"
        );
        println!("  ./target/debug/gerbang sanksi list      # then: gerbang sanksi lift <id>");
        println!(
            "  Editing config/pks/*.toml or config/sanksi.toml applies within a second; a broken edit is refused and logged."
        );
    }
    println!("\nCtrl-C stops everything.");
}

/// The Web Portal user the example PKS files give the local browser (IP LAN 127.0.0.1).
const PORTAL_USER: &str = "bkd_kra_portal";

/// Where to open the Web Portal and how to log in.
fn portal_hint(tour: &Tour, config: &Config, nik: &str) {
    let ip_lan = config.load_agreements().ok().and_then(|(_, set)| {
        set.agreements
            .iter()
            .flat_map(|p| &p.users)
            .find(|u| u.id == PORTAL_USER)
            .map(|u| {
                u.ip_lan
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    });
    println!("\n=== Web Portal (read-only, Permendagri 102/2019 art. 30(2)) ===");
    println!(
        "Open {}://{}/portal/ in a browser on this machine{}.",
        tour.api.scheme,
        tour.api.connect,
        if tour.api.scheme == "https" {
            " (the development certificate is not trusted by the browser: accept it once)"
        } else {
            ""
        }
    );
    match ip_lan {
        Some(ip_lan) => println!(
            "Log in as {PORTAL_USER} with password `{PASSWORD}` (BKD Karanganyar's portal account; its IP LAN {ip_lan} is where a local browser connects from)."
        ),
        None => println!(
            "The example portal account {PORTAL_USER} is not in {}: add a User ID whose IP LAN is 127.0.0.1 to a PKS that lists web_portal.",
            shown(&config.pks_dir)
        ),
    }
    println!(
        "Search NIK {nik}: only the PKS elements are shown, and the remaining quota drops. \"Ekspor CSV\", \"Cetak / unduh PDF\", the bulk search and the address form are refused with a page saying why; a second login of the same User ID is refused while the first session lives."
    );
    println!(
        "Data balikan (docs/balikan.md): then open {}://{}/portal/balikan and upload a CSV file with the lines `NIK,NOP_PBB_P2,NPWPD` and `{nik},331309000100200010,P.2.0001234.33.13`: the preview shows each row's verdict and nothing is sent until \"Kirim\"; a row for a NIK BKD never looked up is refused. The one-record form on the same page does the same.",
        tour.api.scheme, tour.api.connect
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_do_not_exist_yet_are_shown_simplified() {
        assert_eq!(
            lexical(Path::new("/x/config/../certs/./dev/server.pem")),
            Path::new("/x/certs/dev/server.pem")
        );
        assert_eq!(lexical(Path::new("../a/../b")), Path::new("../b"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("certs/dev/ca.pem"), "certs/dev/ca.pem");
        assert_eq!(shell_quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    }
}
