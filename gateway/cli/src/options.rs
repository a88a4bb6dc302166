//! The command line's enumerated options: clap checks them and lists their values in
//! `--help`, and each maps onto the library's own type.

use clap::ValueEnum;

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

/// `gerbang policy explain --action`: the business actions Cedar decides (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum ActionArg {
    CallNik,
    CallNoKk,
    VerifyByElement,
    SearchByElements,
    PortalRead,
    PortalWrite,
    PortalExport,
    SubmitBalikan,
}

impl From<ActionArg> for gerbang_policy::Action {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::CallNik => Self::CallNik,
            ActionArg::CallNoKk => Self::CallNoKk,
            ActionArg::VerifyByElement => Self::VerifyByElement,
            ActionArg::SearchByElements => Self::SearchByElements,
            ActionArg::PortalRead => Self::PortalRead,
            ActionArg::PortalWrite => Self::PortalWrite,
            ActionArg::PortalExport => Self::PortalExport,
            ActionArg::SubmitBalikan => Self::SubmitBalikan,
        }
    }
}

/// `gerbang sanksi add --jenis`: the sanctions of art. 45.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SanctionArg {
    KurangiKuota,
    NonaktifkanUser,
    PutusJaringan,
    NonaktifkanSam,
    BekukanPks,
    AkhiriPks,
}

impl From<SanctionArg> for gerbang_core::SanctionKind {
    fn from(s: SanctionArg) -> Self {
        match s {
            SanctionArg::KurangiKuota => Self::KurangiKuota,
            SanctionArg::NonaktifkanUser => Self::NonaktifkanUser,
            SanctionArg::PutusJaringan => Self::PutusJaringan,
            SanctionArg::NonaktifkanSam => Self::NonaktifkanSam,
            SanctionArg::BekukanPks => Self::BekukanPks,
            SanctionArg::AkhiriPks => Self::AkhiriPks,
        }
    }
}

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
        let name = |v: Option<clap::builder::PossibleValue>| {
            v.map(|v| v.get_name().to_owned()).unwrap_or_default()
        };
        for a in ActionArg::value_variants() {
            assert_eq!(
                name(a.to_possible_value()),
                gerbang_policy::Action::from(*a).as_str()
            );
        }
        assert_eq!(
            ActionArg::value_variants().len(),
            gerbang_policy::Action::ALL.len()
        );
        for c in ChannelArg::value_variants() {
            assert_eq!(
                name(c.to_possible_value()),
                gerbang_core::Channel::from(*c).as_str()
            );
        }
        for s in SanctionArg::value_variants() {
            assert_eq!(
                name(s.to_possible_value()),
                gerbang_core::SanctionKind::from(*s).as_str()
            );
        }
        assert_eq!(
            SanctionArg::value_variants().len(),
            gerbang_core::SanctionKind::ALL.len()
        );
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
        assert_eq!(ActionArg::from_str("callnik", true), Ok(ActionArg::CallNik));
    }
}
