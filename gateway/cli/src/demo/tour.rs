//! The tour: each rule the gateway enforces, shown with a real request, its answer, and
//! whether the answer was the expected one.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use gerbang_sam::{Biometric, ReaderKey};
use serde_json::Value;

use super::PASSWORD;
use super::expect::Expect;
use super::http::{Api, BALIKAN, Call, Person, Sim};
use super::json::{body, pretty, top_level_keys};
use super::printout::indent;

/// Sample NIKs the tour used, for "Try it yourself".
pub(super) struct Samples {
    pub(super) alive: Vec<String>,
    pub(super) verify: Person,
    pub(super) search: Person,
    pub(super) others: Vec<(&'static str, String)>,
}

pub(super) struct Tour {
    pub(super) api: Api,
    pub(super) sim: Sim,
    /// The demo card reader's key, when the sidecar runs.
    pub(super) reader: Option<ReaderKey>,
    /// The Unix second the sidecar was ready in: it refuses timestamps up to the second it
    /// started (an earlier run's nonces are unknown to it), so readers sign after this.
    pub(super) sam_ready_at: i64,
    pub(super) step: usize,
    /// (step number and title, why it did not go as expected).
    pub(super) results: Vec<(String, Option<String>)>,
}

impl Tour {
    pub(super) async fn run(&mut self) -> Result<Samples> {
        let alive = self.sim.sample("alive", 3).await?;
        let [a0, a1, a2] = [0, 1, 2].map(|i| alive.get(i).cloned().unwrap_or_default());
        let first = Person::fetch(&self.sim, &a0).await?;
        let search = Person::fetch(&self.sim, &a1).await?;
        let mut others = Vec::new();
        for kind in ["female", "deceased", "duplicate", "inactive"] {
            match self.sim.sample(kind, 1).await {
                Ok(n) => others.extend(n.into_iter().next().map(|n| (kind, n))),
                Err(e) => println!("(no {kind} sample: {e:#})"),
            }
        }
        println!(
            "\n=== Tur Gerbang / Gerbang tour ===\nsample NIKs from dwh-sim: {}",
            alive.join(", ")
        );

        // a. An allowed lookup, filtered to the PKS.
        let call = Call::nik([127, 0, 0, 2], "RSUD_CTH", "rsud_cth_01", &first.nik);
        let answer = self
            .step(
                "Akses sah / an allowed CALL_NIK: rsud_cth_01 from its registered IP LAN 127.0.0.2",
                &call,
                Expect::Records {
                    absent: &["AGAMA", "PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"],
                },
                "Only the elements in RSUD Kota Contoh's PKS come through (art. 5); protected data (UU 24/2013 art. 84) never does.",
            )
            .await;
        if let Some(answer) = answer {
            compare_fields(&first.raw, &answer);
        }

        // a2. Data balikan: the hospital returns its medical record number of the patient
        // it just looked up; one about a person it never looked up is refused.
        let records = serde_json::json!([
            {"NIK": first.nik, "NO_REKAM_MEDIS": "RM-2026-000123"},
            {"NIK": search.nik, "NO_REKAM_MEDIS": "RM-2026-000124"},
        ]);
        let balikan = serde_json::json!({
            "user_id": "rsud_cth_01", "password": PASSWORD, "data": records,
        });
        let call = Call::new([127, 0, 0, 2], "RSUD_CTH", BALIKAN, balikan.to_string());
        self.step(
            "Data balikan / returning data: rsud_cth_01 sends medical record numbers back",
            &call,
            Expect::Balikan {
                accepted: 1,
                refused: 1,
            },
            "Accepted only for the NIK this PKS looked up (docs/balikan.md); the DWH got that record alone, the decision log its digest, no NIK hit was used.",
        )
        .await;

        // b. Wrong password.
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_01"),
                ("password", "salah-sandi"),
            ]),
        );
        self.step(
            "Sandi salah / wrong password",
            &call,
            Expect::Respon("Login Gagal"),
            "Never says whether the User ID or the password was wrong; failures are counted per address and per User ID.",
        )
        .await;

        // c. Right credentials, wrong address.
        let from = |ip| Call::nik(ip, "RSUD_CTH", "rsud_cth_01", &first.nik);
        let call = from([127, 0, 0, 3]);
        self.step(
            "Alamat milik User ID lain / right credentials from another User ID's address (127.0.0.3 is rsud_cth_02's)",
            &call,
            Expect::Respon("IP Address Tidak Sesuai"),
            "A User ID is accepted only from its own IP LAN (Permendagri 102/2019 art. 28, 32).",
        )
        .await;
        let call = from([127, 0, 0, 9]);
        self.step(
            "Alamat tak terdaftar / right credentials from an unregistered address 127.0.0.9",
            &call,
            Expect::Respon("IP Client Tidak Terdaftar"),
            "Outside every registered IP LAN: refused before any password work.",
        )
        .await;

        // d. Spoofed X-Forwarded-For.
        let call = from([127, 0, 0, 9]).header("X-Forwarded-For", "127.0.0.2");
        self.step(
            "Header palsu / X-Forwarded-For: 127.0.0.2 sent from 127.0.0.9",
            &call,
            Expect::Respon("IP Client Tidak Terdaftar"),
            "The source address comes from the TCP connection; X-Forwarded-For is never trusted.",
        )
        .await;

        // e. A body ip_user that is not the real source.
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
                ("ip_user", "10.20.30.40"),
            ]),
        );
        self.step(
            "ip_user palsu / body ip_user 10.20.30.40 from 127.0.0.2",
            &call,
            Expect::Respon("IP Address Tidak Sesuai"),
            "The body's ip_user grants nothing; one that differs from the real source is refused.",
        )
        .await;

        // f. Deactivated User ID.
        let call = Call::nik([127, 0, 0, 3], "RSUD_CTH", "rsud_cth_02", &first.nik);
        self.step(
            "User ID dinonaktifkan / deactivated User ID rsud_cth_02 from its own 127.0.0.3",
            &call,
            Expect::Respon("User ID Tidak Aktif"),
            "Deactivation is an art. 45 sanction: one line in the PKS file (status = \"nonaktif\").",
        )
        .await;

        // g. Expired PKS.
        let call = Call::nik([127, 0, 0, 8], "KSP_CTH", "ksp_cth", &first.nik);
        self.step(
            "PKS berakhir / expired agreement: ksp_cth (PKS ended 2024-11-09) from 127.0.0.8",
            &call,
            Expect::Respon("Akses di Luar Waktu yang Diizinkan"),
            "Outside the PKS period (jangka waktu) everything is refused.",
        )
        .await;

        // h. Channel not in the PKS.
        let call = Call::nik([127, 0, 0, 4], "BKD_KRA", "bkd_kra_01", &first.nik);
        self.step(
            "Metode akses tidak ada di PKS / web service not granted: bkd_kra_01 from 127.0.0.4",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "BKD Karanganyar's PKS grants web_portal and card_reader only, not the web service.",
        )
        .await;

        // h2. The same User ID through its card reader, and the same request replayed.
        self.card_reader_steps(&first.nik).await?;

        // i. Foreign-majority BHI: verification only.
        let verify = Person::fetch(&self.sim, &a2).await?;
        let call = Call::nik([127, 0, 0, 6], "FINTEK", "fintek_api", &verify.nik);
        self.step(
            "BHI asing: CALL_NIK ditolak / foreign-majority fintech fintek_api asks for data",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "A BHI with foreign majority ownership may only verify (Permendagri 102/2019 art. 29(4)).",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 6],
            "FINTEK",
            "CALL_VERIFY_BY_ELEMEN",
            body(&[
                ("NIK", &verify.nik),
                ("USER_ID", "fintek_api"),
                ("PASSWORD", PASSWORD),
                ("TRESHOLD", "90"),
                ("NAMA_LGKP", &verify.name),
                ("TGL_LHR", &verify.birth_date),
            ]),
        );
        self.step(
            "BHI asing: verifikasi / the same fintech verifies a name and birth date",
            &call,
            Expect::Verdicts,
            "Only \"Sesuai\" / \"Tidak Sesuai\" verdicts: no value of the record leaves the gateway.",
        )
        .await;

        // j. Search by elements: law enforcement only.
        let search_body = |user: &str| {
            body(&[
                ("USER_ID", user),
                ("PASSWORD", PASSWORD),
                ("NAMA_LGKP", &search.name),
                ("TGL_LHR", &search.birth_date),
            ])
        };
        let call = Call::new(
            [127, 0, 0, 7],
            "POLDA_CTH",
            "CALL_BY_ELEMEN",
            search_body("polda_cth_reskrim"),
        );
        self.step(
            "Penegak hukum: cari per elemen / law enforcement searches by name + birth date",
            &call,
            Expect::Records { absent: &[] },
            "Search by a combination of elements is given to law enforcement only (art. 31; letter 470/18754).",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_BY_ELEMEN",
            search_body("rsud_cth_01"),
        );
        self.step(
            "Bukan penegak hukum / the same search by the hospital rsud_cth_01",
            &call,
            Expect::Respon("Akses Tidak Diizinkan oleh PKS"),
            "\"Search by name by address\" is not given to anyone else.",
        )
        .await;

        // k. Malformed requests never reach the DWH.
        let before = self.sim.requests().await;
        let province_20 = format!("20{}", first.nik.get(2..).unwrap_or_default());
        let call = Call::nik([127, 0, 0, 2], "RSUD_CTH", "rsud_cth_01", &province_20);
        self.step(
            "NIK tidak valid / province code 20 does not exist",
            &call,
            Expect::Respon("NIK Tidak Sesuai Format Dukcapil"),
            "RESPONSE_DESC says why; a malformed NIK costs no hit and never reaches the DWH.",
        )
        .await;
        let day_35 = format!(
            "{}35{}",
            first.nik.get(..6).unwrap_or_default(),
            first.nik.get(8..).unwrap_or_default()
        );
        let call = Call::nik([127, 0, 0, 2], "RSUD_CTH", "rsud_cth_01", &day_35);
        self.step(
            "NIK tidak valid / birth day 35 (days are 01-31, or 41-71 for women)",
            &call,
            Expect::Respon("NIK Tidak Sesuai Format Dukcapil"),
            "The NIK's structure is checked before anything is forwarded.",
        )
        .await;
        let call = Call::new(
            [127, 0, 0, 2],
            "RSUD_CTH",
            "CALL_NIK",
            body(&[
                ("nik", &first.nik),
                ("NIK", &a1),
                ("user_id", "rsud_cth_01"),
                ("password", PASSWORD),
            ]),
        );
        self.step(
            "Kunci ganda / the same key twice: \"nik\" and \"NIK\"",
            &call,
            Expect::Respon("Parameter Tidak Lengkap"),
            "Keys match case-insensitively, so a body naming one twice is ambiguous and refused.",
        )
        .await;
        let after = self.sim.requests().await;
        self.step += 1;
        let title = format!(
            "{}. DWH tidak tersentuh / the DWH saw none of the last three",
            self.step
        );
        println!("\n{title}");
        let why = match (&before, &after) {
            (Ok(b), Ok(a)) => {
                println!("   dwh-sim request counter (GET /__sim/stats): before {b}, after {a}");
                (a != b).then(|| format!("the counter moved from {b} to {a}"))
            }
            (Err(e), _) | (_, Err(e)) => {
                println!("   could not read /__sim/stats: {e:#}");
                Some(format!("could not read the counter: {e:#}"))
            }
        };
        if let Some(why) = &why {
            println!("   !! NOT AS EXPECTED: {why}");
        } else {
            println!("   -> Refused at the gateway: no request reached the DWH.");
        }
        self.results.push((title, why));

        Ok(Samples {
            alive,
            verify,
            search,
            others,
        })
    }

    /// A valid card-reader lookup by bkd_kra_01, the same signed request again, and one
    /// whose fingerprint did not match (art. 24–26; juknis §4).
    async fn card_reader_steps(&mut self, nik: &str) -> Result<()> {
        let Some(key) = &self.reader else {
            return Ok(());
        };
        let now = chrono::Utc::now();
        if now.timestamp() <= self.sam_ready_at {
            // The sidecar started this second; a timestamp of this second is refused.
            let into_second = u64::from(now.timestamp_subsec_millis());
            tokio::time::sleep(Duration::from_millis(1_000 - into_second.min(999))).await;
        }
        let sign = |biometric| {
            crate::reader::sign_lookup(
                key,
                &crate::reader::Lookup {
                    instansi: "BKD_KRA",
                    sam_id: &key.sam_id,
                    user: "bkd_kra_01",
                    password: PASSWORD,
                    nik,
                    biometric,
                    timestamp: None,
                    nonce: None,
                },
            )
        };
        let signed = sign(Biometric::Match)?;
        let no_match = sign(Biometric::NoMatch)?;
        let sam_id = key.sam_id.clone();
        let call = |signed: &crate::reader::SignedLookup| {
            let mut call = Call::new([127, 0, 0, 4], "BKD_KRA", "CALL_NIK", signed.body.clone());
            for (name, value) in &signed.headers {
                call = call.header(name, value);
            }
            call
        };
        self.step(
            &format!("Card reader / bkd_kra_01 through its KTP-el reader {sam_id} (SAM signature, fingerprint matched)"),
            &call(&signed),
            Expect::Records {
                absent: &["AGAMA", "PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"],
            },
            "The SAM sidecar checked the Ed25519 signature, the time, the nonce, that the SAM is active and BKD Karanganyar's, and that the PKS grants card_reader (art. 24-26).",
        )
        .await;
        self.step(
            "Permintaan ulang / the very same signed request sent again",
            &call(&signed),
            Expect::Respon("Validasi Card Reader Gagal: Permintaan Ulang Terdeteksi"),
            "Each nonce is accepted once per SAM: a captured request cannot be replayed.",
        )
        .await;
        self.step(
            "Sidik jari tidak cocok / the reader's 1:1 fingerprint check failed",
            &call(&no_match),
            Expect::Respon("Validasi Card Reader Gagal: Sidik Jari Tidak Cocok"),
            "Without a matched fingerprint a reader gets no data (juknis §4).",
        )
        .await;
        Ok(())
    }

    /// Sends one request and prints it, its answer, and whether it was as expected.
    /// Returns the answer body if there was one.
    async fn step(
        &mut self,
        title: &str,
        call: &Call,
        expect: Expect,
        comment: &str,
    ) -> Option<String> {
        self.step += 1;
        let title = format!("{}. {title}", self.step);
        println!("\n{title}");
        println!("{}", indent(&self.api.curl(call), "   "));
        let (why, answer) = match self.api.send(call).await {
            Err(e) => {
                println!("   request failed: {e:#}");
                (Some(format!("request failed: {e:#}")), None)
            }
            Ok((status, answer)) => {
                let (text, shortened) = pretty(&answer);
                println!("   HTTP {status}");
                println!("{}", indent(&text, "   "));
                if shortened {
                    println!("   (long values shortened here)");
                }
                let why = expect
                    .judge(&answer)
                    .err()
                    .map(|w| format!("expected {}, {w}", expect.describe()));
                (why, Some(answer))
            }
        };
        match &why {
            None => println!("   -> {comment}"),
            Some(why) => println!("   !! NOT AS EXPECTED: {why}"),
        }
        self.results.push((title, why));
        answer
    }

    pub(super) fn summary(&self) {
        let ok = self.results.iter().filter(|(_, why)| why.is_none()).count();
        println!(
            "\ntour: {ok}/{} steps answered as expected",
            self.results.len()
        );
        for (title, why) in &self.results {
            if let Some(why) = why {
                println!("  !! {title}\n     {why}");
            }
        }
    }
}

/// Step a's point: what the DWH sent versus what reached the Pengguna.
fn compare_fields(record_raw: &str, answer: &str) {
    let sent = top_level_keys(record_raw);
    let passed: BTreeSet<String> = serde_json::from_str::<Value>(answer)
        .ok()
        .and_then(|v| {
            v.get("content")?
                .get(0)?
                .as_object()
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default();
    let removed: Vec<&str> = sent
        .iter()
        .filter(|k| !passed.contains(*k))
        .map(String::as_str)
        .collect();
    println!(
        "   The DWH (dwh-sim, GET /__sim/record?nik=…) holds {} fields for this NIK; {} came through.",
        sent.len(),
        passed.len()
    );
    println!("   Removed by the gateway: {}", removed.join(", "));
}
