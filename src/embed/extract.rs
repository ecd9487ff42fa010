//! `Principal` and `Scopes` as axum extractors (feature `axum`): a handler that takes
//! a [`Principal`] gets the verified caller, or the request is refused `401` (the
//! handler sits behind no [`super::AuthLayer`], or on a public route);
//! `Option<Principal>` serves optional routes.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use super::render::{Denial, DenialRenderer, JsonRenderer};
use super::Scopes;
use crate::auth::principal::Principal;

/// The extractor's refusal: the default renderer's `401`.
#[derive(Debug)]
pub struct MissingPrincipal;

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> Response {
        JsonRenderer::default()
            .render(&Denial::MissingToken)
            .map(axum_core::body::Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scopes {
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Scopes>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}
