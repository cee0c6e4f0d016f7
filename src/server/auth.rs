//! Browser authentication: Google (OpenID Connect) sign-in, the sealed `wj_signin` cookie of
//! a sign-in in progress, the `wj_session` cookie, the built-in development identity
//! provider, and the portal's session middleware.

pub mod dev_idp;
pub mod oidc;
pub mod portal;
pub mod routes;
pub mod signin_cookie;
pub mod typed_session;
