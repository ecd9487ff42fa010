//! Header hygiene, applied to every request before routing (DESIGN.md principle 3).
//!
//! - the total size of the request headers is capped (`431`);
//! - header names containing `_` are refused (`400`) unless the operator allows them:
//!   many servers treat `X_Auth_Subject` as `X-Auth-Subject`, which would let a client
//!   smuggle an identity header past a filter that only knows the dashed spelling;
//! - every header in the reserved identity prefix (`x-auth-` by default), and every
//!   header named in `[identity] claim_headers`, is removed, in any case and with `_`
//!   for `-`, on public routes too: only Portcullis sets them.

use http::{HeaderMap, HeaderName};

use crate::error::GatewayError;

/// Checks and cleans the request headers in place.
pub fn apply(
    headers: &mut HeaderMap,
    max_bytes: usize,
    reject_underscores: bool,
    prefix: &str,
    extra_reserved: &[HeaderName],
) -> Result<(), GatewayError> {
    let is_reserved =
        |n: &str| n.starts_with(prefix) || extra_reserved.iter().any(|r| r.as_str() == n);
    let mut total = 0usize;
    let mut reserved = Vec::new();
    for (name, value) in headers.iter() {
        // Approximates the wire size: "name: value\r\n".
        total += name.as_str().len() + value.len() + 4;
        let n = name.as_str();
        if n.contains('_') {
            if reject_underscores {
                return Err(GatewayError::BadRequest(
                    "header names with '_' are not accepted",
                ));
            }
            if is_reserved(&n.replace('_', "-")) {
                reserved.push(name.clone());
            }
        } else if is_reserved(n) {
            reserved.push(name.clone());
        }
    }
    if total > max_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    for name in reserved {
        headers.remove(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn reserved_prefix_removed_in_every_spelling() {
        let mut h = map(&[
            ("X-Auth-Subject", "mallory"),
            ("x-auth-scopes", "admin"),
            ("X-AUTH-ROLES", "root"),
            ("accept", "*/*"),
        ]);
        apply(&mut h, 16384, true, "x-auth-", &[]).expect("ok");
        assert_eq!(h.len(), 1);
        let mut h = map(&[
            ("x_auth_subject", "mallory"),
            ("X_Auth-Roles", "root"),
            ("x_other", "1"),
        ]);
        apply(&mut h, 16384, false, "x-auth-", &[]).expect("ok");
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["x_other"]
        );
    }

    #[test]
    fn claim_headers_outside_the_prefix_are_reserved_too() {
        let extra = [HeaderName::from_static("x-user")];
        let mut h = map(&[
            ("X-User", "mallory"),
            ("x_user", "mallory"),
            ("x-username", "kept"),
        ]);
        apply(&mut h, 16384, false, "x-auth-", &extra).expect("ok");
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["x-username"]
        );
    }

    #[test]
    fn underscores_refused_by_default() {
        let mut h = map(&[("x_auth_subject", "mallory")]);
        assert!(matches!(
            apply(&mut h, 16384, true, "x-auth-", &[]),
            Err(GatewayError::BadRequest(_))
        ));
    }

    #[test]
    fn header_size_capped() {
        let mut h = map(&[("x-big", &"a".repeat(2000))]);
        assert!(matches!(
            apply(&mut h, 1024, true, "x-auth-", &[]),
            Err(GatewayError::HeadersTooLarge)
        ));
        assert!(apply(&mut h, 4096, true, "x-auth-", &[]).is_ok());
    }
}
