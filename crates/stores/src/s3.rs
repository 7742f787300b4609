//! S3: the client the backup and the model registry use.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
pub use aws_sdk_s3::Client as S3Client;

/// An S3 client for the region and (emulator) endpoint; path-style addressing, which
/// emulators need and AWS accepts. Every call has a deadline: 10 s to connect, 2 minutes
/// per attempt (a part of up to hundreds of MiB), 10 minutes in all.
pub async fn client(region: &str, endpoint: &str) -> S3Client {
    client_with_deadline(region, endpoint, Duration::from_secs(600)).await
}

/// [`client`] with every call bounded by `total` (attempts by a fifth of it, at most two
/// minutes; connecting by 10 s or less): for small objects read by a service that must
/// not wait on an unreachable S3 (the predictor's model pointer).
pub async fn client_with_deadline(region: &str, endpoint: &str, total: Duration) -> S3Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10).min(total))
        .read_timeout(Duration::from_secs(60).min(total))
        .operation_attempt_timeout(Duration::from_secs(120).min(total / 5).max(Duration::from_secs(1)))
        .operation_timeout(total)
        .build();
    let conf = crate::aws::sdk_config(region, endpoint, timeouts).await;
    S3Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build())
}

/// Creates the bucket if it does not exist, for an emulator that starts empty; true when
/// it created it. Against real AWS the suite never calls this: the buckets are the
/// operator's (CloudFormation), with their versioning and policies.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, String> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(false);
    }
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!("creating bucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))),
    }
}
