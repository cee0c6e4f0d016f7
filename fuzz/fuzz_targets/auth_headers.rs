//! Request headers: the `/v1` bearer-token parser, the cross-origin check, the client-IP
//! resolution behind trusted proxies, and the `wj_session` cookie as the session layer reads
//! it.
//!
//! Input format (so that seeds are readable): the first line is the request method's
//! initial (`G`ET, `H`EAD, `O`PTIONS, `P`OST, p`U`T, pa`T`CH, `D`ELETE, anything else:
//! an extension method) followed by the peer's IP address (none if it does not parse).
//! Every further line is one header: its first byte names it (`A`uthorization, `O`rigin,
//! `S`ec-Fetch-Site, `X`-Forwarded-For, `C`ookie, anything else: an unrelated header) and
//! the rest is its value. Values that are not valid header values are skipped, as the HTTP
//! server would refuse them; at most 3 Authorization headers are kept.
//!
//! The session cookie: Workjet has no cookie parser of its own; tower-sessions (through
//! tower-cookies) splits each `Cookie` header on `;`, parses each piece with
//! `cookie::Cookie::parse_encoded`, keeps the last `wj_session` and parses its value as a
//! session id. That pipeline is replayed here with the same crates.

#![no_main]

use std::{net::IpAddr, str::FromStr};

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use tower_sessions::{
    cookie::{Cookie, CookieJar},
    session::Id,
};
use workjet::server::{
    security::{client_ip, cross_origin_allowed},
    v1::auth::{BearerToken, X_API_KEY, api_key, bearer_token},
};

const MAX_AUTHORIZATION_HEADERS: usize = 3;
const ALLOWED_ORIGINS: [&str; 2] = ["https://portal.workjet.dev", "http://localhost:3000"];
const TRUSTED_PROXIES: [&str; 4] = ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"];

fn method(initial: Option<&u8>) -> Method {
    match initial {
        Some(b'G') | None => Method::GET,
        Some(b'H') => Method::HEAD,
        Some(b'O') => Method::OPTIONS,
        Some(b'P') => Method::POST,
        Some(b'U') => Method::PUT,
        Some(b'T') => Method::PATCH,
        Some(b'D') => Method::DELETE,
        Some(_) => Method::from_bytes(b"PROPFIND").expect("a valid method"),
    }
}

fn header_name(selector: u8) -> HeaderName {
    match selector {
        b'A' => header::AUTHORIZATION,
        b'O' => header::ORIGIN,
        b'S' => HeaderName::from_static("sec-fetch-site"),
        b'X' => HeaderName::from_static("x-forwarded-for"),
        b'C' => header::COOKIE,
        b'K' => X_API_KEY,
        _ => HeaderName::from_static("x-unrelated"),
    }
}

fn check_bearer(headers: &HeaderMap) {
    let values: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    match bearer_token(headers) {
        BearerToken::Absent => assert!(values.is_empty(), "Absent with {} Authorization headers", values.len()),
        BearerToken::Invalid(message) => {
            assert!(!values.is_empty(), "Invalid without an Authorization header");
            assert!(!message.is_empty());
        }
        BearerToken::Token(token) => {
            assert_eq!(values.len(), 1, "a token from several Authorization headers");
            let text = values[0].to_str().expect("a token comes from an ASCII header");
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| b.is_ascii_graphic()), "token with spaces or control characters: {token:?}");
            // The token is the end of the value (but for trailing blanks), after `Bearer` and blanks.
            let blank = |c: char| c == ' ' || c == '\t';
            let trimmed = text.trim_matches(blank);
            let before = trimmed.strip_suffix(token).unwrap_or_else(|| panic!("token {token:?} does not end {text:?}"));
            assert!(before.ends_with(blank), "no blank between scheme and token in {text:?}");
            assert!(before.trim_matches(blank).eq_ignore_ascii_case("bearer"), "scheme is not Bearer in {text:?}");
            // And the same value always gives the same token.
            let mut again = HeaderMap::new();
            again.insert(header::AUTHORIZATION, values[0].clone());
            assert_eq!(bearer_token(&again), BearerToken::Token(token));
        }
    }
}

/// The key the gate reads: Authorization or x-api-key, never two different keys.
fn check_api_key(headers: &HeaderMap) {
    let x_api_key: Vec<&HeaderValue> = headers.get_all(X_API_KEY).iter().collect();
    let bearer = bearer_token(headers);
    match api_key(headers) {
        BearerToken::Absent => assert!(x_api_key.is_empty() && bearer == BearerToken::Absent),
        BearerToken::Invalid(message) => assert!(!message.is_empty()),
        BearerToken::Token(token) => {
            assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
            match bearer {
                BearerToken::Token(other) => assert_eq!(other, token, "two different keys were accepted"),
                BearerToken::Absent => {
                    assert_eq!(x_api_key.len(), 1);
                    assert_eq!(x_api_key[0].to_str().expect("ascii").trim_matches([' ', '\t']), token);
                }
                BearerToken::Invalid(_) => panic!("an invalid Authorization header was overridden by x-api-key"),
            }
        }
    }
}

fn check_cross_origin(method: &Method, headers: &HeaderMap) {
    let allowed_origins: Vec<String> = ALLOWED_ORIGINS.iter().map(|o| o.to_string()).collect();
    let allowed = cross_origin_allowed(method, headers, &allowed_origins);
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        assert!(allowed, "a safe method was refused");
        return;
    }
    let origin = headers.get(header::ORIGIN);
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    let origin_trusted = origin.and_then(|o| o.to_str().ok()).is_some_and(|o| ALLOWED_ORIGINS.contains(&o));
    let browser_same_origin = matches!(fetch_site, Some(b"same-origin") | Some(b"none"));
    let not_a_browser = origin.is_none() && fetch_site.is_none();
    assert_eq!(allowed, origin_trusted || browser_same_origin || not_a_browser, "cross-origin decision for {method} {headers:?}");
}

fn check_client_ip(peer: Option<IpAddr>, headers: &HeaderMap) {
    let trusted: Vec<IpNet> = TRUSTED_PROXIES.iter().map(|n| n.parse().expect("a valid network")).collect();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let resolved = client_ip(peer, headers, &trusted);
    let Some(peer) = peer else {
        assert_eq!(resolved, None, "an address without a peer");
        return;
    };
    let resolved = resolved.expect("a peer always gives an address");
    if !is_trusted(&peer) {
        assert_eq!(resolved, peer, "X-Forwarded-For believed from an untrusted peer");
        return;
    }
    if resolved != peer {
        assert!(!is_trusted(&resolved), "resolved to one of our own proxies: {resolved}");
        let listed = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|part| part.trim().parse::<IpAddr>().ok() == Some(resolved));
        assert!(listed, "resolved to {resolved}, which X-Forwarded-For does not list");
    }
}

/// What the session layer does with the `Cookie` headers.
fn check_session_cookie(headers: &HeaderMap) {
    let mut jar = CookieJar::new();
    for value in headers.get_all(header::COOKIE) {
        if let Ok(text) = std::str::from_utf8(value.as_bytes()) {
            for piece in text.split(';') {
                if let Ok(cookie) = Cookie::parse_encoded(piece.to_owned()) {
                    jar.add_original(cookie);
                }
            }
        }
    }
    let Some(cookie) = jar.get("wj_session") else { return };
    if let Ok(id) = Id::from_str(cookie.value()) {
        // A session id is 16 bytes in unpadded URL-safe base64: it round-trips exactly.
        assert_eq!(id.to_string(), cookie.value(), "session id does not round-trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let method = method(first.first());
    let peer = first.get(1..).and_then(|rest| std::str::from_utf8(rest).ok()).and_then(|text| text.trim().parse::<IpAddr>().ok());

    let mut headers = HeaderMap::new();
    let mut authorization = 0;
    for line in lines {
        let Some((&selector, value)) = line.split_first() else { continue };
        let name = header_name(selector);
        let Ok(value) = HeaderValue::from_bytes(value) else { continue };
        if name == header::AUTHORIZATION {
            if authorization == MAX_AUTHORIZATION_HEADERS {
                continue;
            }
            authorization += 1;
        }
        headers.append(name, value);
    }

    check_bearer(&headers);
    check_api_key(&headers);
    check_cross_origin(&method, &headers);
    check_client_ip(peer, &headers);
    check_session_cookie(&headers);
});
