//! The AWS setup every client shares: region, (emulator) endpoint, deadlines.

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;

/// The SDK configuration for `region`, pointed at `endpoint` when it is not empty (an
/// emulator such as moto), with the given deadlines. Credentials come from the environment,
/// a profile or the instance role, as the SDK finds them.
pub async fn sdk_config(region: &str, endpoint: &str, timeouts: TimeoutConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts);
    if !endpoint.is_empty() {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
