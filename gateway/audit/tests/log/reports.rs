//! Semester reports from a synthetic log across two semesters, checked number by number in
//! every format.

use std::collections::BTreeSet;
use std::path::Path;

use gerbang_audit::{Decision, Format, Record, Report, Semester, report};

use crate::support::{TestClock, balikan, hit, key, open, parse};

/// The synthetic log, one request a line: decision time, write time (`-`: the same; it
/// decides the day file), Pengguna (`-`: unidentified), User ID, channel, decision, NIK
/// (synthetic, by letter) or refusal reason, DWH status, daily quota (`-`: none).
const LOG: &[&str] = &[
    // bkd-kra / bkd_kra_01, quota 10: 3 hits on 2 March, 1 hit and 1 refusal on 3 March.
    "2026-03-02T09:00:00+07:00 - bkd-kra bkd_kra_01 web_service allow A 200 10",
    "2026-03-02T09:01:00+07:00 - bkd-kra bkd_kra_01 web_service allow B 200 10",
    "2026-03-02T09:02:00+07:00 - bkd-kra bkd_kra_01 web_service allow A 200 10",
    "2026-03-03T10:00:00+07:00 - bkd-kra bkd_kra_01 web_portal allow C 200 10",
    "2026-03-03T10:05:00+07:00 - bkd-kra bkd_kra_01 web_service deny quota_exhausted - 10",
    // Unidentified callers: refused, counted apart whatever User ID they typed.
    "2026-04-01T08:00:00+07:00 - - ghost web_service deny login_failed - -",
    "2026-04-01T08:00:01+07:00 - - ghost2 web_service deny login_failed - -",
    // disnaker-jt / dsn_jt_01, quota 20: an allowed request that did not reach the DWH (a
    // request, not a hit), 4 hits and a refusal on 10 May.
    "2026-05-10T10:59:00+07:00 - disnaker-jt dsn_jt_01 web_portal allow - - 20",
    "2026-05-10T11:00:00+07:00 - disnaker-jt dsn_jt_01 web_service allow E 200 20",
    "2026-05-10T11:00:01+07:00 - disnaker-jt dsn_jt_01 web_service allow F 200 20",
    "2026-05-10T11:00:02+07:00 - disnaker-jt dsn_jt_01 web_service allow G 200 20",
    "2026-05-10T11:00:03+07:00 - disnaker-jt dsn_jt_01 web_service allow H 200 20",
    "2026-05-10T11:00:04+07:00 - disnaker-jt dsn_jt_01 web_service deny not_permitted - 20",
    // bkd-kra / bkd_kra_02, quota 5: 2 card reader hits decided just before midnight on
    // 30 June and written after it, into the 1 July file.
    "2026-06-30T23:59:59.5+07:00 2026-07-01T00:00:01+07:00 bkd-kra bkd_kra_02 card_reader allow A 200 5",
    "2026-06-30T23:59:59.9+07:00 2026-07-01T00:00:01+07:00 bkd-kra bkd_kra_02 card_reader allow D 200 5",
    // Second semester.
    "2026-07-01T08:00:00+07:00 - bkd-kra bkd_kra_01 web_service allow A 200 10",
    "2026-12-31T23:00:00+07:00 - disnaker-jt dsn_jt_01 web_service allow E 200 20",
    "2026-12-31T23:10:00+07:00 - disnaker-jt dsn_jt_01 web_service allow E 200 20",
    // Next year: in the 2027-01-01 file, read for 2026-2 but not counted.
    "2027-01-01T00:30:00+07:00 - disnaker-jt dsn_jt_01 web_service allow F 200 20",
];

/// A synthetic NIK per letter (tests only).
fn nik(letter: &str) -> String {
    let n = u64::from(letter.as_bytes()[0] - b'A' + 1);
    format!("99010101019{n:05}")
}

fn write_log(dir: &Path) {
    let dash = |field: &str| (field != "-").then(|| field.to_owned());
    let clock = TestClock::at("2026-03-02T09:00:00+07:00");
    let log = open(dir, &clock);
    let key = key();
    for (n, line) in LOG.iter().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            time,
            written,
            pengguna,
            user,
            channel,
            decision,
            what,
            status,
            limit,
        ] = f[..]
        else {
            panic!("bad line {line}");
        };
        clock.set(if written == "-" { time } else { written });
        let allow = decision == "allow";
        let record = Record {
            time: parse(time),
            instance: "gw-test".into(),
            request_id: format!("req-{n}"),
            user_id: Some(user.into()),
            pengguna: dash(pengguna),
            pks: dash(pengguna).map(|p| format!("PKS/{p}")),
            peer_ip: "10.99.0.10".parse().expect("ip"),
            channel: Some(channel.into()),
            action: Some("CallNik".into()),
            decision: if allow {
                Decision::Allow
            } else {
                Decision::Deny
            },
            reason: (!allow).then(|| what.to_owned()),
            policy_ids: vec![],
            policy_hash: String::new(),
            nik_digest: dash(what)
                .filter(|_| allow)
                .map(|l| key.nik_digest(&nik(&l))),
            elements: vec![],
            balikan: None,
            upstream_status: dash(status).map(|s| s.parse().expect("status")),
            latency_us: 10,
            quota_used: None,
            quota_limit: dash(limit).map(|l| l.parse().expect("limit")),
        };
        log.append(&record).expect("append");
    }
    log.close().expect("close");
}

fn render(report: &Report, format: Format) -> String {
    let mut out = Vec::new();
    report.render(format, &mut out).expect("render");
    String::from_utf8(out).expect("utf8")
}

fn semester(s: &str) -> Semester {
    s.parse().expect("semester")
}

#[test]
fn first_semester_figures_are_exact_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let r = report(dir.path(), semester("2026-1"), None).expect("report");
    assert_eq!(
        (r.first_day.to_string(), r.last_day.to_string()),
        ("2026-01-01".into(), "2026-06-30".into())
    );
    assert_eq!(r.lines_skipped, 0);

    // The model.
    let ids: Vec<Option<&str>> = r.pengguna.iter().map(|p| p.pengguna.as_deref()).collect();
    assert_eq!(ids, [Some("bkd-kra"), Some("disnaker-jt"), None]);
    let bkd = &r.pengguna[0];
    let u1 = &bkd.users[0].usage;
    assert_eq!(bkd.users[0].user_id.as_deref(), Some("bkd_kra_01"));
    assert_eq!(
        (u1.requests, u1.hits, u1.active_days, u1.distinct_niks),
        (5, 4, 2, 3)
    );
    assert_eq!(
        u1.peak_day.map(|p| (p.date.to_string(), p.hits)),
        Some(("2026-03-02".into(), 3))
    );
    assert_eq!((u1.quota_limit_sum, u1.quota_utilisation), (20, Some(0.2)));
    assert_eq!(u1.refusals.get("quota_exhausted"), Some(&1));
    assert_eq!(u1.channels["web_service"].hits, 3);
    assert_eq!(u1.channels["web_portal"].share, 0.25);
    let u2 = &bkd.users[1].usage;
    assert_eq!(
        (
            u2.requests,
            u2.hits,
            u2.active_days,
            u2.distinct_niks,
            u2.quota_limit_sum
        ),
        (2, 2, 1, 2, 5)
    );
    assert_eq!(
        u2.peak_day.map(|p| p.date.to_string()),
        Some("2026-06-30".into()),
        "decided on 30 June, written on 1 July"
    );
    assert_eq!(u2.quota_utilisation, Some(0.4));
    let p = &bkd.usage;
    assert_eq!(
        (
            p.requests,
            p.hits,
            p.active_days,
            p.distinct_niks,
            p.quota_limit_sum
        ),
        (7, 6, 3, 4, 25)
    );
    assert_eq!(p.quota_utilisation, Some(0.24));
    assert_eq!(p.channels["card_reader"].hits, 2);
    let dsn = &r.pengguna[1].usage;
    assert_eq!(
        (
            dsn.requests,
            dsn.hits,
            dsn.active_days,
            dsn.distinct_niks,
            dsn.quota_limit_sum
        ),
        (6, 4, 1, 4, 20)
    );
    assert_eq!(dsn.refusals.get("not_permitted"), Some(&1));
    let unknown = &r.pengguna[2];
    assert_eq!(
        unknown.users.len(),
        1,
        "unidentified callers are one row, whatever they typed"
    );
    assert_eq!(
        (
            unknown.usage.requests,
            unknown.usage.hits,
            unknown.usage.quota_utilisation
        ),
        (2, 0, None)
    );
    assert_eq!(unknown.usage.refusals.get("login_failed"), Some(&2));
    let t = &r.totals;
    assert_eq!(
        (
            t.requests,
            t.hits,
            t.active_days,
            t.distinct_niks,
            t.quota_limit_sum,
            t.refusals_total
        ),
        (15, 10, 4, 8, 45, 4)
    );
    assert_eq!(
        t.peak_day.map(|p| (p.date.to_string(), p.hits)),
        Some(("2026-05-10".into(), 4))
    );
    assert_eq!(t.channels["web_service"].share, 0.7);

    // CSV: one row per Pengguna and User ID, fixed columns.
    let csv_text = render(&r, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header.join(","),
        "scope,pengguna,user_id,requests,hits,active_days,peak_day,peak_day_hits,\
         quota_limit_sum,quota_utilisation,distinct_niks,refusals_total,\
         refusals:login_failed,refusals:not_permitted,refusals:quota_exhausted,\
         hits:card_reader,hits:web_portal,hits:web_service,\
         share:card_reader,share:web_portal,share:web_service,\
         pks,balikan_obligated,lookups_last_30_days,balikan_batches,balikan_accepted,\
         balikan_refused,balikan_accepted_last_30_days,distinct_niks_returned,last_balikan,\
         balikan_behind"
    );
    // Every row parses as CSV with the header's width.
    let rows: Vec<String> = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            assert_eq!(r.len(), header.len());
            r.iter().collect::<Vec<_>>().join(",")
        })
        .collect();
    let row = |prefix: &str| -> &str {
        rows.iter()
            .find(|r| r.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix}:\n{csv_text}"))
    };
    assert_eq!(
        row("user_id,bkd-kra,bkd_kra_01,"),
        "user_id,bkd-kra,bkd_kra_01,5,4,2,2026-03-02,3,20,0.2000,3,1,0,0,1,0,1,3,0.0000,0.2500,0.7500,,,,,,,,,,"
    );
    assert_eq!(
        row("pengguna,bkd-kra,,"),
        "pengguna,bkd-kra,,7,6,3,2026-03-02,3,25,0.2400,4,1,0,0,1,2,1,3,0.3333,0.1667,0.5000,,,,,,,,,,"
    );
    assert_eq!(
        row("user_id,(unidentified),,"),
        "user_id,(unidentified),,2,0,0,,,0,,0,2,2,0,0,0,0,0,0.0000,0.0000,0.0000,,,,,,,,,,"
    );
    assert_eq!(
        row("total,"),
        "total,,,15,10,4,2026-05-10,4,45,0.2222,8,4,2,1,1,2,1,7,0.2000,0.1000,0.7000,,,2,0,0,0,0,0,never,"
    );
    assert_eq!(
        row("pks,bkd-kra,,"),
        "pks,bkd-kra,,,6,,,,,,4,,,,,,,,,,,PKS/bkd-kra,not checked,2,0,0,0,0,0,never,not checked"
    );
    assert_eq!(
        rows.len(),
        3 + 4 + 2 + 1,
        "3 Pengguna rows, 4 User ID rows, 2 PKS rows, the total"
    );

    // JSON: the model as is.
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).expect("json");
    assert_eq!(json["semester"], "2026-1");
    assert_eq!(json["totals"]["hits"], 10);
    assert_eq!(json["totals"]["distinct_niks"], 8);
    assert_eq!(json["pengguna"][0]["usage"]["quota_utilisation"], 0.24);
    assert_eq!(json["pengguna"][0]["usage"]["daily_hits"]["2026-06-30"], 2);
    assert_eq!(
        json["pengguna"][0]["users"][0]["usage"]["refusals"]["quota_exhausted"],
        1
    );
    assert_eq!(
        json["pengguna"][0]["users"][1]["usage"]["channels"]["card_reader"]["share"],
        1.0
    );
    assert_eq!(json["pengguna"][2]["pengguna"], serde_json::Value::Null);

    // Markdown: the rows an auditor reads.
    let md = render(&r, Format::Markdown);
    for expected in [
        "# Semester usage report 2026-1 (2026-01-01 to 2026-06-30)",
        "| bkd-kra | 7 | 6 | 3 | 2026-03-02 (3) | 25 | 24.0% | 4 | 1 | card_reader 2 (33.3%), web_portal 1 (16.7%), web_service 3 (50.0%) |",
        "| bkd_kra_01 | 5 | 4 | 2 | 2026-03-02 (3) | 20 | 20.0% | 3 | 1 | web_portal 1 (25.0%), web_service 3 (75.0%) |",
        "| bkd_kra_02 | 2 | 2 | 1 | 2026-06-30 (2) | 5 | 40.0% | 2 | 0 | card_reader 2 (100.0%) |",
        "| dsn_jt_01 | 6 | 4 | 1 | 2026-05-10 (4) | 20 | 20.0% | 4 | 1 | web_service 4 (100.0%) |",
        "| **Total** | 15 | 10 | 4 | 2026-05-10 (4) | 45 | 22.2% | 8 | 4 | card_reader 2 (20.0%), web_portal 1 (10.0%), web_service 7 (70.0%) |",
        "| (unidentified) | 2 | 0 | 0 | – | 0 | – | 0 | 2 |  |",
        "| login_failed | 2 |",
        "| card_reader | 2 | 33.3% |",
    ] {
        assert!(md.contains(expected), "missing `{expected}` in:\n{md}");
    }

    // HTML: the same table cells, charts as inline SVG, nothing to fetch or run.
    let html = render(&r, Format::Html);
    for expected in [
        "<td class=\"n\">22.2%</td>",
        "<td>bkd_kra_01</td><td class=\"n\">5</td><td class=\"n\">4</td><td class=\"n\">2</td><td class=\"n\">2026-03-02 (3)</td>",
        "<title>bkd-kra: 6 hits</title>",
        "<title>disnaker-jt: 4 hits</title>",
        "<title>login_failed: 2 refusals</title>",
        "<title>2026-05-10: 4 hits</title>",
        "<title>2026-06-30: 2 hits</title>",
        "<title>card_reader: 2 hits, 33.3%</title>",
    ] {
        assert!(html.contains(expected), "missing `{expected}` in the html");
    }
    assert!(
        html.matches("<svg").count() >= 2 + 2 * 2,
        "charts per report and per Pengguna"
    );
    assert!(!html.contains("<script"));
    assert!(
        !html.contains("src=") && !html.contains("href="),
        "no external asset"
    );
}

#[test]
fn second_semester_and_the_pengguna_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let r = report(dir.path(), semester("2026-2"), None).expect("report");
    let ids: Vec<Option<&str>> = r.pengguna.iter().map(|p| p.pengguna.as_deref()).collect();
    assert_eq!(
        ids,
        [Some("bkd-kra"), Some("disnaker-jt")],
        "the 30 June hits stay in 2026-1"
    );
    assert_eq!((r.pengguna[0].usage.hits, r.pengguna[1].usage.hits), (1, 2));
    assert_eq!(r.pengguna[1].usage.distinct_niks, 1);
    assert_eq!(
        r.totals.hits, 3,
        "the 2027 record in the 2027-01-01 file is not counted"
    );
    assert_eq!(r.files_read, 3, "1 July, 31 December and 1 January files");

    let r = report(dir.path(), semester("2026-1"), Some("disnaker-jt")).expect("report");
    assert_eq!(r.pengguna.len(), 1);
    assert_eq!(r.pengguna_filter.as_deref(), Some("disnaker-jt"));
    assert_eq!(
        (r.totals.requests, r.totals.hits, r.totals.quota_utilisation),
        (6, 4, Some(0.2))
    );
    let md = render(&r, Format::Markdown);
    assert!(md.contains("Pengguna disnaker-jt only"), "{md}");
    assert!(!md.contains("bkd"), "{md}");
}

#[test]
fn damaged_lines_are_counted_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path());
    let path = dir.path().join("audit-2026-05-10.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("not a record\n{\"seq\":99,\"prev\":\"x\",\"time\":\"2026-05");
    std::fs::write(&path, text).expect("write");
    let r = report(dir.path(), semester("2026-1"), None).expect("report");
    assert_eq!(r.lines_skipped, 2);
    assert_eq!(r.totals.hits, 10);
}

/// The data-balikan fixture: Pengguna, PKS, time, and a lookup (`hit N`: a NIK hit for
/// NIK number N), a batch (`balikan N,M refused R`: accepted NIKs N and M, R records
/// refused; `-` for none accepted), or a refused batch (`denied`). The semester is 2026-1,
/// so the rule's window is 1 to 30 June.
const BALIKAN_LOG: &[&str] = &[
    // rsud-uji: looks up NIKs 1, 2, 1, 3 in June and returns 1 and 2 on 10 June: kept up.
    "rsud-uji PKS/RSUD/1 2026-06-02T09:00:00+07:00 hit 1",
    "rsud-uji PKS/RSUD/1 2026-06-03T09:00:00+07:00 hit 2",
    "rsud-uji PKS/RSUD/1 2026-06-04T09:00:00+07:00 hit 1",
    "rsud-uji PKS/RSUD/1 2026-06-05T09:00:00+07:00 hit 3",
    "rsud-uji PKS/RSUD/1 2026-06-10T09:00:00+07:00 balikan 1,2 refused 1",
    "rsud-uji PKS/RSUD/1 2026-06-11T09:00:00+07:00 denied",
    // bapenda-uji under its first PKS: returned in March, looked up again in June and
    // returned nothing since: behind, last 15 March.
    "bapenda-uji PKS/BAPENDA/1 2026-03-10T09:00:00+07:00 hit 5",
    "bapenda-uji PKS/BAPENDA/1 2026-03-15T09:00:00+07:00 balikan 5 refused 0",
    "bapenda-uji PKS/BAPENDA/1 2026-06-20T09:00:00+07:00 hit 6",
    // ... and under a second PKS that owes no data balikan: not behind.
    "bapenda-uji PKS/BAPENDA/2 2026-06-21T09:00:00+07:00 hit 7",
    // dinsos-uji: a hit on the window's first minute, and a batch whose every record was
    // refused: behind, never returned anything.
    "dinsos-uji PKS/DINSOS/1 2026-06-01T00:00:00+07:00 hit 8",
    "dinsos-uji PKS/DINSOS/1 2026-06-26T09:00:00+07:00 balikan - refused 2",
    // disdik-uji: its last hit a second before the window: not behind.
    "disdik-uji PKS/DISDIK/1 2026-05-31T23:59:59+07:00 hit 9",
];

/// The PKS whose files list `data_balikan` (all but PKS/BAPENDA/2).
fn obligated() -> BTreeSet<String> {
    [
        "PKS/RSUD/1",
        "PKS/BAPENDA/1",
        "PKS/DINSOS/1",
        "PKS/DISDIK/1",
    ]
    .map(str::to_owned)
    .into()
}

fn write_balikan_log(dir: &Path) {
    let clock = TestClock::at("2026-03-01T09:00:00+07:00");
    let log = open(dir, &clock);
    for (n, line) in BALIKAN_LOG.iter().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (pengguna, pks, time) = (f[0], f[1], f[2]);
        clock.set(time);
        let at = parse(time);
        let n = n as u64 + 100;
        let mut record = match f[3..] {
            ["hit", nik] => hit(at, nik.parse().expect("nik")),
            ["balikan", niks, "refused", refused] => {
                let niks: Vec<u64> = niks
                    .split(',')
                    .filter(|n| *n != "-")
                    .map(|n| n.parse().expect("nik"))
                    .collect();
                balikan(at, n, &niks, refused.parse().expect("refused"))
            }
            ["denied"] => Record {
                decision: Decision::Deny,
                reason: Some("not_permitted".into()),
                upstream_status: None,
                balikan: None,
                ..balikan(at, n, &[], 0)
            },
            _ => panic!("bad line {line}"),
        };
        record.request_id = format!("req-{n}");
        record.pengguna = Some(pengguna.into());
        record.user_id = Some(format!("{pengguna}_01"));
        record.pks = Some(pks.into());
        log.append(&record).expect("append");
    }
    log.close().expect("close");
}

/// Lookups against data balikan per Pengguna and PKS, and who is behind, in every format.
/// The batches reached the DWH (`upstream_status` 200), so the figures would be wrong in
/// many places if a batch were counted as a hit.
#[test]
fn balikan_against_lookups_and_who_is_behind_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_balikan_log(dir.path());
    let mut r = report(dir.path(), semester("2026-1"), None).expect("report");

    // Batches are requests, never hits: 9 lookups among 13 records.
    assert_eq!((r.totals.requests, r.totals.hits), (13, 9));
    assert_eq!(r.totals.distinct_niks, 8);
    assert_eq!(
        r.totals.quota_limit_sum,
        9 * 1000,
        "9 active days of the User IDs, batches use no quota"
    );
    let rsud = r
        .pengguna
        .iter()
        .find(|p| p.pengguna.as_deref() == Some("rsud-uji"))
        .expect("rsud-uji");
    assert_eq!((rsud.usage.requests, rsud.usage.hits), (6, 4));
    assert_eq!(rsud.usage.distinct_niks, 3);
    assert_eq!(rsud.usage.refusals.get("not_permitted"), Some(&1));

    // Counted, but not checked without the PKS files.
    let b = &r.balikan;
    assert!(!b.obligations_checked);
    assert_eq!(
        (b.window_first.to_string(), b.window_last.to_string()),
        ("2026-06-01".into(), "2026-06-30".into())
    );
    assert!(b.behind.is_empty());
    assert!(
        b.rows
            .iter()
            .all(|row| row.obligated.is_none() && !row.behind)
    );
    let md = render(&r, Format::Markdown);
    assert!(md.contains("KEWAJIBAN TIDAK DIPERIKSA"), "{md}");
    assert!(
        md.contains("Tidak diperiksa: kewajiban data balikan tidak diketahui"),
        "{md}"
    );
    assert!(render(&r, Format::Csv).contains(",not checked,"));

    r.check_obligations(&obligated());
    let b = &r.balikan;
    assert!(b.obligations_checked);
    let shown: Vec<String> = b
        .rows
        .iter()
        .map(|row| {
            let c = &row.counts;
            format!(
                "{} {} {:?} {}/{} {}/{}/{}/{} {}/{} {:?} {}",
                row.pengguna,
                row.pks.as_deref().unwrap_or("-"),
                row.obligated,
                c.lookups,
                c.lookups_in_window,
                c.batches,
                c.accepted,
                c.refused,
                c.accepted_in_window,
                c.distinct_niks_looked_up,
                c.distinct_niks_returned,
                c.last_balikan.map(|d| d.to_string()),
                if row.behind { "BEHIND" } else { "ok" },
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "bapenda-uji PKS/BAPENDA/1 Some(true) 2/1 1/1/0/0 2/1 Some(\"2026-03-15\") BEHIND",
            "bapenda-uji PKS/BAPENDA/2 Some(false) 1/1 0/0/0/0 1/0 None ok",
            "dinsos-uji PKS/DINSOS/1 Some(true) 1/1 1/0/2/0 1/0 None BEHIND",
            "disdik-uji PKS/DISDIK/1 Some(true) 1/0 0/0/0/0 1/0 None ok",
            "rsud-uji PKS/RSUD/1 Some(true) 4/4 1/2/1/2 3/2 Some(\"2026-06-10\") ok",
        ]
    );
    let t = &b.totals;
    assert_eq!(
        (
            t.lookups,
            t.lookups_in_window,
            t.batches,
            t.accepted,
            t.refused
        ),
        (9, 7, 3, 3, 3)
    );
    assert_eq!(
        (t.distinct_niks_looked_up, t.distinct_niks_returned),
        (8, 3)
    );
    let behind: Vec<(&str, &str, u64, Option<String>)> = b
        .behind
        .iter()
        .map(|x| {
            (
                x.pengguna.as_str(),
                x.pks.as_str(),
                x.lookups_in_window,
                x.last_balikan.map(|d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(
        behind,
        [
            ("bapenda-uji", "PKS/BAPENDA/1", 1, Some("2026-03-15".into())),
            ("dinsos-uji", "PKS/DINSOS/1", 1, None),
        ]
    );

    // JSON: the same model.
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).expect("json");
    let jb = &json["balikan"];
    assert_eq!(jb["obligations_checked"], true);
    assert_eq!(jb["window_first"], "2026-06-01");
    assert_eq!(jb["totals"]["accepted"], 3);
    assert_eq!(jb["rows"][4]["pks"], "PKS/RSUD/1");
    assert_eq!(jb["rows"][4]["lookups"], 4);
    assert_eq!(jb["rows"][4]["distinct_niks_returned"], 2);
    assert_eq!(jb["behind"][0]["last_balikan"], "2026-03-15");
    assert_eq!(jb["behind"][1]["pks"], "PKS/DINSOS/1");
    assert_eq!(jb["behind"][1]["last_balikan"], serde_json::Value::Null);
    assert_eq!(json["totals"]["hits"], 9);

    // CSV: a `pks` row per Pengguna and PKS, after the Pengguna's User IDs.
    let csv_text = render(&r, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            assert_eq!(r.len(), header.len());
            r.iter().map(str::to_owned).collect()
        })
        .collect();
    let cell = |row: &[String], name: &str| -> String {
        let i = header.iter().position(|h| h == name).expect(name);
        row[i].clone()
    };
    let pks = |nomor: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r[0] == "pks" && cell(r, "pks") == nomor)
            .unwrap_or_else(|| panic!("no pks row {nomor}:\n{csv_text}"))
            .clone()
    };
    let bapenda = pks("PKS/BAPENDA/1");
    for (column, expected) in [
        ("pengguna", "bapenda-uji"),
        ("hits", "2"),
        ("distinct_niks", "2"),
        ("balikan_obligated", "yes"),
        ("lookups_last_30_days", "1"),
        ("balikan_accepted", "1"),
        ("balikan_accepted_last_30_days", "0"),
        ("last_balikan", "2026-03-15"),
        ("balikan_behind", "yes"),
    ] {
        assert_eq!(cell(&bapenda, column), expected, "{column}");
    }
    assert_eq!(cell(&pks("PKS/DINSOS/1"), "last_balikan"), "never");
    assert_eq!(cell(&pks("PKS/DINSOS/1"), "balikan_refused"), "2");
    assert_eq!(cell(&pks("PKS/BAPENDA/2"), "balikan_obligated"), "no");
    assert_eq!(cell(&pks("PKS/RSUD/1"), "balikan_behind"), "no");
    assert_eq!(cell(&pks("PKS/RSUD/1"), "distinct_niks_returned"), "2");
    let total = rows.iter().find(|r| r[0] == "total").expect("total");
    assert_eq!(cell(total, "hits"), "9");
    assert_eq!(cell(total, "balikan_accepted"), "3");
    assert_eq!(cell(total, "distinct_niks_returned"), "3");
    let order: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .take(4)
        .collect();
    assert_eq!(
        order,
        [
            ("pengguna", "bapenda-uji"),
            ("user_id", "bapenda-uji"),
            ("pks", "bapenda-uji"),
            ("pks", "bapenda-uji"),
        ]
    );

    // Markdown: the table, the rule and the behind list, in Indonesian.
    let md = render(&r, Format::Markdown);
    for expected in [
        "## Data balikan per Pengguna dan PKS",
        "dalam 30 hari terakhir periode (2026-06-01 s.d. 2026-06-30)",
        "| bapenda-uji | PKS/BAPENDA/1 | ya | 2 | 1 | 0 | 2 | 1 | 1 | 0 | 2026-03-15 | ya |",
        "| bapenda-uji | PKS/BAPENDA/2 | tidak | 1 | 0 | 0 | 1 | 0 | 1 | 0 | belum pernah | tidak |",
        "| rsud-uji | PKS/RSUD/1 | ya | 4 | 2 | 1 | 3 | 2 | 4 | 2 | 2026-06-10 | tidak |",
        "| Total |  |  | 9 | 3 | 3 | 8 | 3 | 7 | 2 | 2026-06-10 |  |",
        "## Pengguna yang tertinggal kewajiban data balikan",
        "| bapenda-uji | PKS/BAPENDA/1 | 1 | 2026-03-15 |",
        "| dinsos-uji | PKS/DINSOS/1 | 1 | belum pernah |",
    ] {
        assert!(md.contains(expected), "missing `{expected}` in:\n{md}");
    }
    assert!(!md.contains("TIDAK DIPERIKSA"), "{md}");

    // HTML: the same, through the template.
    let html = render(&r, Format::Html);
    for expected in [
        "<h2>Data balikan per Pengguna dan PKS</h2>",
        "<th>Hit 30 hari terakhir</th>",
        "<h2>Pengguna yang tertinggal kewajiban data balikan</h2>",
        "<tr><td>bapenda-uji</td><td>PKS/BAPENDA/1</td><td class=\"n\">1</td><td>2026-03-15</td></tr>",
        "<tr><td>dinsos-uji</td><td>PKS/DINSOS/1</td><td class=\"n\">1</td><td>belum pernah</td></tr>",
    ] {
        assert!(html.contains(expected), "missing `{expected}` in:\n{html}");
    }

    // Nobody behind: said so.
    let mut kept_up = report(dir.path(), semester("2026-1"), Some("rsud-uji")).expect("report");
    kept_up.check_obligations(&obligated());
    assert_eq!(kept_up.balikan.rows.len(), 1);
    assert!(kept_up.balikan.behind.is_empty());
    assert!(
        render(&kept_up, Format::Markdown)
            .contains("tertinggal kewajiban data balikan\n\nTidak ada.")
    );
}
