//! The outbound HTTP client settings that probes and notifiers share: rustls with the ring
//! crypto provider, a bounded number of redirects, timeouts and the anomalyd `User-Agent`.

use std::time::Duration;

/// The `User-Agent` of every outbound request, for example `anomalyd/0.1.0`.
pub const USER_AGENT: &str = concat!("anomalyd/", env!("CARGO_PKG_VERSION"));

/// Redirects followed before a request fails, so a redirect loop cannot hold a run.
pub const MAX_REDIRECTS: usize = 5;

/// Time allowed to open a connection, including the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Error raised when the HTTP client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("failed to build the HTTP client (check the system's TLS trust store): {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Installs ring as the process-wide rustls crypto provider.
///
/// reqwest is built without a provider of its own and panics when it builds a client before one
/// is installed. Calling this again, or after another provider was installed, changes nothing.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Returns a client builder with the shared settings; `timeout` bounds a whole request, from
/// connecting to reading the last body byte. Callers may add settings before `build()`.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
}

/// Builds a client with the shared settings.
pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    Ok(builder(timeout).build()?)
}

/// Joins an error and its sources, so that the cause (for example "connection refused") shows.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(
            USER_AGENT,
            format!("anomalyd/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn client_builds_twice() {
        assert!(client(Duration::from_secs(1)).is_ok());
        assert!(client(Duration::from_secs(1)).is_ok());
    }
}
