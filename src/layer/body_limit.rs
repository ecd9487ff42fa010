//! A declared body (`Content-Length`) over the route's `max_body_bytes` (else the
//! server's) is `413` before anything else of the route runs, a credential check
//! included; a body that grows past the limit while streaming is stopped by the
//! forward step (`body.rs`).

use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, proceed, Early, Rejection, Target};
use crate::body::Body;
use crate::error::GatewayError;

unit_layer!(BodyLimitLayer => BodyLimit);

/// The body limit of a routed request.
pub fn max_body<B>(req: &Request<B>) -> Result<u64, GatewayError> {
    let config = &ctx(req)?.snap.config;
    let route = match req.extensions().get::<Target>() {
        Some(Target::Route(i)) => config.router.routes().get(*i),
        _ => None,
    };
    Ok(route
        .and_then(|r| r.max_body_bytes)
        .unwrap_or(config.server.max_body_bytes))
}

fn check<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let Some(len) = req.headers().get(CONTENT_LENGTH) else {
        return Ok(());
    };
    let len: u64 = len
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(GatewayError::BadRequest("invalid Content-Length"))?;
    if len > max_body(req)? {
        return Err(GatewayError::PayloadTooLarge);
    }
    Ok(())
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let checked = check(&req);
        proceed(checked, || self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{recorder, routed, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn a_declared_body_over_the_routes_limit_is_413_before_anything_else() {
        let s = snapshot(
            "[[routes]]\nname = \"small\"\npath = \"/small/**\"\nupstream = \"echo\"\n\
             max_body_bytes = \"10B\"\n",
        );
        let send = |len: &str| {
            let mut req = routed(&s, "/small/x", "small");
            req.headers_mut()
                .insert(CONTENT_LENGTH, len.parse().expect("value"));
            BodyLimitLayer.layer(recorder()).oneshot(req)
        };
        assert!(send("10").await.is_ok());
        assert!(matches!(
            send("11").await,
            Err(Rejection {
                error: GatewayError::PayloadTooLarge,
                ..
            })
        ));
        assert!(matches!(
            send("ten").await,
            Err(Rejection {
                error: GatewayError::BadRequest(_),
                ..
            })
        ));
    }
}
