//! `waggle nc-call`: signs a `/nc` callback exactly as the SaaS must and sends it. For SaaS developers
//! and admins checking a deployment, and the reference client in the tests.
//!
//! The tenant key comes from `WAGGLE_TENANT_KEY` (never a flag, to keep it out of shell history).

use std::io::Read as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use http::Method;

use crate::signing::{CallbackRequest, SigningKey, random_nonce, sign_callback};

/// Options of `waggle nc-call`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NcCallArgs {
    /// Base URL under which Waggle's routes live, e.g.
    /// `https://cloud.example.com/index.php/apps/app_api/proxy/waggle` (PHP proxy),
    /// `https://cloud.example.com/exapps/waggle` (HaRP) or `http://127.0.0.1:23000` (direct).
    #[arg(long)]
    pub(crate) url: String,
    /// The verb Nextcloud should execute (GET, PUT, PROPFIND, MKCOL, MOVE…).
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// Nextcloud path and query, canonical, e.g. `/remote.php/dav/files/alice/`.
    #[arg(long)]
    pub(crate) target: String,
    /// The Nextcloud user to act as (omit for a system call).
    #[arg(long, default_value = "")]
    pub(crate) user: String,
    /// Request body from a file, or `-` for stdin.
    #[arg(long)]
    pub(crate) body: Option<String>,
    /// Content type of the body.
    #[arg(long)]
    pub(crate) content_type: Option<String>,
    /// `Destination` for MOVE/COPY (a Nextcloud path).
    #[arg(long)]
    pub(crate) destination: Option<String>,
    /// Send the real verb on the wire instead of POST + `X-HTTP-Method-Override` (HaRP only).
    #[arg(long)]
    pub(crate) no_tunnel: bool,
    /// Extra header `Name: value` (repeatable), e.g. `Depth: 1` or `Range: bytes=0-99`.
    #[arg(long = "header")]
    pub(crate) headers: Vec<String>,
    /// Key id of the tenant key (default: `WAGGLE_TENANT_KEY_ID`).
    #[arg(long)]
    pub(crate) key_id: Option<String>,
    /// When calling Waggle directly (no Nextcloud in front), add the AppAPI headers Nextcloud would
    /// add, using `APP_SECRET` and `APP_ID` from the environment.
    #[arg(long)]
    pub(crate) direct: bool,
}

/// Runs the command; prints the response body to stdout and the status to stderr.
pub(crate) async fn run(args: NcCallArgs) -> anyhow::Result<()> {
    let key = std::env::var(crate::config::env::TENANT_KEY).context("WAGGLE_TENANT_KEY is not set")?;
    let key_id = match args.key_id {
        Some(id) => id,
        None => {
            std::env::var(crate::config::env::TENANT_KEY_ID).context("WAGGLE_TENANT_KEY_ID is not set")?
        }
    };
    let body = match args.body.as_deref() {
        None => Vec::new(),
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
    };
    let method = Method::from_bytes(args.method.as_bytes()).context("invalid --method")?;
    let request = CallbackRequest {
        method: &method,
        tunnel: !args.no_tunnel,
        target: &args.target,
        user: &args.user,
        body: &body,
        content_type: args.content_type.as_deref(),
        destination: args.destination.as_deref(),
    };
    let created = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let signing_key = SigningKey::from_tenant_key(key_id, &key);
    let (wire, mut headers) = sign_callback(&signing_key, &request, created, &random_nonce(&mut rand::rng()))
        .context("cannot sign the request")?;
    for h in &args.headers {
        let (name, value) = h.split_once(':').context("--header must be `Name: value`")?;
        headers.append(http::HeaderName::from_bytes(name.trim().as_bytes())?, value.trim().parse()?);
    }
    if args.direct {
        let secret = std::env::var(crate::config::env::APP_SECRET).context("--direct needs APP_SECRET")?;
        let app_id = std::env::var(crate::config::env::APP_ID).unwrap_or_else(|_| "waggle".to_owned());
        let token = base64::engine::general_purpose::STANDARD.encode(format!(":{secret}"));
        headers.insert(crate::headers::AUTHORIZATION_APP_API, token.parse()?);
        headers.insert(crate::headers::EX_APP_ID, app_id.parse()?);
    }
    let url = format!("{}/nc{}", args.url.trim_end_matches('/'), args.target);
    crate::tls::install_provider();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let response = client.request(wire, &url).headers(headers).body(body).send().await?;
    let status = response.status();
    eprintln!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let bytes = response.bytes().await?;
    use std::io::Write as _;
    std::io::stdout().write_all(&bytes)?;
    if !status.is_success() {
        bail!("Nextcloud or Waggle answered {status}");
    }
    Ok(())
}
