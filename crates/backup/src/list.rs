//! `list`: the backups of this environment with their manifests' figures.

use bson::doc;
use chrono::{DateTime, Utc};

use crate::manifest::{Manifest, manifest_key, verified_key};
use crate::{BackupError, Target, key_time};

/// One backup as `list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub key: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    pub bytes: i64,
    pub collections: Option<usize>,
    pub documents: Option<u64>,
    pub verified: bool,
}

/// The backups of this environment, oldest first.
pub async fn list(s3: &aws_sdk_s3::Client, target: &Target) -> Result<Vec<Listed>, BackupError> {
    crate::s3::check_bucket(s3, &target.bucket).await?;
    let objects = crate::s3::list(s3, &target.bucket, &target.root()).await?;
    let keys: std::collections::HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let mut out = Vec::new();
    for (key, bytes) in &objects {
        let Some(at) = key_time(key) else { continue };
        let manifest: Option<Manifest> = crate::s3::get_json(s3, &target.bucket, &manifest_key(key))
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        out.push(Listed {
            key: key.clone(),
            at,
            bytes: *bytes,
            collections: manifest.as_ref().map(|m| m.collections.len()),
            documents: manifest.as_ref().map(|m| m.documents()),
            verified: keys.contains(verified_key(key).as_str()),
        });
    }
    out.sort_by_key(|l| l.at);
    Ok(out)
}
