//! A report as CSV (one row per Pengguna and per User ID), JSON, Markdown or a self-contained
//! HTML page whose charts are inline SVG: no script, no external asset, so it can be mailed
//! or archived with the semester's paperwork.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::str::FromStr;

use chrono::{Datelike as _, NaiveDate};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    BALIKAN_WINDOW_DAYS, BalikanCounts, BalikanReport, BalikanRow, PenggunaReport, Report, Usage,
};

/// An output format of `gerbang report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Markdown,
    Html,
}

/// A format name that is not csv, json, md or html.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a report format: use csv, json, md or html")]
pub struct FormatUnknown(pub String);

impl FromStr for Format {
    type Err = FormatUnknown;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "md" | "markdown" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            other => Err(FormatUnknown(other.to_owned())),
        }
    }
}

/// How an unidentified caller's row is labelled.
const UNIDENTIFIED: &str = "(unidentified)";

impl Report {
    /// Writes the report in `format`.
    pub fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Csv => self.write_csv(out),
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, self)?;
                out.write_all(b"\n")
            }
            Format::Markdown => out.write_all(self.markdown().as_bytes()),
            Format::Html => out.write_all(self.html().as_bytes()),
        }
    }

    /// Refusal reasons and channels that occur anywhere in the report, for fixed columns.
    fn columns(&self) -> (Vec<&str>, Vec<&str>) {
        let reasons: BTreeSet<&str> = self.totals.refusals.keys().map(String::as_str).collect();
        let channels: BTreeSet<&str> = self.totals.channels.keys().map(String::as_str).collect();
        (
            reasons.into_iter().collect(),
            channels.into_iter().collect(),
        )
    }

    fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let (reasons, channels) = self.columns();
        let mut csv = csv::Writer::from_writer(out);
        let mut header: Vec<String> = [
            "scope",
            "pengguna",
            "user_id",
            "requests",
            "hits",
            "active_days",
            "peak_day",
            "peak_day_hits",
            "quota_limit_sum",
            "quota_utilisation",
            "distinct_niks",
            "refusals_total",
        ]
        .map(str::to_owned)
        .to_vec();
        header.extend(reasons.iter().map(|r| format!("refusals:{r}")));
        header.extend(channels.iter().map(|c| format!("hits:{c}")));
        header.extend(channels.iter().map(|c| format!("share:{c}")));
        header.extend(BALIKAN_CSV_COLUMNS.map(str::to_owned));
        csv.write_record(&header)?;
        // A `pks` row fills the usage columns it has (hits and distinct NIKs are its
        // lookups), and leaves the rest empty.
        let usage_width = header.len() - 3 - BALIKAN_CSV_COLUMNS.len();
        let balikan = &self.balikan;
        let pks_row = |row: &BalikanRow| -> Vec<String> {
            let mut cells = vec!["pks".to_owned(), row.pengguna.clone(), String::new()];
            let mut usage = vec![String::new(); usage_width];
            usage[1] = row.counts.lookups.to_string();
            usage[7] = row.counts.distinct_niks_looked_up.to_string();
            cells.extend(usage);
            cells.extend(csv_balikan_cells(balikan, Some(row), &row.counts));
            cells
        };
        let row = |scope: &str, pengguna: &str, user: &str, usage: &Usage| -> Vec<String> {
            let mut row = vec![
                scope.to_owned(),
                pengguna.to_owned(),
                user.to_owned(),
                usage.requests.to_string(),
                usage.hits.to_string(),
                usage.active_days.to_string(),
                usage
                    .peak_day
                    .map(|p| p.date.to_string())
                    .unwrap_or_default(),
                usage
                    .peak_day
                    .map(|p| p.hits.to_string())
                    .unwrap_or_default(),
                usage.quota_limit_sum.to_string(),
                usage
                    .quota_utilisation
                    .map(|u| format!("{u:.4}"))
                    .unwrap_or_default(),
                usage.distinct_niks.to_string(),
                usage.refusals_total.to_string(),
            ];
            row.extend(
                reasons
                    .iter()
                    .map(|r| usage.refusals.get(*r).copied().unwrap_or(0).to_string()),
            );
            row.extend(
                channels
                    .iter()
                    .map(|c| usage.channels.get(*c).map_or(0, |s| s.hits).to_string()),
            );
            row.extend(
                channels
                    .iter()
                    .map(|c| format!("{:.4}", usage.channels.get(*c).map_or(0.0, |s| s.share))),
            );
            row
        };
        let blank = || vec![String::new(); BALIKAN_CSV_COLUMNS.len()];
        for p in &self.pengguna {
            let name = pengguna_label(p);
            let mut first = row("pengguna", name, "", &p.usage);
            first.extend(blank());
            csv.write_record(first)?;
            for u in &p.users {
                let mut user = row(
                    "user_id",
                    name,
                    u.user_id.as_deref().unwrap_or(""),
                    &u.usage,
                );
                user.extend(blank());
                csv.write_record(user)?;
            }
            for b in balikan
                .rows
                .iter()
                .filter(|b| p.pengguna.as_deref() == Some(b.pengguna.as_str()))
            {
                csv.write_record(pks_row(b))?;
            }
        }
        let mut total = row("total", "", "", &self.totals);
        total.extend(csv_balikan_cells(balikan, None, &balikan.totals));
        csv.write_record(total)?;
        csv.flush()
    }

    fn title(&self) -> String {
        format!(
            "Semester usage report {} ({} to {})",
            self.semester, self.first_day, self.last_day
        )
    }

    fn source_line(&self) -> String {
        let mut line = format!(
            "From the decision log: {} files, {} lines read, {} not records",
            self.files_read, self.lines_read, self.lines_skipped
        );
        if !self.chains.is_empty() {
            let chains: Vec<String> = self
                .chains
                .iter()
                .map(|c| format!("{} ({})", c.dir.display(), c.instances.join(", ")))
                .collect();
            let _ = write!(
                line,
                "; {} instances' logs added up: {}",
                chains.len(),
                chains.join(", ")
            );
        }
        if let Some(p) = &self.pengguna_filter {
            let _ = write!(line, "; Pengguna {p} only");
        }
        if !self.days_not_read.is_empty() {
            let days: Vec<String> = self.days_not_read.iter().map(|d| d.to_string()).collect();
            let _ = write!(
                line,
                "; NOT READ, and left out of every figure: {} (archived where this report could \
                 not read them)",
                days.join(", ")
            );
        }
        line.push_str(
            ". Days are WIB calendar days. A hit is an allowed lookup that reached the DWH; quota \
             utilisation is hits over the daily quota summed over the days with hits \
             (Permendagri 102/2019 art. 40).",
        );
        line
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# {}\n\n{}\n", self.title(), self.source_line());
        let _ = writeln!(md, "## Summary\n");
        md.push_str(&md_usage_table(
            "Pengguna",
            self.pengguna
                .iter()
                .map(|p| (pengguna_label(p).to_owned(), &p.usage)),
        ));
        md.push_str(&md_usage_row_total(&self.totals));
        for p in &self.pengguna {
            let _ = writeln!(md, "\n## {}\n", md_cell(pengguna_label(p)));
            md.push_str(&md_usage_table(
                "User ID",
                p.users.iter().map(|u| {
                    (
                        u.user_id.clone().unwrap_or_else(|| UNIDENTIFIED.to_owned()),
                        &u.usage,
                    )
                }),
            ));
            md.push_str(&md_breakdown(&p.usage));
        }
        md.push_str(&self.balikan.markdown());
        md
    }

    fn html(&self) -> String {
        let title = self.title();
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    h1 { (title) }
                    p { (self.source_line()) }
                    h2 { "Hits per Pengguna" }
                    (hbar_chart(
                        &self
                            .pengguna
                            .iter()
                            .map(|p| (pengguna_label(p).to_owned(), p.usage.hits))
                            .collect::<Vec<_>>(),
                        "hits",
                    ))
                    @if !self.totals.refusals.is_empty() {
                        h2 { "Refusals by reason" }
                        (hbar_chart(
                            &self
                                .totals
                                .refusals
                                .iter()
                                .map(|(r, &n)| (r.clone(), n))
                                .collect::<Vec<_>>(),
                            "refusals",
                        ))
                    }
                    h2 { "Summary" }
                    (html_usage_table(
                        "Pengguna",
                        self.pengguna
                            .iter()
                            .map(|p| (pengguna_label(p).to_owned(), &p.usage))
                            .chain(std::iter::once(("Total".to_owned(), &self.totals))),
                    ))
                    @for p in &self.pengguna {
                        (self.html_pengguna(p))
                    }
                    (self.balikan.html())
                }
            }
        }
        .into_string()
    }

    /// A Pengguna's section: its days, channels, User IDs and refusals.
    fn html_pengguna(&self, p: &PenggunaReport) -> Markup {
        html! {
            section {
                h2 { (pengguna_label(p)) }
                @if let Some(daily) = p.usage.daily_hits.as_ref().filter(|d| !d.is_empty()) {
                    h3 { "Hits per day" }
                    (daily_chart(self.first_day, self.last_day, daily))
                }
                @if !p.usage.channels.is_empty() {
                    h3 { "Share by channel" }
                    (share_chart(&p.usage))
                }
                h3 { "User IDs" }
                (html_usage_table(
                    "User ID",
                    p.users.iter().map(|u| {
                        (
                            u.user_id.clone().unwrap_or_else(|| UNIDENTIFIED.to_owned()),
                            &u.usage,
                        )
                    }),
                ))
                @if !p.usage.refusals.is_empty() {
                    h3 { "Refusals by reason" }
                    table {
                        tr { th { "Reason" } th { "Refusals" } }
                        @for (reason, n) in &p.usage.refusals {
                            tr { td { (reason) } td class="n" { (n) } }
                        }
                    }
                }
            }
        }
    }
}

/// The CSV columns of data balikan, after the usage columns: filled on `pks` rows and the
/// total, empty on the others.
const BALIKAN_CSV_COLUMNS: [&str; 10] = [
    "pks",
    "balikan_obligated",
    "lookups_last_30_days",
    "balikan_batches",
    "balikan_accepted",
    "balikan_refused",
    "balikan_accepted_last_30_days",
    "distinct_niks_returned",
    "last_balikan",
    "balikan_behind",
];

/// How a report says an obligated PKS never returned data in the semester.
const NEVER: &str = "belum pernah";

/// The data-balikan cells of a CSV row: a PKS's (`row`), or the total's.
fn csv_balikan_cells(
    report: &BalikanReport,
    row: Option<&BalikanRow>,
    counts: &BalikanCounts,
) -> [String; 10] {
    // The total row has no flags of its own.
    let flag = |value: Option<bool>| match (row.is_some(), report.obligations_checked, value) {
        (false, _, _) => "",
        (true, false, _) => "not checked",
        (true, true, Some(true)) => "yes",
        (true, true, Some(false)) => "no",
        (true, true, None) => "",
    };
    [
        row.and_then(|r| r.pks.clone()).unwrap_or_default(),
        flag(row.and_then(|r| r.obligated)).to_owned(),
        counts.lookups_in_window.to_string(),
        counts.batches.to_string(),
        counts.accepted.to_string(),
        counts.refused.to_string(),
        counts.accepted_in_window.to_string(),
        counts.distinct_niks_returned.to_string(),
        counts
            .last_balikan
            .map_or_else(|| "never".to_owned(), |d| d.to_string()),
        flag(row.map(|r| r.behind)).to_owned(),
    ]
}

/// The Indonesian headings of the data-balikan table.
fn balikan_columns() -> [String; 12] {
    [
        "Pengguna".to_owned(),
        "PKS".to_owned(),
        "Wajib data balikan".to_owned(),
        "Hit NIK".to_owned(),
        "Data balikan diterima".to_owned(),
        "Data balikan ditolak".to_owned(),
        "NIK berbeda yang dicari".to_owned(),
        "NIK berbeda yang dikembalikan".to_owned(),
        format!("Hit {BALIKAN_WINDOW_DAYS} hari terakhir"),
        format!("Diterima {BALIKAN_WINDOW_DAYS} hari terakhir"),
        "Data balikan terakhir".to_owned(),
        "Tertinggal".to_owned(),
    ]
}

fn last_balikan(day: Option<NaiveDate>) -> String {
    day.map_or_else(|| NEVER.to_owned(), |d| d.to_string())
}

impl BalikanReport {
    /// The rule, in the report's words, and whether it was applied.
    fn rule(&self) -> String {
        let mut text = format!(
            "Data balikan tidak dihitung sebagai hit. PKS wajib data balikan: PKS yang \
             mencantumkan data_balikan. Tertinggal: PKS wajib yang mencatat hit NIK dalam \
             {BALIKAN_WINDOW_DAYS} hari terakhir periode ({} s.d. {}) tetapi tidak satu pun \
             data balikan yang diterima dalam {BALIKAN_WINDOW_DAYS} hari yang sama. \
             \"{NEVER}\": tidak ada data balikan yang diterima selama semester ini.",
            self.window_first, self.window_last
        );
        if !self.obligations_checked {
            text.push_str(
                " KEWAJIBAN TIDAK DIPERIKSA: laporan ini dibuat tanpa berkas PKS (berikan \
                 --config); hanya jumlahnya yang ditampilkan.",
            );
        }
        text
    }

    /// One row of the table: a PKS's, or the total.
    fn cells(&self, row: Option<&BalikanRow>) -> [String; 12] {
        let counts = row.map_or(&self.totals, |r| &r.counts);
        let flag = |value: Option<bool>| match (self.obligations_checked, value) {
            (true, Some(true)) => "ya",
            (true, Some(false)) => "tidak",
            _ => "–",
        };
        [
            row.map_or_else(|| "Total".to_owned(), |r| r.pengguna.clone()),
            row.and_then(|r| r.pks.clone()).unwrap_or_default(),
            row.map_or("", |r| flag(r.obligated)).to_owned(),
            counts.lookups.to_string(),
            counts.accepted.to_string(),
            counts.refused.to_string(),
            counts.distinct_niks_looked_up.to_string(),
            counts.distinct_niks_returned.to_string(),
            counts.lookups_in_window.to_string(),
            counts.accepted_in_window.to_string(),
            last_balikan(counts.last_balikan),
            row.map_or("", |r| flag(Some(r.behind))).to_owned(),
        ]
    }

    fn behind_line(&self) -> Option<&'static str> {
        if !self.obligations_checked {
            Some("Tidak diperiksa: kewajiban data balikan tidak diketahui tanpa berkas PKS.")
        } else if self.behind.is_empty() {
            Some("Tidak ada.")
        } else {
            None
        }
    }

    fn markdown(&self) -> String {
        let mut md = format!(
            "\n## Data balikan per Pengguna dan PKS\n\n{}\n\n",
            md_cell(&self.rule())
        );
        let columns = balikan_columns();
        let _ = writeln!(md, "| {} |", columns.join(" | "));
        let _ = writeln!(md, "|---|---|---|{}", "---:|".repeat(columns.len() - 3));
        for row in self.rows.iter().map(Some).chain([None]) {
            let cells: Vec<String> = self.cells(row).iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
        md.push_str("\n## Pengguna yang tertinggal kewajiban data balikan\n\n");
        match self.behind_line() {
            Some(line) => {
                let _ = writeln!(md, "{line}");
            }
            None => {
                let _ = writeln!(
                    md,
                    "| Pengguna | PKS | Hit {BALIKAN_WINDOW_DAYS} hari terakhir | Data balikan \
                     terakhir |\n|---|---|---:|---|"
                );
                for b in &self.behind {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} |",
                        md_cell(&b.pengguna),
                        md_cell(&b.pks),
                        b.lookups_in_window,
                        last_balikan(b.last_balikan)
                    );
                }
            }
        }
        md
    }

    fn html(&self) -> Markup {
        html! {
            section {
                h2 { "Data balikan per Pengguna dan PKS" }
                p { (self.rule()) }
                table {
                    tr { @for column in balikan_columns() { th { (column) } } }
                    @for row in self.rows.iter().map(Some).chain([None]) {
                        tr {
                            @for (i, cell) in self.cells(row).into_iter().enumerate() {
                                @if i < 3 { td { (cell) } } @else { td class="n" { (cell) } }
                            }
                        }
                    }
                }
                h2 { "Pengguna yang tertinggal kewajiban data balikan" }
                @if let Some(line) = self.behind_line() {
                    p { (line) }
                } @else {
                    table {
                        tr {
                            th { "Pengguna" }
                            th { "PKS" }
                            th { "Hit " (BALIKAN_WINDOW_DAYS) " hari terakhir" }
                            th { "Data balikan terakhir" }
                        }
                        @for b in &self.behind {
                            tr {
                                td { (b.pengguna) }
                                td { (b.pks) }
                                td class="n" { (b.lookups_in_window) }
                                td { (last_balikan(b.last_balikan)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccc;padding:.25rem .5rem}\
th{background:#f3f3f3;text-align:left}td.n{text-align:right}svg{display:block;margin:.5rem 0}\
section{margin-top:2rem;border-top:2px solid #ddd}";

/// Channel colours: fixed for the three channels, a grey for anything else.
fn channel_colour(channel: &str) -> &'static str {
    match channel {
        "web_service" => "#2b6cb0",
        "web_portal" => "#38a169",
        "card_reader" => "#d69e2e",
        _ => "#718096",
    }
}

fn pengguna_label(p: &PenggunaReport) -> &str {
    p.pengguna.as_deref().unwrap_or(UNIDENTIFIED)
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn peak(usage: &Usage) -> String {
    usage
        .peak_day
        .map_or_else(|| "–".to_owned(), |p| format!("{} ({})", p.date, p.hits))
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

const USAGE_COLUMNS: [&str; 9] = [
    "Requests",
    "Hits",
    "Active days",
    "Peak day (hits)",
    "Quota (sum)",
    "Utilisation",
    "Distinct NIKs",
    "Refusals",
    "Channels (hits)",
];

fn usage_cells(usage: &Usage) -> [String; 9] {
    [
        usage.requests.to_string(),
        usage.hits.to_string(),
        usage.active_days.to_string(),
        peak(usage),
        usage.quota_limit_sum.to_string(),
        percent(usage.quota_utilisation),
        usage.distinct_niks.to_string(),
        usage.refusals_total.to_string(),
        usage
            .channels
            .iter()
            .map(|(c, s)| format!("{c} {} ({})", s.hits, percent(Some(s.share))))
            .collect::<Vec<_>>()
            .join(", "),
    ]
}

fn md_usage_table<'a>(first: &str, rows: impl Iterator<Item = (String, &'a Usage)>) -> String {
    let mut md = format!("| {first} | {} |\n", USAGE_COLUMNS.join(" | "));
    md.push_str(&format!("|---|{}\n", "---:|".repeat(USAGE_COLUMNS.len())));
    for (name, usage) in rows {
        let cells: Vec<String> = usage_cells(usage).iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(md, "| {} | {} |", md_cell(&name), cells.join(" | "));
    }
    md
}

fn md_usage_row_total(usage: &Usage) -> String {
    let cells: Vec<String> = usage_cells(usage).iter().map(|c| md_cell(c)).collect();
    format!("| **Total** | {} |\n", cells.join(" | "))
}

fn md_breakdown(usage: &Usage) -> String {
    let mut md = String::new();
    if !usage.refusals.is_empty() {
        md.push_str("\n| Refusal reason | Refusals |\n|---|---:|\n");
        for (reason, n) in &usage.refusals {
            let _ = writeln!(md, "| {} | {n} |", md_cell(reason));
        }
    }
    if !usage.channels.is_empty() {
        md.push_str("\n| Channel | Hits | Share |\n|---|---:|---:|\n");
        for (channel, s) in &usage.channels {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                md_cell(channel),
                s.hits,
                percent(Some(s.share))
            );
        }
    }
    md
}

fn html_usage_table<'a>(first: &str, rows: impl Iterator<Item = (String, &'a Usage)>) -> Markup {
    html! {
        table {
            tr {
                th { (first) }
                @for column in USAGE_COLUMNS { th { (column) } }
            }
            @for (name, usage) in rows {
                tr {
                    td { (name) }
                    @for cell in usage_cells(usage) { td class="n" { (cell) } }
                }
            }
        }
    }
}

/// Horizontal bars, one per label, scaled to the largest value.
fn hbar_chart(items: &[(String, u64)], unit: &str) -> Markup {
    const LABEL_W: u64 = 220;
    const BAR_W: u64 = 380;
    const ROW_H: u64 = 24;
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let height = ROW_H * items.len() as u64 + 8;
    let width = LABEL_W + BAR_W + 90;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img"
            aria-label={ (unit) " per item" } font-size="12" {
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = 4 + ROW_H * i as u64;
                @let w = (BAR_W * value).div_ceil(max);
                text x=(LABEL_W - 6) y=(y + 15) text-anchor="end" { (label) }
                rect x=(LABEL_W) y=(y + 3) width=(w) height=(ROW_H - 6) fill="#2b6cb0" {
                    title { (label) ": " (value) " " (unit) }
                }
                text x=(LABEL_W + w + 4) y=(y + 15) { (value) }
            }
        }
    }
}

/// One vertical bar per day of the semester, months marked on the axis.
fn daily_chart(
    first: NaiveDate,
    last: NaiveDate,
    daily: &std::collections::BTreeMap<NaiveDate, u64>,
) -> Markup {
    const BAR: i64 = 4;
    const PLOT_H: u64 = 120;
    const LEFT: i64 = 40;
    let days = (last - first).num_days() + 1;
    let width = LEFT + days * BAR + 10;
    let max = daily.values().copied().max().unwrap_or(0).max(1);
    let months =
        std::iter::successors(Some(first), |m| Some(next_month(*m))).take_while(|m| *m <= last);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(PLOT_H + 30) role="img"
            aria-label="hits per day" font-size="11" {
            text x=(LEFT - 4) y="12" text-anchor="end" { (max) }
            line x1=(LEFT) y1=(PLOT_H + 5) x2=(width - 10) y2=(PLOT_H + 5) stroke="#999" {}
            @for (&day, &hits) in daily {
                @let h = (PLOT_H * hits).div_ceil(max);
                rect x=(LEFT + (day - first).num_days() * BAR) y=(PLOT_H + 5 - h) width=(BAR - 1)
                    height=(h) fill="#2b6cb0" {
                    title { (day) ": " (hits) " hits" }
                }
            }
            @for month in months {
                @let x = LEFT + (month - first).num_days() * BAR;
                line x1=(x) y1=(PLOT_H + 5) x2=(x) y2=(PLOT_H + 10) stroke="#999" {}
                text x=(x + 2) y=(PLOT_H + 22) { (month.format("%b")) }
            }
        }
    }
}

fn next_month(day: NaiveDate) -> NaiveDate {
    let (year, month) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MAX)
}

/// One stacked bar: each channel's share of the hits, with a legend.
fn share_chart(usage: &Usage) -> Markup {
    const W: f64 = 600.0;
    let starts = usage.channels.values().scan(0.0, |x, share| {
        let start = *x;
        *x += share.share * W;
        Some(start)
    });
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(W as u64 + 10)
            height=(30 + 18 * usage.channels.len()) role="img" aria-label="share by channel"
            font-size="12" {
            @for ((channel, share), x) in usage.channels.iter().zip(starts) {
                rect x=(format!("{x:.1}")) y="0" width=(format!("{:.1}", share.share * W))
                    height="22" fill=(channel_colour(channel)) {
                    title { (channel) ": " (share.hits) " hits, " (percent(Some(share.share))) }
                }
            }
            @for (i, (channel, share)) in usage.channels.iter().enumerate() {
                @let y = 30 + 18 * i;
                rect x="0" y=(y) width="12" height="12" fill=(channel_colour(channel)) {}
                text x="18" y=(y + 10) {
                    (channel) ": " (share.hits) " hits (" (percent(Some(share.share))) ")"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("html".parse::<Format>(), Ok(Format::Html));
        let err = "pdf".parse::<Format>().expect_err("pdf");
        assert!(err.to_string().contains("csv, json, md or html"));
    }

    #[test]
    fn markdown_cells_are_escaped() {
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
    }

    /// Pengguna, User IDs and refusal reasons come from PKS files and the log: in the
    /// page and its charts they are text, quotes included.
    #[test]
    fn html_values_cannot_open_markup() {
        let hostile = "<script>alert(\"x\")</script>";
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;";
        let usage = Usage {
            channels: [(
                hostile.to_owned(),
                super::super::ChannelShare {
                    hits: 1,
                    share: 1.0,
                },
            )]
            .into(),
            refusals: [(hostile.to_owned(), 1)].into(),
            daily_hits: None,
            requests: 1,
            hits: 1,
            active_days: 1,
            peak_day: None,
            quota_limit_sum: 1,
            quota_utilisation: None,
            distinct_niks: 1,
            refusals_total: 1,
        };
        let mut balikan = BalikanReport {
            obligations_checked: false,
            window_first: NaiveDate::MIN,
            window_last: NaiveDate::MIN,
            rows: vec![BalikanRow {
                pengguna: hostile.to_owned(),
                pks: Some(hostile.to_owned()),
                obligated: None,
                counts: BalikanCounts {
                    lookups_in_window: 1,
                    ..BalikanCounts::default()
                },
                behind: false,
            }],
            totals: BalikanCounts::default(),
            behind: Vec::new(),
        };
        let unchecked = balikan.html().into_string();
        balikan.rows[0].obligated = Some(true);
        balikan.rows[0].behind = true;
        balikan.obligations_checked = true;
        balikan.behind = vec![super::super::BalikanBehind {
            pengguna: hostile.to_owned(),
            pks: hostile.to_owned(),
            lookups_in_window: 1,
            last_balikan: None,
        }];
        let pieces = [
            unchecked,
            balikan.html().into_string(),
            html_usage_table(hostile, std::iter::once((hostile.to_owned(), &usage))).into_string(),
            hbar_chart(&[(hostile.to_owned(), 3)], hostile).into_string(),
            share_chart(&usage).into_string(),
        ];
        for piece in pieces {
            assert!(!piece.contains("<script"), "{piece}");
            assert!(piece.contains(escaped), "{piece}");
        }
    }
}
