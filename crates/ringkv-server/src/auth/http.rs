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
        Err(Denied::BadCredential) if !access.has_users() => unauthorized(
            "this node has no users, so it accepts no token: send none, or configure \
             [auth] users in its config",
        ),
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
        // Never echo the header: a token sent without its scheme would come
        // back in the body, and from there reach logs and proxies.
        return Err(
            "unsupported Authorization scheme: use Bearer TOKEN or Basic USER:TOKEN".to_string(),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use axum::http::HeaderValue;

    fn presented(value: &str) -> Result<Presented, String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        decoded_credential(&headers)
    }

    #[test]
    fn bearer_and_basic_credentials_are_read_in_any_case() {
        assert!(matches!(presented("Bearer rk_a"), Ok(Presented::Token(t)) if t == "rk_a"));
        assert!(matches!(presented("bearer  rk_a "), Ok(Presented::Token(t)) if t == "rk_a"));
        let basic = format!("Basic {}", BASE64.encode("ada:rk_b"));
        let user_token = presented(&basic);
        assert!(matches!(user_token, Ok(Presented::UserToken(u, t)) if u == "ada" && t == "rk_b"));
        assert!(presented("Basic !!")
            .err()
            .unwrap()
            .contains("invalid Basic credential"));
        let no_colon = format!("Basic {}", BASE64.encode("ada"));
        assert!(presented(&no_colon).err().unwrap().contains("USER:TOKEN"));
        assert!(presented("Digest x").err().unwrap().contains("unsupported"));
        assert!(matches!(
            decoded_credential(&HeaderMap::new()),
            Ok(Presented::None)
        ));
    }

    async fn text(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await;
        String::from_utf8(body.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn refusals_are_401_with_a_challenge_or_403_and_say_why() {
        let no_users = refusal(&Denied::CredentialRequired {
            needed: Role::Admin,
            no_users: true,
        });
        assert_eq!(no_users.status(), StatusCode::UNAUTHORIZED);
        assert!(no_users.headers().contains_key(header::WWW_AUTHENTICATE));
        let sentence = text(no_users).await;
        assert!(sentence.contains("configure [auth] users"), "{sentence}");
        let forbidden = refusal(&Denied::Forbidden {
            user: "ada".into(),
            needed: Role::Write,
        });
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert!(!forbidden.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            text(forbidden).await,
            "user ada lacks the write role this needs\n"
        );
    }
}
