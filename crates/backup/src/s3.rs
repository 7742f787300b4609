//! S3 for backups: streamed multipart upload with server-side encryption, streamed
//! download, listing and deletion — with errors an operator can act on. The client itself
//! comes from `cashtag-stores`.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
pub use cashtag_stores::s3::S3Client;
use cashtag_stores::s3::S3Client as Client;
use tokio::sync::mpsc;

use crate::BackupError;

/// Turns an SDK error into one that says what to fix.
pub fn explain<E: ProvideErrorMetadata + std::error::Error + 'static>(
    bucket: &str,
    what: &str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> BackupError {
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or_default().to_string();
    let text = DisplayErrorContext(&e).to_string();
    if code == "NoSuchBucket" || text.contains("NoSuchBucket") {
        return BackupError::NoBucket(bucket.to_string());
    }
    if text.contains("loading credentials")
        || text.contains("no credentials")
        || text.contains("failed to load credentials")
    {
        return BackupError::Credentials(format!(
            "{what} in bucket {bucket}: none could be loaded from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), a profile, or the instance role"
        ));
    }
    if code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" {
        return BackupError::Credentials(format!(
            "{what} in bucket {bucket}: {code}; check the access key, or the instance role's policy"
        ));
    }
    BackupError::S3 { what: format!("{what} in bucket {bucket}"), source: Some(text.into()) }
}

/// Checks that the bucket exists and the credentials work.
pub async fn check_bucket(s3: &Client, bucket: &str) -> Result<(), BackupError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(404) {
                return Err(BackupError::NoBucket(bucket.to_string()));
            }
            if status == Some(403) {
                return Err(BackupError::Credentials(format!("access to bucket {bucket} denied (403)")));
            }
            Err(explain(bucket, "checking the bucket", e))
        }
    }
}

/// Uploads the parts that arrive on `parts` as one object, completing it only when
/// `commit` fires after the last part; aborts the upload on any failure or without commit.
pub async fn upload_parts(
    s3: Client,
    bucket: String,
    key: String,
    mut parts: mpsc::Receiver<Vec<u8>>,
    commit: tokio::sync::oneshot::Receiver<()>,
) -> Result<u64, BackupError> {
    let created = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .content_type("application/gzip")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .map_err(|e| explain(&bucket, "starting the upload", e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let result: Result<(Vec<CompletedPart>, u64), BackupError> = async {
        let mut done = Vec::new();
        let mut total = 0u64;
        let mut n = 0i32;
        while let Some(part) = parts.recv().await {
            n += 1;
            total += part.len() as u64;
            let out = s3
                .upload_part()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| explain(&bucket, &format!("uploading part {n}"), e))?;
            done.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_string)).build());
        }
        Ok((done, total))
    }
    .await;
    // No more parts are taken (a writer still sending sees the channel closed), and the
    // dump's verdict decides.
    drop(parts);
    let committed = result.is_ok() && commit.await.is_ok();
    match result {
        Ok((done, total)) if !done.is_empty() && committed => {
            s3.complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
                .send()
                .await
                .map_err(|e| explain(&bucket, "completing the upload", e))?;
            Ok(total)
        }
        other => {
            let _ = s3.abort_multipart_upload().bucket(&bucket).key(&key).upload_id(&upload_id).send().await;
            match other {
                Err(e) => Err(e),
                Ok(_) if !committed => Err(BackupError::io("the dump failed; the upload was aborted")),
                _ => Err(BackupError::S3 { what: "the archive was empty".into(), source: None }),
            }
        }
    }
}

pub async fn put_json(s3: &Client, bucket: &str, key: &str, value: &serde_json::Value) -> Result<(), BackupError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(serde_json::to_vec_pretty(value).expect("serializes")))
        .send()
        .await
        .map_err(|e| explain(bucket, &format!("writing {key}"), e))?;
    Ok(())
}

pub async fn get_json(s3: &Client, bucket: &str, key: &str) -> Result<Option<serde_json::Value>, BackupError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => {
            let bytes = o
                .body
                .collect()
                .await
                .map_err(|e| BackupError::S3 { what: format!("reading {key}"), source: Some(Box::new(e)) })?
                .into_bytes();
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| BackupError::corrupt_by(format!("{key} is not JSON"), e))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(explain(bucket, &format!("reading {key}"), e)),
    }
}

/// Which stored version of an object a download read: the version id in a versioned
/// bucket, else the ETag (the object's content as it was).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectVersion {
    pub version_id: Option<String>,
    pub e_tag: Option<String>,
}

/// A streamed download, of the version `pin` names when given (its version id, or the
/// ETag as a precondition: an object replaced since is refused, never read instead).
pub async fn open(
    s3: &Client,
    bucket: &str,
    key: &str,
    pin: Option<&ObjectVersion>,
) -> Result<(ByteStream, ObjectVersion), BackupError> {
    let mut req = s3.get_object().bucket(bucket).key(key);
    match pin {
        Some(ObjectVersion { version_id: Some(v), .. }) => req = req.version_id(v),
        Some(ObjectVersion { e_tag: Some(t), .. }) => req = req.if_match(t),
        _ => {}
    }
    match req.send().await {
        Ok(o) => {
            let version =
                ObjectVersion { version_id: o.version_id.clone().filter(|v| v != "null"), e_tag: o.e_tag.clone() };
            Ok((o.body, version))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            Err(BackupError::NotFound(key.to_string()))
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Err(BackupError::corrupt(format!(
            "{key} was replaced after it was verified (its ETag changed); nothing was restored from it"
        ))),
        Err(e) => Err(explain(bucket, &format!("downloading {key}"), e)),
    }
}

/// Every key under a prefix, with its size.
pub async fn list(s3: &Client, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>, BackupError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| explain(bucket, "listing backups", e))?;
        for o in page.contents() {
            out.push((o.key().unwrap_or_default().to_string(), o.size().unwrap_or(0)));
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

pub async fn delete(s3: &Client, bucket: &str, key: &str) -> Result<(), BackupError> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| explain(bucket, &format!("deleting {key}"), e))?;
    Ok(())
}
