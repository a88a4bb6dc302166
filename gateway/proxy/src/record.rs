//! The decision log as the gateway uses it: the writer, the key for NIK digests, and
//! whether a failed write withholds the data.

use std::sync::Arc;

use gerbang_audit::{ArchiveTo, AuditKey, AuditLog, Keep, Retention, WriterOptions};
use gerbang_core::{AuditArchive, AuditKeep, AuditSettings, Clock};

/// An open decision log.
#[derive(Clone)]
pub struct Audit {
    pub log: Arc<AuditLog>,
    /// Derives NIK digests; the same key seals the records.
    pub key: AuditKey,
    pub refuse_on_failure: bool,
    pub instance: String,
}

impl Audit {
    /// Loads the key and opens (or continues) the log.
    pub fn open(
        settings: &AuditSettings,
        instance: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let key = AuditKey::load(settings.key_file.as_deref()).map_err(|e| e.to_string())?;
        let log = AuditLog::open(
            &settings.dir,
            key.clone(),
            WriterOptions {
                instance: instance.to_string(),
                fsync_interval: settings.fsync_interval,
                clock: Arc::new(move || clock.now()),
                min_free_bytes: settings.min_free_bytes,
                alert_free_bytes: settings.alert_free_bytes,
                retention: settings.retention.as_ref().map(|r| Retention {
                    keep: match r.keep {
                        AuditKeep::Days(n) => Keep::Days(n.get()),
                        AuditKeep::Months(n) => Keep::Months(n.get()),
                    },
                    to: match &r.to {
                        AuditArchive::Dir(dir) => ArchiveTo::Dir(dir.clone()),
                        AuditArchive::Command(command) => ArchiveTo::Command(command.clone()),
                    },
                }),
                ..WriterOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            log: Arc::new(log),
            key,
            refuse_on_failure: settings.refuse_on_failure,
            instance: instance.to_string(),
        })
    }
}
