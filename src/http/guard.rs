//! Checks on requests that change state: the bearer token, when one is configured, and that a
//! browser sent them from the page's own origin.

use http::{Method, header};

use super::ApiError;
use crate::config::Secret;

/// Returns whether a request may change state.
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a write for the configured `Authorization: Bearer` token (401 without it) and for
/// the page's own origin (403 from another site). Reads pass.
pub fn check_write<B>(req: &http::Request<B>, token: Option<&Secret>) -> Result<(), ApiError> {
    if !is_write(req.method()) {
        return Ok(());
    }
    check_origin(req)?;
    let Some(token) = token else {
        return check_loopback_host(req);
    };
    let presented = bearer_token(req)?;
    if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token in the Authorization header does not match the API token; send \
             the token from --token-file or ANOMALYD_TOKEN of this server"
                .into(),
        ))
    }
}

/// Returns the token of the `Authorization: Bearer` header, trimmed, with the scheme name in any
/// case. A missing header, or one of another scheme, is rejected with a message that names the
/// problem.
fn bearer_token<B>(req: &http::Request<B>) -> Result<&str, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "this write needs the API token, and the request has no Authorization header: send \
             Authorization: Bearer <token>"
                .into(),
        ));
    };
    let scheme_error = || {
        ApiError::Unauthorized(
            "the Authorization header does not use the Bearer scheme: send \
             Authorization: Bearer <token>"
                .into(),
        )
    };
    let text = value.to_str().map_err(|_| scheme_error())?;
    // Scheme names are case-insensitive (RFC 7235, section 2.1), so `bearer` is accepted too.
    let (scheme, token) = text.trim_start().split_once(' ').ok_or_else(scheme_error)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(scheme_error());
    }
    Ok(token.trim())
}

/// Rejects a write that a browser sent from another site.
fn check_origin<B>(req: &http::Request<B>) -> Result<(), ApiError> {
    let headers = req.headers();
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ApiError::Forbidden(format!(
            "cross-site write rejected (Sec-Fetch-Site: {site}); send changes from the page \
             served by anomalyd"
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "write from origin {origin} rejected; send changes from the page served by \
         anomalyd"
    )))
}

/// Rejects a browser write without a token whose `Host` is not a loopback name. A page on
/// another site can point its own DNS name at 127.0.0.1 (DNS rebinding). Its requests then look
/// same-origin, but they carry that name as `Host`. Clients that send no `Origin` are not
/// browsers and pass.
fn check_loopback_host<B>(req: &http::Request<B>) -> Result<(), ApiError> {
    let headers = req.headers();
    if !headers.contains_key(header::ORIGIN) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_loopback_host(host) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "write for host {host} rejected: without an API token only 127.0.0.1, [::1] and \
         localhost are accepted; open the page by one of those names or configure a token"
    )))
}

/// Returns whether a `Host` header value names the local machine.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        let other = a.get(i).copied().unwrap_or(0);
        diff |= usize::from(byte ^ other);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().method(Method::PUT).uri("/x");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request builds")
    }

    #[test]
    fn token_must_match() {
        let token = Secret::new("s3cret");
        let ok = write(&[("authorization", "Bearer s3cret")]);
        assert!(check_write(&ok, Some(&token)).is_ok());
        for bad in ["Bearer s3cre", "Bearer s3cret2", "s3cret", ""] {
            let req = write(&[("authorization", bad)]);
            assert!(
                matches!(
                    check_write(&req, Some(&token)),
                    Err(ApiError::Unauthorized(_))
                ),
                "{bad}"
            );
        }
    }

    fn unauthorized_message(headers: &[(&str, &str)]) -> String {
        let token = Secret::new("s3cret");
        match check_write(&write(headers), Some(&token)) {
            Err(ApiError::Unauthorized(message)) => message,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn token_errors_say_which_problem() {
        let missing = unauthorized_message(&[]);
        assert!(missing.contains("no Authorization header"), "{missing}");
        let scheme = unauthorized_message(&[("authorization", "Basic czNjcmV0")]);
        assert!(
            scheme.contains("does not use the Bearer scheme"),
            "{scheme}"
        );
        assert!(!scheme.contains("czNjcmV0"), "{scheme}");
        let wrong = unauthorized_message(&[("authorization", "Bearer guessed-token")]);
        assert!(wrong.contains("does not match"), "{wrong}");
        assert!(!wrong.contains("guessed-token"), "{wrong}");
    }

    #[test]
    fn cross_site_writes_are_rejected() {
        let other = write(&[("origin", "http://evil.test"), ("host", "127.0.0.1:8080")]);
        assert!(matches!(
            check_write(&other, None),
            Err(ApiError::Forbidden(_))
        ));
        let site = write(&[("sec-fetch-site", "cross-site")]);
        assert!(matches!(
            check_write(&site, None),
            Err(ApiError::Forbidden(_))
        ));
        let same = write(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(check_write(&same, None).is_ok());
    }

    #[test]
    fn rebound_host_needs_token() {
        let rebound = write(&[
            ("origin", "http://attacker.test"),
            ("host", "attacker.test"),
        ]);
        assert!(matches!(
            check_write(&rebound, None),
            Err(ApiError::Forbidden(_))
        ));
        let token = Secret::new("t0ken");
        let with_token = write(&[
            ("origin", "http://anomalyd.internal"),
            ("host", "anomalyd.internal"),
            ("authorization", "Bearer t0ken"),
        ]);
        assert!(check_write(&with_token, Some(&token)).is_ok());
        for host in ["localhost:8080", "127.0.0.1:9", "[::1]:8080", "127.0.0.1"] {
            let local = write(&[("origin", &format!("http://{host}")), ("host", host)]);
            assert!(check_write(&local, None).is_ok(), "{host}");
        }
    }
}
