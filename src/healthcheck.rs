//! `waggle healthcheck`: the Docker HEALTHCHECK, so the image needs no curl. Calls `GET /heartbeat`
//! over HaRP's unix socket when `HP_SHARED_KEY` is set, else over TCP (`0.0.0.0` probes loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::{ListenOn, Settings};

/// Probes the running server; Ok only for `200 {"status":"ok"}`.
pub async fn run(settings: &Settings, timeout: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, probe(&settings.server.listen)).await.context("heartbeat timed out")?
}

async fn probe(listen: &ListenOn) -> anyhow::Result<()> {
    match listen {
        ListenOn::Tcp(addr) => {
            let target = SocketAddr::new(loopback_for(addr.ip()), addr.port());
            heartbeat(
                tokio::net::TcpStream::connect(target).await.with_context(|| format!("connect {target}"))?,
            )
            .await
        }
        ListenOn::Unix(path) => {
            heartbeat(
                tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connect {}", path.display()))?,
            )
            .await
        }
    }
}

fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

async fn heartbeat<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) -> anyhow::Result<()> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get("/heartbeat")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != http::StatusCode::OK || json["status"] != "ok" {
        bail!("heartbeat answered {status}");
    }
    Ok(())
}
