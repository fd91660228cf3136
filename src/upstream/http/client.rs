//! The HTTP client Airlock reaches Streamable HTTP upstreams with: hyper's pooled HTTP/1.1
//! client over TCP (rustls for `https`, the platform's roots), whose connections acknowledge
//! what they receive at once.
//!
//! Why not the usual client: many servers leave Nagle's algorithm on (axum's default) and write
//! a Streamable HTTP answer in two pieces (an SSE priming event, then the response). Nagle holds
//! the second piece until the first is acknowledged, and on a kept-alive connection Linux delays
//! that acknowledgement up to 40 ms: every call stalled 44 ms behind Airlock, while a client
//! that opens a connection per request (rmcp's) never meets it. Setting `TCP_QUICKACK` after
//! each read sends the acknowledgement at once (the option does not stay set, so it is set
//! again every time).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body: one JSON message.
pub(crate) type Body = Full<Bytes>;

/// The client, cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct HttpClient(
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<QuickAckConnector>, Body>,
);

/// Why an HTTP client could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for HTTP upstreams")]
pub struct ClientError(#[source] rustls::Error);

impl HttpClient {
    pub fn new() -> Result<Self, ClientError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError)?
            .with_platform_verifier()
            .map_err(ClientError)?
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAckConnector(tcp));
        Ok(Self(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https),
        ))
    }

    pub fn get(&self, uri: &http::Uri) -> RequestBuilder {
        self.request(http::Method::GET, uri)
    }

    pub fn post(&self, uri: &http::Uri) -> RequestBuilder {
        self.request(http::Method::POST, uri)
    }

    pub fn delete(&self, uri: &http::Uri) -> RequestBuilder {
        self.request(http::Method::DELETE, uri)
    }

    fn request(&self, method: http::Method, uri: &http::Uri) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            parts: http::Request::builder().method(method).uri(uri.clone()),
            body: Ok(Bytes::new()),
        }
    }
}

/// An upstream's answer, its body read as it comes.
pub type Response = http::Response<hyper::body::Incoming>;

/// A request being put together (a small part of what reqwest's builder offers).
pub struct RequestBuilder {
    client: HttpClient,
    parts: http::request::Builder,
    body: Result<Bytes, serde_json::Error>,
}

impl RequestBuilder {
    /// Adds every header of `headers` (the upstream's configured ones).
    pub fn headers(mut self, headers: &http::HeaderMap) -> Self {
        if let Some(all) = self.parts.headers_mut() {
            all.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self
    }

    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        http::HeaderName: TryFrom<K>,
        <http::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        http::HeaderValue: TryFrom<V>,
        <http::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.parts = self.parts.header(name, value);
        self
    }

    /// `msg` as the JSON body.
    pub fn json(mut self, msg: &serde_json::Value) -> Self {
        self.body = serde_json::to_vec(msg).map(Bytes::from);
        self.parts = self
            .parts
            .header(http::header::CONTENT_TYPE, "application/json");
        self
    }

    pub async fn send(self) -> Result<Response, SendError> {
        let body = self.body.map_err(SendError::Json)?;
        let request = self.parts.body(Full::new(body)).map_err(SendError::Build)?;
        self.client
            .0
            .request(request)
            .await
            .map_err(SendError::Send)
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the message cannot be written as JSON")]
    Json(#[source] serde_json::Error),
    #[error("the request cannot be made")]
    Build(#[source] http::Error),
    #[error("the request failed")]
    Send(#[source] hyper_util::client::legacy::Error),
}

/// The body of `response`, as a stream of its bytes.
pub fn body_stream(
    response: Response,
) -> impl futures_util::Stream<Item = Result<Bytes, hyper::Error>> + Send {
    use http_body_util::BodyExt;
    response.into_body().into_data_stream()
}

/// hyper's TCP connector, handing out connections that acknowledge at once.
#[derive(Clone)]
pub struct QuickAckConnector(HttpConnector);

impl tower::Service<http::Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = <HttpConnector as tower::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(QuickAck(connecting.await?)) })
    }
}

/// A TCP connection that sets `TCP_QUICKACK` after every read that got data.
pub struct QuickAck(TokioIo<TcpStream>);

impl QuickAck {
    /// Best effort: without it a Nagle-bound server is slower, not wrong. (Only Linux has the
    /// option; elsewhere the delayed ACK stays as the system sets it.)
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn acknowledge_now(&self) {
        let socket = socket2::SockRef::from(self.0.inner());
        let _ = socket.set_tcp_quickack(true);
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn acknowledge_now(&self) {}
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.acknowledge_now();
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.inner().connected()
    }
}
