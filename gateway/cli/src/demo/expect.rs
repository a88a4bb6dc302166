//! What a tour step expects of an answer, and the judgement of the answer it got.

use serde_json::Value;

/// What a step should be answered with.
pub(super) enum Expect {
    /// A refusal with this `RESPON` text (compared case-insensitively, as clients do).
    Respon(&'static str),
    /// Records carrying a NIK, none of them holding any of these fields.
    Records { absent: &'static [&'static str] },
    /// Only `Sesuai` / `Tidak Sesuai` verdicts, no values.
    Verdicts,
    /// A data balikan's per-record verdicts: this many accepted and refused.
    Balikan { accepted: u64, refused: u64 },
}

impl Expect {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Respon(text) => format!("RESPON \"{text}\""),
            Self::Records { .. } => "records".to_string(),
            Self::Verdicts => "verdicts only".to_string(),
            Self::Balikan { accepted, refused } => {
                format!("{accepted} record(s) accepted, {refused} refused")
            }
        }
    }

    /// `Ok` when the answer is what the step expects, else why not.
    pub(super) fn judge(&self, body: &str) -> std::result::Result<(), String> {
        let v: Value =
            serde_json::from_str(body).map_err(|_| "the answer is not JSON".to_string())?;
        let content = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| "the answer has no `content` list".to_string())?;
        let respon = content
            .first()
            .and_then(|r| r.get("RESPON"))
            .and_then(Value::as_str);
        match self {
            Self::Respon(want) => match respon {
                Some(got) if got.eq_ignore_ascii_case(want) => Ok(()),
                Some(got) => Err(format!("got RESPON \"{got}\"")),
                None => Err("got data instead of a refusal".to_string()),
            },
            Self::Records { absent } => {
                if let Some(got) = respon {
                    return Err(format!("got RESPON \"{got}\""));
                }
                if content.is_empty() {
                    return Err("got no records".to_string());
                }
                for record in content {
                    if record.get("NIK").is_none() {
                        return Err("a record has no NIK".to_string());
                    }
                    if let Some(f) = absent.iter().find(|f| record.get(**f).is_some()) {
                        return Err(format!("{f} came through; it should have been removed"));
                    }
                }
                Ok(())
            }
            Self::Balikan { accepted, refused } => {
                if let Some(got) = respon {
                    return Err(format!("got RESPON \"{got}\""));
                }
                let count = |k: &str| v.get(k).and_then(Value::as_u64);
                match (count("DITERIMA"), count("DITOLAK")) {
                    (Some(a), Some(r)) if a == *accepted && r == *refused => Ok(()),
                    (a, r) => Err(format!("got {a:?} accepted, {r:?} refused")),
                }
            }
            Self::Verdicts => {
                if let Some(got) = respon {
                    return Err(format!("got RESPON \"{got}\""));
                }
                let Some(Value::Object(first)) = content.first() else {
                    return Err("got no verdicts".to_string());
                };
                if first.is_empty() {
                    return Err("got no verdicts".to_string());
                }
                for record in content {
                    let Value::Object(fields) = record else {
                        return Err("a verdict is not an object".to_string());
                    };
                    for (k, val) in fields {
                        let verdict = val.as_str().is_some_and(|s| {
                            s.starts_with("Sesuai") || s.starts_with("Tidak Sesuai")
                        });
                        if !verdict {
                            return Err(format!("{k} carries a value ({val}), not a verdict"));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_answers() {
        let refusal = r#"{"content":[{"RESPON":"Login Gagal","RESPONSE_CODE":"03"}]}"#;
        assert!(Expect::Respon("login gagal").judge(refusal).is_ok());
        assert!(
            Expect::Respon("IP Address Tidak Sesuai")
                .judge(refusal)
                .is_err()
        );
        assert!(Expect::Verdicts.judge(refusal).is_err());
        let record = r#"{"content":[{"NIK":3201014101900001,"NAMA_LGKP":"X"}]}"#;
        assert!(Expect::Records { absent: &["AGAMA"] }.judge(record).is_ok());
        assert!(
            Expect::Records {
                absent: &["NAMA_LGKP"]
            }
            .judge(record)
            .is_err()
        );
        assert!(Expect::Verdicts.judge(record).is_err());
        let verdicts = r#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Tidak Sesuai (59)"}]}"#;
        assert!(Expect::Verdicts.judge(verdicts).is_ok());
    }
}
