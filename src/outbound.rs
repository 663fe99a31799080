//! The HTTP client for outbound calls (JWKS and, later, FHIR servers): rustls with the ring
//! provider, HTTP/2 when offered, gzip, pooled connections, and no redirects (a redirect could
//! carry a token somewhere else).

use std::time::Duration;

pub fn client() -> reqwest::Client {
    // Installing twice is harmless: the second call reports the provider already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lbp-cds/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
