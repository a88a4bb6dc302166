//! The command line's enumerated options: clap checks them and lists their values in
//! `--help`, and each maps onto the library's own type.

use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;

/// `gerbang report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
    #[value(alias = "markdown")]
    Md,
    Html,
}

impl From<ReportFormat> for gerbang_audit::Format {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Csv => Self::Csv,
            ReportFormat::Json => Self::Json,
            ReportFormat::Md => Self::Markdown,
            ReportFormat::Html => Self::Html,
        }
    }
}

/// `gerbang policy explain --channel`: the access methods of a PKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ChannelArg {
    WebService,
    WebPortal,
    CardReader,
}

impl From<ChannelArg> for gerbang_core::Channel {
    fn from(c: ChannelArg) -> Self {
        match c {
            ChannelArg::WebService => Self::WebService,
            ChannelArg::WebPortal => Self::WebPortal,
            ChannelArg::CardReader => Self::CardReader,
        }
    }
}

/// A library enum as a clap value, from its `ALL` and `as_str`: the names clap accepts are
/// the ones the policy files, the admin API and the docs use, and cannot drift from them.
macro_rules! library_value {
    ($(#[$doc:meta])* $wrapper:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $wrapper(pub $inner);

        impl ValueEnum for $wrapper {
            fn value_variants<'a>() -> &'a [Self] {
                static ALL: LazyLock<Vec<$wrapper>> =
                    LazyLock::new(|| <$inner>::ALL.into_iter().map($wrapper).collect());
                &ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.0.as_str()))
            }
        }
    };
}

library_value!(
    /// `gerbang policy explain --action`: the business actions Cedar decides.
    ActionArg(gerbang_policy::Action)
);

library_value!(
    /// `gerbang sanksi add --jenis`: the sanctions of art. 45.
    SanctionArg(gerbang_core::SanctionKind)
);

/// `gerbang reader lookup --biometric`: the reader's 1:1 fingerprint result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum BiometricArg {
    Match,
    NoMatch,
}

impl From<BiometricArg> for gerbang_sam::Biometric {
    fn from(b: BiometricArg) -> Self {
        match b {
            BiometricArg::Match => Self::Match,
            BiometricArg::NoMatch => Self::NoMatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value clap accepts is the name the libraries use, so the command lines in the
    /// docs, the policy test cases and the admin API keep meaning the same.
    #[test]
    fn values_are_the_libraries_names() {
        let name =
            |v: Option<PossibleValue>| v.map(|v| v.get_name().to_owned()).unwrap_or_default();
        let names =
            |values: Vec<Option<PossibleValue>>| values.into_iter().map(name).collect::<Vec<_>>();
        assert_eq!(
            names(
                ActionArg::value_variants()
                    .iter()
                    .map(ValueEnum::to_possible_value)
                    .collect()
            ),
            gerbang_policy::Action::ALL.map(|a| a.as_str())
        );
        assert_eq!(
            names(
                SanctionArg::value_variants()
                    .iter()
                    .map(ValueEnum::to_possible_value)
                    .collect()
            ),
            gerbang_core::SanctionKind::ALL.map(|s| s.as_str())
        );
        for c in ChannelArg::value_variants() {
            assert_eq!(
                name(c.to_possible_value()),
                gerbang_core::Channel::from(*c).as_str()
            );
        }
        for b in BiometricArg::value_variants() {
            assert_eq!(
                name(b.to_possible_value()),
                gerbang_sam::Biometric::from(*b).as_str()
            );
        }
        for f in ReportFormat::value_variants() {
            let parsed: gerbang_audit::Format = name(f.to_possible_value())
                .parse()
                .expect("a report format");
            assert_eq!(parsed, gerbang_audit::Format::from(*f));
        }
        assert_eq!(
            ReportFormat::from_str("markdown", false),
            Ok(ReportFormat::Md)
        );
        assert_eq!(
            ActionArg::from_str("callnik", true),
            Ok(ActionArg(gerbang_policy::Action::CallNik))
        );
    }
}
