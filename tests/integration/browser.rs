//! A minimal browser for tests: follows nothing by itself, keeps the `wj_session` cookie and
//! the `wj_signin` cookie of a sign-in in progress (sent, as a browser would, only to the
//! callback path), and walks the sign-in flow through a test identity provider.

use std::time::Duration;

use reqwest::{Response, header};

use crate::{helpers::TestApp, idp::TestIdp};

/// One browser profile (a cookie jar with just `wj_session` and `wj_signin`).
pub struct Browser {
    pub client: reqwest::Client,
    pub cookie: Option<String>,
    /// The raw `Set-Cookie` header of the last response that set `wj_session`.
    pub last_set_cookie: Option<String>,
    /// The sealed `wj_signin` value, while a sign-in is in progress.
    pub signin: Option<String>,
    /// The raw `Set-Cookie` header of the last response that set (or removed) `wj_signin`.
    pub last_signin_set_cookie: Option<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A request (body included) that takes longer than this fails the test with its method and
    /// URL, instead of hanging the whole run: no page or server function takes seconds here.
    const TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Self::TIMEOUT).build().expect("client");
        Self { client, cookie: None, last_set_cookie: None, signin: None, last_signin_set_cookie: None }
    }

    fn absorb(&mut self, response: &Response) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let (slot, last) = if text.starts_with("wj_session=") {
                (&mut self.cookie, &mut self.last_set_cookie)
            } else if text.starts_with("wj_signin=") {
                (&mut self.signin, &mut self.last_signin_set_cookie)
            } else {
                continue;
            };
            *last = Some(text.to_owned());
            let value = text.split_once('=').map(|(_, rest)| rest).unwrap_or_default().split(';').next().unwrap_or_default();
            let removed = value.is_empty() || text.to_ascii_lowercase().contains("max-age=0");
            *slot = if removed { None } else { Some(value.to_owned()) };
        }
    }

    fn with_cookie(&self, url: &str, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut pairs = Vec::new();
        if let Some(c) = &self.cookie {
            pairs.push(format!("wj_session={c}"));
        }
        // `wj_signin` has `Path=/auth/google/callback`.
        let path = url::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_default();
        if let Some(c) = &self.signin
            && path.starts_with("/auth/google/callback")
        {
            pairs.push(format!("wj_signin={c}"));
        }
        if pairs.is_empty() { request } else { request.header(header::COOKIE, pairs.join("; ")) }
    }

    pub async fn get(&mut self, url: &str) -> Response {
        let response = self.with_cookie(url, self.client.get(url)).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.absorb(&response);
        response
    }

    /// A same-origin form POST, as the portal's own pages send it.
    pub async fn post(&mut self, url: &str, origin: &str, body: &str) -> Response {
        let request = self
            .with_cookie(url, self.client.post(url))
            .header(header::ORIGIN, origin)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_owned());
        let response = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.absorb(&response);
        response
    }

    /// Calls a portal server function (`/api/<name>`) with form-encoded arguments.
    pub async fn server_fn(&mut self, app: &TestApp, name: &str, body: &str) -> Response {
        let origin = app.base_url.clone();
        let mut response = self.post(&app.url(&format!("/api/{name}")), &origin, body).await;
        // Server functions answer JSON; keep the status and body for the caller.
        if response.status().is_redirection() {
            response = self.get(&app.url("/")).await;
        }
        response
    }

    /// Walks `/auth/google` → provider → callback; returns where the browser lands.
    pub async fn sign_in(&mut self, app: &TestApp, return_to: Option<&str>) -> String {
        self.sign_in_at(&app.base_url, return_to).await
    }

    /// [`Browser::sign_in`] on a server given by its base URL.
    pub async fn sign_in_at(&mut self, base_url: &str, return_to: Option<&str>) -> String {
        let start = match return_to {
            Some(r) => format!("{base_url}/auth/google?return_to={}", workjet::urls::encode_query_value(r)),
            None => format!("{base_url}/auth/google"),
        };
        let response = self.get(&start).await;
        let to_provider = location(&response);
        if to_provider.starts_with("/login") {
            return to_provider;
        }
        let at_provider = self.client.get(&to_provider).send().await.unwrap_or_else(|e| panic!("GET {to_provider}: {e}"));
        let callback = location(&at_provider);
        let response = self.get(&callback).await;
        location(&response)
    }

    /// Starts a sign-in and returns the provider's redirect to the callback, unused.
    pub async fn begin_sign_in(&mut self, app: &TestApp) -> String {
        let response = self.get(&app.url("/auth/google")).await;
        let to_provider = location(&response);
        let at_provider = self.client.get(&to_provider).send().await.unwrap_or_else(|e| panic!("GET {to_provider}: {e}"));
        location(&at_provider)
    }
}

/// The `Location` header of a redirect.
pub fn location(response: &Response) -> String {
    assert!(response.status().is_redirection(), "expected a redirect, got {} for {}", response.status(), response.url());
    response.headers()[header::LOCATION].to_str().expect("ascii").to_owned()
}

/// A provider and an app configured to sign in with it.
pub async fn app_with_idp(backend: crate::helpers::Backend, extra: &[(&str, String)]) -> (TestApp, TestIdp) {
    let idp = TestIdp::start().await;
    let mut settings = idp.settings();
    settings.extend(extra.iter().cloned());
    let app = crate::helpers::spawn_app_with(backend, &settings).await.expect("app");
    (app, idp)
}
