//! Benchmark baseline for `bench/proxy.sh`: the smallest proxy that does what Waggle's `/api` must
//! do per request — read and hash the body, set `Content-Digest` and the user and instance
//! headers, sign with RFC 9421 (Waggle's own signing code), forward through the same pooled
//! hyper-util client, stream the answer back — and nothing else: no AppAPI authentication, no
//! header hygiene, no CSRF check, no middleware, no timeouts, no spooling (bodies are kept in
//! memory), no error handling beyond 502. It shows where hyper and Tokio put the floor on this
//! machine, so Waggle's figures can be read against it. Not for production use.
//!
//! Usage: `bench_minproxy <port> <upstream base URL, e.g. http://127.0.0.1:8080>`; listens on
//! 127.0.0.1 only. Same runtime choice as Waggle (`waggle::cli::runtime`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use waggle::signing::{self, SigningKey};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: String,
    key: SigningKey,
}

impl Proxy {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match self.forward(request).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("bench_minproxy: {e}");
                let mut response = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Box<dyn std::error::Error>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{}{path}", self.upstream).parse()?;
        let mut headers = parts.headers;
        headers.remove(http::header::HOST);
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(waggle::headers::CONTENT_DIGEST, signing::content_digest_value(&body).parse()?);
        headers.insert(waggle::headers::X_WAGGLE_USER, HeaderValue::from_static("alice"));
        headers.insert(waggle::headers::X_WAGGLE_INSTANCE, HeaderValue::from_static("ocbench"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let nonce = signing::random_nonce(&mut rand::rng());
        let message = signing::Message::from_uri(&parts.method, &uri, &headers);
        let signed = signing::sign_request(
            &self.key,
            signing::Purpose::Api,
            &message,
            &signing::api_components(),
            now,
            &nonce,
        )?;
        signed.apply(&mut headers)?;
        let mut upstream = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(Full::new(body).map_err(|e| match e {}).boxed())?;
        *upstream.headers_mut() = headers;
        let response = self.client.request(upstream).await?;
        Ok(response.map(|b| b.map_err(|e| Box::new(e) as _).boxed()))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: bench_minproxy <port> <upstream base URL>".into());
    };
    let port: u16 = port.parse()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let proxy = Arc::new(Proxy {
        client: Client::builder(TokioExecutor::new()).build(connector),
        upstream: upstream.trim_end_matches('/').to_owned(),
        key: SigningKey::from_tenant_key("k1", "bench-tenant-key-0123456789abcdef"),
    });
    waggle::cli::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let proxy = Arc::clone(&proxy);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let proxy = Arc::clone(&proxy);
                    async move { Ok::<_, Infallible>(proxy.handle(request).await) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}
