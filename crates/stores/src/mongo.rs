//! MongoDB: one way to connect, with timeouts short enough to notice an outage quickly.

use std::time::Duration;

use mongodb::Client;
use mongodb::options::ClientOptions;

/// Connects to MongoDB as `app` (the name the server shows for the connection); a server
/// that cannot be selected within 3 s fails the operation instead of holding it.
pub async fn connect(uri: &str, app: &str) -> Result<Client, mongodb::error::Error> {
    let mut opts = ClientOptions::parse(uri).await?;
    opts.app_name = Some(app.to_string());
    opts.server_selection_timeout = Some(Duration::from_secs(3));
    opts.connect_timeout = Some(Duration::from_secs(3));
    Client::with_options(opts)
}
