//! The model registry on S3.
//!
//! `models/<name>/<version>/model.json` holds a model; `models/<name>/latest.json` points
//! at the promoted one (name, version, key, SHA-256 of the model file). A publish writes
//! the model first and the pointer last, so a reader following the pointer never finds
//! a half-written or missing model; the reader checks the model's SHA-256 against the
//! pointer, so a model file replaced or damaged behind the pointer is refused. Every
//! version ever published stays: their number is the number of variants tried, which
//! the deflated Sharpe ratio needs.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::artifact::{ModelFile, sha256};

/// The pointer file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    pub name: String,
    pub version: String,
    pub key: String,
    pub sha256: String,
    pub promoted_at: DateTime<Utc>,
    /// Who promoted it: `train`, `promote`, or `train --promote-anyway`.
    pub by: String,
}

/// A published version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub version: String,
    pub key: String,
    pub bytes: i64,
    pub latest: bool,
}

#[derive(Clone)]
pub struct Registry {
    s3: Client,
    bucket: String,
    prefix: String,
}

fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    bucket: &str,
    what: &str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> ModelError {
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or_default().to_string();
    let text = DisplayErrorContext(&e).to_string();
    let hint = if code == "NoSuchBucket" || text.contains("NoSuchBucket") {
        format!("bucket {bucket} does not exist (models.bucket)")
    } else if code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" {
        format!("{code}: check the credentials or the instance role's policy for bucket {bucket}")
    } else {
        text
    };
    ModelError::S3(format!("{what}: {hint}"))
}

impl Registry {
    pub fn new(s3: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Registry {
        Registry { s3, bucket: bucket.into(), prefix: prefix.into().trim_end_matches('/').to_string() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn model_key(&self, name: &str, version: &str) -> String {
        format!("{}/{name}/{version}/model.json", self.prefix)
    }

    pub fn pointer_key(&self, name: &str) -> String {
        format!("{}/{name}/latest.json", self.prefix)
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ModelError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error(&self.bucket, &format!("writing {key}"), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ModelError> {
        match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(o) => Ok(Some(
                o.body
                    .collect()
                    .await
                    .map_err(|e| ModelError::S3(format!("reading {key}: {e}")))?
                    .into_bytes()
                    .to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error(&self.bucket, &format!("reading {key}"), e)),
        }
    }

    /// Uploads a model; moves the pointer to it when `promote_by` is given.
    pub async fn publish(&self, model: &ModelFile, promote_by: Option<&str>) -> Result<String, ModelError> {
        model.validate()?;
        let key = self.model_key(&model.name, &model.version);
        if self.get(&key).await?.is_some() {
            return Err(ModelError::Input(format!("{key} exists already: versions are never overwritten")));
        }
        let bytes = model.to_bytes();
        let digest = sha256(&bytes);
        self.put(&key, bytes).await?;
        if let Some(by) = promote_by {
            self.write_pointer(&model.name, &model.version, &key, &digest, by).await?;
        }
        Ok(key)
    }

    async fn write_pointer(
        &self,
        name: &str,
        version: &str,
        key: &str,
        digest: &str,
        by: &str,
    ) -> Result<(), ModelError> {
        let p = Pointer {
            name: name.into(),
            version: version.into(),
            key: key.into(),
            sha256: digest.into(),
            promoted_at: Utc::now(),
            by: by.into(),
        };
        self.put(&self.pointer_key(name), serde_json::to_vec_pretty(&p).expect("serializes")).await
    }

    /// The pointer, if a model was ever promoted.
    pub async fn pointer(&self, name: &str) -> Result<Option<Pointer>, ModelError> {
        let key = self.pointer_key(name);
        match self.get(&key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ModelError::BadModel(format!("{key} is not a model pointer: {e}"))),
        }
    }

    /// A version's model file and its SHA-256.
    pub async fn model(&self, name: &str, version: &str) -> Result<(ModelFile, String), ModelError> {
        let key = self.model_key(name, version);
        let bytes = self
            .get(&key)
            .await?
            .ok_or_else(|| ModelError::NotFound(format!("no model {name} {version} (s3://{}/{key})", self.bucket)))?;
        let m =
            ModelFile::parse(&bytes).map_err(|e| ModelError::BadModel(format!("s3://{}/{key}: {e}", self.bucket)))?;
        if m.name != name || m.version != version {
            return Err(ModelError::BadModel(format!(
                "s3://{}/{key} says it is {} {}",
                self.bucket, m.name, m.version
            )));
        }
        Ok((m, sha256(&bytes)))
    }

    /// The promoted model: the pointer, followed and checked.
    pub async fn latest(&self, name: &str) -> Result<Option<(Pointer, ModelFile)>, ModelError> {
        let Some(p) = self.pointer(name).await? else { return Ok(None) };
        let (m, digest) = self.model(name, &p.version).await.map_err(|e| match e {
            ModelError::NotFound(what) => ModelError::BadModel(format!("the pointer names a missing version: {what}")),
            e => e,
        })?;
        if digest != p.sha256 {
            return Err(ModelError::BadModel(format!(
                "{name} {}: the model file's SHA-256 {digest} is not the pointer's {}",
                p.version, p.sha256
            )));
        }
        Ok(Some((p, m)))
    }

    /// Moves the pointer to `version` (which must exist and validate).
    pub async fn promote(&self, name: &str, version: &str, by: &str) -> Result<Pointer, ModelError> {
        let (_, digest) = self.model(name, version).await?;
        let key = self.model_key(name, version);
        self.write_pointer(name, version, &key, &digest, by).await?;
        self.pointer(name).await?.ok_or_else(|| ModelError::S3("the pointer vanished after writing it".into()))
    }

    /// Every published version, oldest first.
    pub async fn list(&self, name: &str) -> Result<Vec<Listed>, ModelError> {
        let latest = self.pointer(name).await.ok().flatten().map(|p| p.version);
        let prefix = format!("{}/{name}/", self.prefix);
        let mut out = Vec::new();
        let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&self.bucket, &format!("listing {prefix}"), e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let Some(version) = key.strip_prefix(&prefix).and_then(|r| r.strip_suffix("/model.json")) else {
                    continue;
                };
                out.push(Listed {
                    version: version.to_string(),
                    key: key.to_string(),
                    bytes: o.size().unwrap_or(0),
                    latest: latest.as_deref() == Some(version),
                });
            }
        }
        out.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(out)
    }
}
