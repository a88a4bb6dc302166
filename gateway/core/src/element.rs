//! The data element vocabulary: the DWH field names a PKS may grant, which of them are
//! protected (UU 24/2013 art. 84), and named groups such as the Jawa Barat juknis' address.
//!
//! Ditjen edits the vocabulary as a TOML file (`config/elemen.toml`); the same file is
//! embedded as the default. Element sets are 128-bit bitsets, so filtering a record costs one
//! hash lookup and one bit test per field.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::balikan::{BalikanField, BalikanFile};
use crate::diag::{ConfigError, ConfigErrors, Source, read_file};

/// The vocabulary shipped with Gerbang (a copy of `config/elemen.toml`).
const EMBEDDED: &str = include_str!("../../../config/elemen.toml");

/// Most elements a vocabulary may define (the width of [`ElementSet`]).
pub const MAX_ELEMENTS: usize = 128;

/// Index of an element in its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElementId(u8);

/// A set of elements of one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ElementSet(u128);

impl ElementSet {
    pub const EMPTY: Self = Self(0);

    pub fn contains(self, id: ElementId) -> bool {
        self.0 & (1u128 << id.0) != 0
    }
    pub fn insert(&mut self, id: ElementId) {
        self.0 |= 1u128 << id.0;
    }
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
    pub fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// The members, in vocabulary order.
    pub fn iter(self) -> impl Iterator<Item = ElementId> {
        (0..MAX_ELEMENTS as u8)
            .filter(move |&i| self.0 & (1u128 << i) != 0)
            .map(ElementId)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyFile {
    /// The elements, each a DWH field name.
    #[serde(default)]
    elemen: Vec<toml::Spanned<ElementFile>>,
    /// Named groups of elements, usable in a PKS's `elemen_data` like one element.
    #[serde(default)]
    grup: HashMap<String, toml::Spanned<Vec<toml::Spanned<String>>>>,
    /// The fields a PKS's `data_balikan` may name (data the Pengguna returns).
    #[serde(default)]
    balikan: Vec<toml::Spanned<BalikanFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementFile {
    /// The DWH field name, as it appears in answers (`NAMA_LGKP`).
    nama: String,
    /// What it is, in words Ditjen uses.
    label: String,
    /// Protected personal data (UU 24/2013 art. 84): released only with the Minister's
    /// approval recorded in the PKS (`persetujuan_menteri`).
    #[serde(default)]
    dilindungi: bool,
}

/// The element vocabulary: names, labels, protected flags and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    names: Vec<String>,
    labels: Vec<String>,
    protected: ElementSet,
    by_name: HashMap<String, ElementId>,
    groups: HashMap<String, ElementSet>,
    balikan: Vec<BalikanField>,
}

impl Vocabulary {
    /// The vocabulary shipped with Gerbang.
    pub fn embedded() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a release.
        Self::parse(Path::new("<embedded elemen.toml>"), EMBEDDED)
            .unwrap_or_else(|e| panic!("embedded vocabulary is invalid: {e}"))
    }

    /// Loads a vocabulary file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = read_file(path)?;
        Self::parse(path, &text)
    }

    /// Parses a vocabulary from its text; `path` is used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let src = Source::new(path, text);
        let file: VocabularyFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let mut errors = Vec::new();
        let mut vocab = Self {
            names: Vec::new(),
            labels: Vec::new(),
            protected: ElementSet::EMPTY,
            by_name: HashMap::new(),
            groups: HashMap::new(),
            balikan: Vec::new(),
        };
        for (i, spanned) in file.elemen.iter().enumerate() {
            let span = spanned.span();
            let e = spanned.get_ref();
            let field = format!("elemen[{i}].nama");
            if !is_element_name(&e.nama) {
                errors.push(src.error(
                    Some(span.clone()),
                    field,
                    format!("`{}` is not a DWH field name (A-Z, 0-9 and _)", e.nama),
                ));
                continue;
            }
            if vocab.by_name.contains_key(&e.nama) {
                errors.push(src.error(
                    Some(span.clone()),
                    field,
                    format!("element `{}` is defined twice", e.nama),
                ));
                continue;
            }
            if vocab.names.len() == MAX_ELEMENTS {
                errors.push(src.error(
                    Some(span.clone()),
                    field,
                    format!("a vocabulary holds at most {MAX_ELEMENTS} elements"),
                ));
                break;
            }
            let id = ElementId(vocab.names.len() as u8);
            vocab.by_name.insert(e.nama.clone(), id);
            vocab.names.push(e.nama.clone());
            vocab.labels.push(e.label.clone());
            if e.dilindungi {
                vocab.protected.insert(id);
            }
        }
        let mut group_names: Vec<_> = file.grup.keys().collect();
        group_names.sort();
        for name in group_names {
            let members = &file.grup[name];
            let field = format!("grup.{name}");
            if vocab.by_name.contains_key(name) {
                errors.push(src.error(
                    Some(members.span()),
                    field,
                    format!("group `{name}` has the name of an element; give it another name"),
                ));
                continue;
            }
            let mut set = ElementSet::EMPTY;
            for member in members.get_ref() {
                match vocab.by_name.get(member.get_ref()) {
                    Some(&id) => set.insert(id),
                    None => errors.push(src.error(
                        Some(member.span()),
                        field.clone(),
                        format!(
                            "`{}` is not an element of this vocabulary",
                            member.get_ref()
                        ),
                    )),
                }
            }
            if set.is_empty() {
                errors.push(src.error(Some(members.span()), field, "a group needs members"));
            }
            vocab.groups.insert(name.clone(), set);
        }
        for (i, spanned) in file.balikan.into_iter().enumerate() {
            let span = spanned.span();
            let field = format!("balikan[{i}]");
            match spanned.into_inner().field() {
                Ok(f) if vocab.balikan.iter().any(|b| b.nama == f.nama) => errors.push(src.error(
                    Some(span),
                    field,
                    format!("balikan field `{}` is defined twice", f.nama),
                )),
                Ok(f) if vocab.balikan.iter().any(|b| b.kolom == f.kolom) => {
                    errors.push(src.error(
                        Some(span),
                        field,
                        format!("column `{}` is used twice", f.kolom),
                    ))
                }
                Ok(f) => vocab.balikan.push(f),
                Err(why) => errors.push(src.error(Some(span), field, why)),
            }
        }
        if errors.is_empty() {
            Ok(vocab)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The element with this exact DWH field name.
    pub fn id(&self, name: &str) -> Option<ElementId> {
        self.by_name.get(name).copied()
    }

    /// An element or a group by name, as a set.
    pub fn resolve(&self, name: &str) -> Option<ElementSet> {
        if let Some(&id) = self.by_name.get(name) {
            let mut set = ElementSet::EMPTY;
            set.insert(id);
            return Some(set);
        }
        self.groups.get(name).copied()
    }

    /// The DWH field name of an element.
    pub fn name(&self, id: ElementId) -> &str {
        &self.names[usize::from(id.0)]
    }

    /// The human label of an element.
    pub fn label(&self, id: ElementId) -> &str {
        &self.labels[usize::from(id.0)]
    }

    /// The protected elements (UU 24/2013 art. 84).
    pub fn protected(&self) -> ElementSet {
        self.protected
    }

    /// Every element.
    pub fn all(&self) -> ElementSet {
        let mut set = ElementSet::EMPTY;
        for i in 0..self.names.len() {
            set.insert(ElementId(i as u8));
        }
        set
    }

    /// The field names of a set, in vocabulary order.
    pub fn names(&self, set: ElementSet) -> Vec<&str> {
        set.iter().map(|id| self.name(id)).collect()
    }

    /// The balikan field a PKS names `nama`.
    pub fn balikan(&self, nama: &str) -> Option<&BalikanField> {
        self.balikan.iter().find(|f| f.nama == nama)
    }

    /// Every balikan field, in the file's order.
    pub fn balikan_fields(&self) -> &[BalikanField] {
        &self.balikan
    }

    /// All element and group names, for "did you mean" style messages.
    pub fn known_names(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.names.iter().map(String::as_str).collect();
        all.extend(self.groups.keys().map(String::as_str));
        all.sort_unstable();
        all
    }
}

fn is_element_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Builds a located error for an unknown element name.
pub(crate) fn unknown_element(
    src: &Source<'_>,
    span: std::ops::Range<usize>,
    field: &str,
    name: &str,
    vocab: &Vocabulary,
) -> ConfigError {
    let close: Vec<&str> = vocab
        .known_names()
        .into_iter()
        .filter(|k| k.contains(name) || name.contains(k) || k.eq_ignore_ascii_case(name))
        .take(3)
        .collect();
    let hint = if close.is_empty() {
        "see the vocabulary file for the known names".to_string()
    } else {
        format!("did you mean {}?", close.join(" or "))
    };
    src.error(
        Some(span),
        field,
        format!("unknown element `{name}`: {hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_vocabulary_is_valid_and_marks_protected_data() {
        let v = Vocabulary::embedded();
        for name in ["PNYDNG_CACAT", "SIDIK_JARI", "IRIS_MATA", "TANDA_TANGAN"] {
            let id = v.id(name).expect(name);
            assert!(v.protected().contains(id), "{name} must be protected");
        }
        let nik = v.id("NIK").expect("NIK");
        assert!(!v.protected().contains(nik));
        let address = v.resolve("ALAMAT_SEKARANG").expect("group");
        assert!(address.contains(v.id("KEL_NAME").expect("KEL_NAME")));
        assert!(!address.contains(nik));
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let text = "[[elemen]]\nnama = \"NIK\"\nlabel = \"x\"\n\n[[elemen]]\nnama = \"NIK\"\nlabel = \"y\"\n\n[grup]\nG = [\"NIK\", \"NOPE\"]\n";
        let err = Vocabulary::parse(Path::new("v.toml"), text).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.contains("v.toml:5:"), "{shown}");
        assert!(shown.contains("defined twice"), "{shown}");
        assert!(shown.contains("v.toml:10:"), "{shown}");
        assert!(shown.contains("`NOPE`"), "{shown}");
    }

    #[test]
    fn balikan_fields_are_checked_with_their_line() {
        let v = Vocabulary::embedded();
        let nop = v.balikan("NOP PBB-P2").expect("embedded");
        assert_eq!(nop.kolom, "NOP_PBB_P2");
        assert!(nop.check("331309000100200010").is_ok());
        let text = "[[elemen]]\nnama = \"NIK\"\nlabel = \"x\"\n\n[[balikan]]\nnama = \"A\"\nkolom = \"A\"\nlabel = \"a\"\njenis = \"angka\"\npanjang = 3\n\n[[balikan]]\nnama = \"B\"\nkolom = \"A\"\nlabel = \"b\"\njenis = \"teks\"\npanjang = 3\n\n[[balikan]]\nnama = \"C\"\nkolom = \"C\"\nlabel = \"c\"\njenis = \"angka\"\n";
        let err = Vocabulary::parse(Path::new("v.toml"), text).expect_err("invalid");
        let shown = err.to_string();
        assert!(
            shown.contains("v.toml:12:") && shown.contains("`A` is used twice"),
            "{shown}"
        );
        assert!(
            shown.contains("v.toml:19:") && shown.contains("needs `panjang`"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = "[[elemen]]\nnama = \"NIK\"\nlabel = \"x\"\nprotected = true\n";
        let err = Vocabulary::parse(Path::new("v.toml"), text).expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.contains("v.toml:4:"), "{shown}");
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["protected"], "{shown}");
    }

    #[test]
    fn set_operations() {
        let mut a = ElementSet::EMPTY;
        a.insert(ElementId(0));
        a.insert(ElementId(127));
        let mut b = ElementSet::EMPTY;
        b.insert(ElementId(127));
        assert_eq!(a.intersection(b), b);
        assert_eq!(a.difference(b).len(), 1);
        assert_eq!(a.iter().count(), 2);
    }
}
