//! Applying [`super::rules`] to every HTTP request, before any handler
//! runs: a refused request changes nothing.
//!
//! A credential is `Authorization: Bearer TOKEN`, or `Basic` with
//! `USER:TOKEN` (so `curl -u admin:TOKEN` works). No or a bad credential
//! is `401` with `WWW-Authenticate: Bearer`; a user whose role is too low
//! is `403`. Each says why in one sentence.

use super::access::{Access, Credential, Denied};
use super::rules::http_needs;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::sync::Arc;

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn authorize(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(needed) = http_needs(request.method().as_str(), request.uri().path()) else {
        return next.run(request).await;
    };
    let decoded = decoded_credential(request.headers());
    let credential = match &decoded {
        Ok(credential) => credential.as_credential(),
        Err(message) => return unauthorized(message),
    };
    match access.check(credential, needed) {
        Ok(_) => next.run(request).await,
        Err(denied) => refusal(&denied),
    }
}

/// The `Authorization` header's credential, owned (Basic is decoded).
enum Presented {
    None,
    Token(String),
    UserToken(String, String),
}

impl Presented {
    fn as_credential(&self) -> Credential<'_> {
        match self {
            Presented::None => Credential::None,
            Presented::Token(token) => Credential::Token(token),
            Presented::UserToken(user, token) => Credential::UserToken { user, token },
        }
    }
}

const BAD_BASIC: &str = "invalid Basic credential: send base64 of USER:TOKEN";

fn decoded_credential(headers: &HeaderMap) -> Result<Presented, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Presented::None);
    };
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII".to_string())?;
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Presented::Token(rest.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(format!(
            "unsupported Authorization scheme {scheme:?}: use Bearer TOKEN or Basic USER:TOKEN"
        ));
    }
    let bytes = BASE64.decode(rest).map_err(|_| BAD_BASIC.to_string())?;
    let pair = String::from_utf8(bytes).map_err(|_| BAD_BASIC.to_string())?;
    let (user, token) = pair.split_once(':').ok_or_else(|| BAD_BASIC.to_string())?;
    Ok(Presented::UserToken(user.to_string(), token.to_string()))
}

fn unauthorized(message: &str) -> Response {
    let headers = [(header::WWW_AUTHENTICATE, "Bearer realm=\"ringkv\"")];
    (StatusCode::UNAUTHORIZED, headers, format!("{message}\n")).into_response()
}

/// `denied` as a 401 or 403 with its sentence.
fn refusal(denied: &Denied) -> Response {
    match denied {
        Denied::BadCredential => unauthorized("invalid credential: no user has this token"),
        Denied::CredentialRequired {
            needed,
            no_users: true,
        } => unauthorized(&format!(
            "this needs the {needed} role and this node has no users: configure \
             [auth] users in its config (`ringkv user add` makes the file)"
        )),
        Denied::CredentialRequired { needed, .. } => unauthorized(&format!(
            "this needs the {needed} role: send a token as Authorization: Bearer TOKEN"
        )),
        Denied::Forbidden { user, needed } => {
            let message = format!("user {user} lacks the {needed} role this needs\n");
            (StatusCode::FORBIDDEN, message).into_response()
        }
    }
}
