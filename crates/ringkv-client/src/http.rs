//! The one HTTP client a [`crate::Client`] sends everything through: one
//! connection pool, the token on every request, and the scheme — `https`
//! when the client was given the CA that the nodes' certificates chain to
//! (`[client_tls]` on the nodes). Public, so tools can reach the other
//! endpoints (`/status`, `/admin/*`) set up exactly the same way.

use crate::error::Error;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Certificate, Method, RequestBuilder};

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    scheme: &'static str,
}

impl Http {
    /// A client sending `token` (if any) and trusting only `ca_pem` (PEM,
    /// one or more certificates) for HTTPS; plain HTTP without one.
    pub fn new(token: Option<&str>, ca_pem: Option<&[u8]>) -> Result<Http, Error> {
        // Straight to the nodes: routing names the node to talk to, which a
        // proxy would defeat.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers(token)?);
        if let Some(pem) = ca_pem {
            let certs = Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::BadCaCertificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(Error::BadCaCertificate("no certificate in it".into()));
            }
            builder = builder.tls_built_in_root_certs(false).https_only(true);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Http {
            client: builder.build().map_err(Error::Setup)?,
            scheme: if ca_pem.is_some() { "https" } else { "http" },
        })
    }

    /// `method` on `node` (`host:port`); `path` includes the query.
    pub fn request(&self, method: Method, node: &str, path: &str) -> RequestBuilder {
        let url = format!("{}://{node}{path}", self.scheme);
        self.client.request(method, url)
    }
}

/// The headers every request carries: the token, marked sensitive so the
/// HTTP stack never prints it.
fn headers(token: Option<&str>) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::BadToken)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}
