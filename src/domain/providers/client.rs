//! The pooled HTTP client a provider is called with. A provider reached over plain HTTP
//! (`http://`, a model server nearby) is called through [`h1`](super::h1), an HTTP/1.1 client
//! with no task of its own, so that a relayed stream's chunks are read and written by one task;
//! one reached over TLS (`https://`) through hyper-util's connection pool directly (HTTP/2 by
//! ALPN where the provider offers it), the provider's endpoint parsed once into a [`Uri`]. (A
//! general-purpose client re-parses the URL, runs redirect and retry layers and matches proxy
//! rules on every request; none of that is wanted here: a provider's answer is relayed as it
//! is, redirects included.)
//!
//! TLS is rustls with the webpki roots; the connect timeout covers TCP and TLS together.
//!
//! A thread that serves connections of its own (`WJ_SERVE_THREADS`) calls providers through
//! pools of its own too ([`own_pools_on_this_thread`]): a connection it opens is driven by its
//! runtime and carries only its requests, so a relayed stream's upstream reads and downstream
//! writes stay on one thread. Every other thread shares one pool per provider.
//!
//! An egress proxy named by the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`, as curl reads them) is decided once per provider, when the registry is built:
//! a provider the proxy intercepts is called through reqwest with that proxy (CONNECT for
//! `https`), every other one directly.

use std::{
    cell::Cell,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    client::{
        legacy::{Client, connect::HttpConnector},
        proxy::matcher::Matcher,
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};

/// TCP, then TLS for `https`, within the connect timeout (boxed: the pool wants a connector
/// whose future is `Unpin`).
type Connector = tower::util::BoxCloneSyncService<Uri, hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>, tower::BoxError>;

/// A provider's answer's body, from whichever client called it.
#[derive(Debug)]
pub enum UpstreamBody {
    Plain(super::h1::Body),
    Pooled(Incoming),
    Proxied(reqwest::Body),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Plain(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Pooled(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Proxied(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain(body) => body.is_end_stream(),
            Self::Pooled(body) => body.is_end_stream(),
            Self::Proxied(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain(body) => body.size_hint(),
            Self::Pooled(body) => body.size_hint(),
            Self::Proxied(body) => body.size_hint(),
        }
    }
}
/// A provider's answer, its body still to be read.
pub type UpstreamResponse = Response<UpstreamBody>;

/// One provider's pooled client.
#[derive(Clone)]
pub enum UpstreamClient {
    /// Over plain HTTP (`http://`).
    Plain(Pools<Arc<super::h1::Connections>>),
    /// Over TLS (`https://`).
    Direct(Pools<HyperPool>),
    /// Through the egress proxy the environment names for the provider.
    Proxied(reqwest::Client),
}

/// Why a request got no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection (TCP and TLS) was not made within the connect timeout.
    ConnectTimedOut,
    /// The connection could not be made.
    Unreachable,
    /// This server could not open a socket for the connection: it is out of descriptors (its
    /// open-file limit, `EMFILE`, or the system's, `ENFILE`) or of kernel memory (`ENOBUFS`,
    /// `ENOMEM`). Not the provider's fault.
    OutOfSockets,
    /// The connection failed before an answer's headers.
    Broken,
}

/// A failed request, as its client reported it.
#[derive(Debug)]
pub enum Failure {
    Plain(super::h1::Error),
    Direct(hyper_util::client::legacy::Error),
    Proxied(reqwest::Error),
}

impl UpstreamClient {
    /// The client for `provider`'s `endpoint`: through the proxy `proxies` names for it, if any.
    pub fn new(provider: &str, endpoint: &Uri, connect_timeout: Duration, proxies: &Matcher) -> Result<Self, String> {
        let Some(proxy) = proxies.intercept(endpoint) else { return Ok(Self::direct(endpoint, connect_timeout)) };
        if !matches!(proxy.uri().scheme_str(), Some("http" | "https")) {
            return Err("the environment names a SOCKS proxy for it (ALL_PROXY?), which Workjet cannot use: name an HTTP(S) proxy, or list the provider's host in NO_PROXY".to_owned());
        }
        let mut via = reqwest::Proxy::all(proxy.uri().to_string()).map_err(|_| "the proxy's URL is not one reqwest accepts".to_owned())?;
        if let Some(auth) = proxy.basic_auth() {
            via = via.custom_http_auth(auth.clone());
        }
        // The proxy's host and port only: its URL may carry credentials.
        tracing::info!(
            provider,
            proxy.host = proxy.uri().host().unwrap_or_default(),
            proxy.port = proxy.uri().port_u16(),
            "calling the provider through the environment's proxy"
        );
        reqwest::Client::builder()
            .proxy(via)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(Self::Proxied)
            .map_err(|e| format!("cannot build its HTTP client: {e}"))
    }

    /// The client for an endpoint called directly: by its scheme.
    fn direct(endpoint: &Uri, connect_timeout: Duration) -> Self {
        if endpoint.scheme_str() == Some("http") {
            Self::Plain(Pools::new(move || Arc::new(super::h1::Connections::new(connect_timeout))))
        } else {
            Self::Direct(Pools::new(move || pooled_client(connect_timeout)))
        }
    }

    /// Sends `request`; answers when the answer's headers have arrived.
    pub async fn send(&self, request: Request<Bytes>) -> Result<UpstreamResponse, Failure> {
        match self {
            Self::Plain(pools) => {
                let response = pools.for_this_thread().send(request).await.map_err(Failure::Plain)?;
                Ok(response.map(UpstreamBody::Plain))
            }
            Self::Direct(pools) => {
                let answer = pools.for_this_thread().request(request.map(Full::new));
                answer.await.map(|response| response.map(UpstreamBody::Pooled)).map_err(Failure::Direct)
            }
            Self::Proxied(client) => {
                let request = reqwest::Request::try_from(request).map_err(Failure::Proxied)?;
                let response = client.execute(request).await.map_err(Failure::Proxied)?;
                Ok(Response::from(response).map(UpstreamBody::Proxied))
            }
        }
    }
}

thread_local! {
    /// Whether this thread calls providers through pools of its own.
    static OWN_POOLS: Cell<bool> = const { Cell::new(false) };
}

/// From now on, this thread calls providers through connection pools of its own (one per
/// provider), made when it first calls each. For a thread that serves connections on a runtime
/// of its own, which then drives every connection it opens.
pub fn own_pools_on_this_thread() {
    OWN_POOLS.set(true);
}

/// hyper-util's pool of connections, each driven by a task of its own.
pub type HyperPool = Client<Connector, Full<Bytes>>;

/// A provider's connection pools: the one every thread shares, and those of the threads that
/// keep their own.
pub struct Pools<P: Send>(Arc<PoolSet<P>>);

impl<P: Send> Clone for Pools<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

struct PoolSet<P: Send> {
    shared: P,
    /// By thread. `ThreadLocal` gives an ended thread's slot to the next thread that gets its
    /// id; only serving threads use these slots, and they live as long as the server whose
    /// registry holds these pools, so none takes over another's pool.
    own: thread_local::ThreadLocal<P>,
    make: Box<dyn Fn() -> P + Send + Sync>,
}

impl<P: Send> Pools<P> {
    /// Pools made by `make` (each call a new, empty pool).
    fn new(make: impl Fn() -> P + Send + Sync + 'static) -> Self {
        Self(Arc::new(PoolSet { shared: make(), own: thread_local::ThreadLocal::new(), make: Box::new(make) }))
    }

    /// The pool this thread calls through.
    fn for_this_thread(&self) -> &P {
        if OWN_POOLS.get() { self.0.own.get_or(|| (self.0.make)()) } else { &self.0.shared }
    }
}

/// A new, empty pool of direct connections through hyper.
fn pooled_client(connect_timeout: Duration) -> HyperPool {
    let mut http = HttpConnector::new();
    // https:// too: the TLS layer above takes it from here.
    http.enforce_http(false);
    http.set_nodelay(true);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(tokio_rustls::rustls::crypto::ring::default_provider())
        .expect("ring supports the default TLS versions")
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(512)
        .pool_timer(TokioTimer::new())
        .build(Connector::new(tower::timeout::Timeout::new(tls, connect_timeout)))
}

impl Failure {
    /// What the failure means.
    pub fn kind(&self) -> SendError {
        use super::h1::Error as Plain;
        match self {
            Self::Plain(Plain::Connect(error)) => connect_failure(error),
            Self::Plain(Plain::NotPlainHttp) => SendError::Unreachable,
            Self::Plain(Plain::ConnectTimedOut) => SendError::ConnectTimedOut,
            Self::Plain(_) => SendError::Broken,
            Self::Direct(error) if error.is_connect() => connect_failure(error),
            Self::Direct(_) => SendError::Broken,
            Self::Proxied(error) if error.is_connect() && connect_failure(error) == SendError::OutOfSockets => SendError::OutOfSockets,
            Self::Proxied(error) if error.is_timeout() => SendError::ConnectTimedOut,
            Self::Proxied(error) if error.is_connect() => SendError::Unreachable,
            Self::Proxied(_) => SendError::Broken,
        }
    }
}

/// The error with its causes, for the log (no URL: hyper's errors carry none; reqwest's own
/// message, which names it, is left out for its causes).
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::error::Error as _;
        let mut source: Option<&(dyn std::error::Error + 'static)> = match self {
            Self::Plain(error) => {
                write!(f, "{error}")?;
                error.source()
            }
            Self::Direct(error) => {
                write!(f, "{error}")?;
                error.source()
            }
            Self::Proxied(error) => {
                f.write_str("the request through the proxy failed")?;
                error.source()
            }
        };
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// What a failed connect means, told by the first of `error`'s causes that says: the connect
/// timeout, or an I/O error (this server out of sockets, timed out, or anything else: the
/// provider unreachable). The one place both clients' connect failures are classified.
fn connect_failure(error: &(dyn std::error::Error + 'static)) -> SendError {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.is::<tower::timeout::error::Elapsed>() {
            return SendError::ConnectTimedOut;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io {
                io if is_out_of_sockets(io) => SendError::OutOfSockets,
                io if io.kind() == std::io::ErrorKind::TimedOut => SendError::ConnectTimedOut,
                _ => SendError::Unreachable,
            };
        }
        source = cause.source();
    }
    SendError::Unreachable
}

/// Whether `error` is this machine running out of what a new socket needs. (Not
/// `EADDRNOTAVAIL`: besides local ports running out, it is also what an address this host
/// cannot reach gives, a provider's misconfiguration that must not pass for a passing
/// shortage.)
fn is_out_of_sockets(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// The URI of a provider's endpoint (`None` if its URL is not one hyper can send to).
pub fn uri_of(url: &url::Url) -> Option<Uri> {
    url.as_str().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use http_body_util::BodyExt as _;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    fn post(uri: &str) -> Request<Bytes> {
        Request::post(uri).body(Bytes::from_static(b"{}")).expect("request")
    }

    /// The client a provider at `endpoint` gets without a proxy.
    fn direct(endpoint: &str) -> UpstreamClient {
        UpstreamClient::direct(&endpoint.parse().expect("uri"), Duration::from_secs(5))
    }

    /// hyper's pooled client, whatever the scheme.
    fn through_hyper() -> UpstreamClient {
        UpstreamClient::Direct(Pools::new(|| pooled_client(Duration::from_secs(5))))
    }

    async fn failure(client: &UpstreamClient, uri: &str) -> (SendError, String) {
        let error = client.send(post(uri)).await.expect_err("fails");
        (error.kind(), error.to_string())
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_at_once() {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        let uri = format!("http://{closed}/v1/chat/completions");
        for client in [direct(&uri), through_hyper()] {
            let started = Instant::now();
            let (kind, message) = failure(&client, &uri).await;
            assert_eq!(kind, SendError::Unreachable, "{message}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }

    /// The connect timeout covers the TLS handshake: a server that accepts and never
    /// answers the handshake times out as a connection, not as a missing answer.
    #[tokio::test]
    async fn a_tls_handshake_that_never_ends_is_a_connect_timeout() {
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = silent.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let (socket, _) = silent.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let started = Instant::now();
        let uri = format!("https://{addr}/v1/chat/completions");
        let client = UpstreamClient::direct(&uri.parse().expect("uri"), Duration::from_millis(300));
        assert!(matches!(client, UpstreamClient::Direct(_)), "https goes through hyper");
        let (kind, message) = failure(&client, &uri).await;
        assert_eq!(kind, SendError::ConnectTimedOut, "{message}");
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_broken() {
        let rude = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = rude.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = rude.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
            }
        });
        let uri = format!("http://{addr}/v1/chat/completions");
        let plain = direct(&uri);
        assert!(matches!(plain, UpstreamClient::Plain(_)), "http goes through the plain client");
        for client in [plain, through_hyper()] {
            let (kind, message) = failure(&client, &uri).await;
            assert_eq!(kind, SendError::Broken, "{message}");
        }
    }

    /// A provider the environment's proxy intercepts is called through it (with the proxy's
    /// credentials); one `NO_PROXY` names is called directly.
    #[tokio::test]
    async fn a_provider_behind_the_environments_proxy_is_called_through_it() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let seen = tokio::spawn(async move {
            let (mut socket, _) = proxy.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).await.expect("read");
                assert!(n > 0, "the request's head arrives");
                head.extend_from_slice(&buffer[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"via\":\"p\"}")
                .await
                .expect("write");
            String::from_utf8_lossy(&head).into_owned()
        });
        let endpoint: Uri = "http://provider.invalid/v1/chat/completions".parse().expect("uri");
        let proxies = Matcher::builder().http(format!("http://user:pw@{proxy_addr}")).build();
        let client = UpstreamClient::new("p", &endpoint, Duration::from_secs(2), &proxies).expect("builds");
        assert!(matches!(client, UpstreamClient::Proxied(_)));
        let response = client.send(post("http://provider.invalid/v1/chat/completions")).await.expect("answered by the proxy");
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), Bytes::from_static(b"{\"via\":\"p\"}"));
        let head = seen.await.expect("the proxy saw the request");
        assert!(head.starts_with("POST http://provider.invalid/v1/chat/completions HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("proxy-authorization: basic dxnlcjpwdw=="), "{head}");

        let bypassed = Matcher::builder().http(format!("http://{proxy_addr}")).no("provider.invalid").build();
        assert!(matches!(
            UpstreamClient::new("p", &endpoint, Duration::from_secs(2), &bypassed).expect("builds"),
            UpstreamClient::Plain(_)
        ));
        let socks = Matcher::builder().all(format!("socks5://user:pw@{proxy_addr}")).build();
        let refused =
            UpstreamClient::new("p", &endpoint, Duration::from_secs(2), &socks).err().expect("a SOCKS proxy is refused at start-up");
        assert!(refused.contains("SOCKS") && !refused.contains("pw"), "{refused}");
        let none = Matcher::builder().build();
        assert!(matches!(UpstreamClient::new("p", &endpoint, Duration::from_secs(2), &none).expect("builds"), UpstreamClient::Plain(_)));
    }

    /// A socket this server cannot open (the connector fails as `socket()` does at the
    /// open-file limit or out of kernel memory) is this server's shortage, through hyper's own
    /// error; a refused, unroutable or unassignable address stays the provider being
    /// unreachable.
    #[tokio::test]
    async fn a_socket_this_server_cannot_open_is_out_of_sockets() {
        for (errno, expected) in [
            (libc::EMFILE, SendError::OutOfSockets),
            (libc::ENFILE, SendError::OutOfSockets),
            (libc::ENOBUFS, SendError::OutOfSockets),
            (libc::ENOMEM, SendError::OutOfSockets),
            (libc::EADDRNOTAVAIL, SendError::Unreachable),
            (libc::ECONNREFUSED, SendError::Unreachable),
            (libc::EHOSTUNREACH, SendError::Unreachable),
        ] {
            let connector = Connector::new(tower::service_fn(move |_: Uri| async move {
                Err::<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>, tower::BoxError>(
                    std::io::Error::from_raw_os_error(errno).into(),
                )
            }));
            let client = UpstreamClient::Direct(Pools::new(move || Client::builder(TokioExecutor::new()).build(connector.clone())));
            let (kind, message) = failure(&client, "http://127.0.0.1:9/v1/chat/completions").await;
            assert_eq!(kind, expected, "errno {errno}: {message}");
            // The plain client's connect failing the same way.
            let plain = Failure::Plain(super::super::h1::Error::Connect(std::io::Error::from_raw_os_error(errno)));
            assert_eq!(plain.kind(), expected, "errno {errno}, plain: {plain}");
        }
    }

    /// A provider on a runtime of its own that answers each request with the client port of
    /// the connection it came on.
    fn provider_naming_connections() -> (std::net::SocketAddr, tokio::runtime::Runtime) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(peer.port().to_string()))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        (addr, runtime)
    }

    /// The client ports of `n` requests sent one after another.
    /// Waits after each answer: hyper's pool takes a connection back in a task of its own after
    /// the answer was read, and a busy machine can run that task after the next request has
    /// already opened a new connection (the plain client takes it back before the answer's
    /// last byte is handed out).
    async fn ports(client: &UpstreamClient, uri: &str, n: usize) -> Vec<String> {
        let mut ports = Vec::new();
        for _ in 0..n {
            let response = client.send(post(uri)).await.expect("answer");
            let body = response.into_body().collect().await.expect("body").to_bytes();
            ports.push(String::from_utf8(body.to_vec()).expect("utf-8"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ports
    }

    /// A thread that keeps pools of its own (a serving thread of `WJ_SERVE_THREADS`) calls a
    /// provider over connections of its own and reuses them; it never takes another thread's,
    /// even when that one is idle and its runtime alive. Other threads share one pool.
    #[test]
    fn a_thread_with_pools_of_its_own_calls_over_connections_of_its_own() {
        let (addr, _provider) = provider_naming_connections();
        let uri = format!("http://{addr}/v1/chat/completions");
        for (name, client) in [("plain", direct(&uri)), ("hyper", through_hyper())] {
            own_pools_or_shared(name, &client, &uri);
        }
    }

    fn own_pools_or_shared(name: &str, client: &UpstreamClient, uri: &str) {
        let uri = uri.to_owned();

        // Threads that share: two runtimes' requests, one connection.
        let shared_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let shared = shared_runtime.block_on(ports(client, &uri, 2));
        let again = std::thread::scope(|s| s.spawn(|| shared_runtime.block_on(ports(client, &uri, 1))).join().expect("thread"));
        assert_eq!(shared[0], shared[1], "{name}: the shared pool reuses its connection");
        assert_eq!(again[0], shared[0], "{name}: another thread without pools of its own shares it");

        // Two threads with pools of their own, each keeping its runtime (and connection) alive
        // until both are done.
        let both_done = std::sync::Barrier::new(2);
        let own: Vec<Vec<String>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        own_pools_on_this_thread();
                        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                        let ports = runtime.block_on(ports(client, &uri, 3));
                        both_done.wait();
                        ports
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        for ports in &own {
            assert!(ports.iter().all(|p| *p == ports[0]), "{name}: a thread reuses its own connection: {ports:?}");
            assert_ne!(ports[0], shared[0], "{name}: a thread with pools of its own does not take the shared pool's connection");
        }
        assert_ne!(own[0][0], own[1][0], "{name}: each thread has its own connection");
    }

    #[test]
    fn an_endpoint_url_becomes_the_same_uri() {
        for text in [
            "http://127.0.0.1:8080/v1/chat/completions",
            "https://example.openai.azure.com/openai/v1/chat/completions?api-version=2025-01-01",
        ] {
            let url = url::Url::parse(text).expect("url");
            assert_eq!(uri_of(&url).expect("uri").to_string(), text);
        }
    }
}
