//! Form bodies (`application/x-www-form-urlencoded` only, at most
//! [`MAX_FORM_BYTES`]): a parameter sent twice is
//! `invalid_request` (RFC 6749 §3.2), one sent empty counts as absent.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use super::{OAuthError, MAX_FORM_BYTES};

/// The parameters of a form body: each at most once, empty ones dropped.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.contains_key(k.as_ref()) {
                return Err(OAuthError::invalid_request(
                    "a parameter is included more than once",
                ));
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Form(map))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn require(&self, k: &str, d: &'static str) -> Result<&str, OAuthError> {
        self.get(k).ok_or(OAuthError::invalid_request(d))
    }
}

/// Reads a form body of at most [`MAX_FORM_BYTES`] after checking the content type.
pub(crate) async fn read_form<B>(req: Request<B>) -> Result<(HeaderMap, Form), OAuthError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is too large",
            )
        })?
        .to_bytes();
    Ok((parts.headers, Form::parse(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeats_and_drop_empty_values() {
        let f =
            Form::parse(b"grant_type=password&username=a%20b&password=p%26q&scope=").expect("form");
        assert_eq!(f.get("username"), Some("a b"));
        assert_eq!(f.get("password"), Some("p&q"));
        assert_eq!(f.get("scope"), None);
        let e = Form::parse(b"username=a&username=b").expect_err("repeat");
        assert_eq!(e.code, "invalid_request");
    }
}
