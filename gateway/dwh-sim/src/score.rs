//! Text comparison for verification and search: normalisation and a 0–100 similarity.

/// Writes `text` upper-cased with every run of non-alphanumeric characters turned into
/// one space and no leading or trailing space: `"Jl. Contoh  no.1"` → `"JL CONTOH NO 1"`.
/// Clears `out` first.
pub(crate) fn normalize(text: &str, out: &mut String) {
    out.clear();
    let mut gap = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_uppercase());
        } else {
            gap = true;
        }
    }
}

/// Similarity of two normalised texts, 0–100: one minus the Levenshtein distance over
/// the longer length, rounded. Two empty texts are identical (100).
pub(crate) fn similarity(a: &str, b: &str) -> u8 {
    if a == b {
        return 100;
    }
    let score = strsim::normalized_levenshtein(a, b) * 100.0;
    score.round().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        let mut out = String::new();
        normalize(text, &mut out);
        out
    }

    #[test]
    fn normalize_ignores_case_spacing_and_punctuation() {
        assert_eq!(norm("  Jl. Contoh  no.1 "), "JL CONTOH NO 1");
        assert_eq!(norm("siti-contoh"), "SITI CONTOH");
        assert_eq!(norm("..."), "");
    }

    #[test]
    fn similarity_scores() {
        assert_eq!(similarity("SITI CONTOH", "SITI CONTOH"), 100);
        assert_eq!(similarity("", ""), 100);
        assert_eq!(similarity("ABCD", "ABCE"), 75);
        assert_eq!(similarity("ABC", "XYZ"), 0);
    }
}
