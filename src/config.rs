//! Typed settings: embedded defaults, then an optional file (`WAGGLE_CONFIG`), then the environment.
//!
//! Every value is read as a string (config-rs `try_parsing` stays off, so a numeric-looking secret such
//! as `007` is never turned into the integer 7) and validated once into typed values. A failure names
//! the environment variable to fix and never prints a secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The embedded defaults (`config/defaults.toml`).
const DEFAULTS: &str = include_str!("../config/defaults.toml");

/// Names of the environment variables Waggle reads. AppAPI's are unprefixed.
pub mod env {
    /// Path of an optional TOML configuration file.
    pub const CONFIG_FILE: &str = "WAGGLE_CONFIG";
    /// Prefix of Waggle's own variables.
    pub const PREFIX: &str = "WAGGLE";
    /// App id.
    pub const APP_ID: &str = "APP_ID";
    /// Shared secret with AppAPI.
    pub const APP_SECRET: &str = "APP_SECRET";
    /// Registered app version.
    pub const APP_VERSION: &str = "APP_VERSION";
    /// Display name.
    pub const APP_DISPLAY_NAME: &str = "APP_DISPLAY_NAME";
    /// Bind host.
    pub const APP_HOST: &str = "APP_HOST";
    /// Bind port.
    pub const APP_PORT: &str = "APP_PORT";
    /// Persistent volume.
    pub const APP_PERSISTENT_STORAGE: &str = "APP_PERSISTENT_STORAGE";
    /// Nextcloud base URL.
    pub const NEXTCLOUD_URL: &str = "NEXTCLOUD_URL";
    /// AppAPI version.
    pub const AA_VERSION: &str = "AA_VERSION";
    /// HaRP shared key (switches listening to the unix socket).
    pub const HP_SHARED_KEY: &str = "HP_SHARED_KEY";
    /// SaaS base URL.
    pub const SERVICE_URL: &str = "WAGGLE_SERVICE_URL";
    /// Pre-provisioned tenant key.
    pub const TENANT_KEY: &str = "WAGGLE_TENANT_KEY";
    /// Id of the pre-provisioned tenant key.
    pub const TENANT_KEY_ID: &str = "WAGGLE_TENANT_KEY_ID";
    /// Log format (`json` or `pretty`).
    pub const LOG_FORMAT: &str = "WAGGLE_LOG_FORMAT";
    /// HaRP unix socket path.
    pub const HARP_SOCKET: &str = "WAGGLE_HARP_SOCKET";
    /// Shutdown grace period in seconds.
    pub const SHUTDOWN_GRACE_SECS: &str = "WAGGLE_SERVER__SHUTDOWN_GRACE_SECS";
    /// Timeout of the lifecycle/admin route groups in seconds.
    pub const LIFECYCLE_TIMEOUT_SECS: &str = "WAGGLE_SERVER__LIFECYCLE_TIMEOUT_SECS";
    /// Timeout of one call to Nextcloud in seconds.
    pub const NC_TIMEOUT_SECS: &str = "WAGGLE_NEXTCLOUD__TIMEOUT_SECS";
    /// Connect timeout to Nextcloud in seconds.
    pub const NC_CONNECT_TIMEOUT_SECS: &str = "WAGGLE_NEXTCLOUD__CONNECT_TIMEOUT_SECS";
    /// Timeout of the init progress report in seconds.
    pub const NC_STATUS_TIMEOUT_SECS: &str = "WAGGLE_NEXTCLOUD__STATUS_TIMEOUT_SECS";
    /// Nextcloud's public URL (browser origin; callback URLs). Defaults to `NEXTCLOUD_URL`.
    pub const NC_PUBLIC_URL: &str = "WAGGLE_NC_PUBLIC_URL";
    /// Time to wait for upstream response headers, seconds.
    pub const PROXY_HEADER_TIMEOUT_SECS: &str = "WAGGLE_PROXY__HEADER_TIMEOUT_SECS";
    /// Longest pause between two body chunks, either direction, seconds.
    pub const PROXY_IDLE_TIMEOUT_SECS: &str = "WAGGLE_PROXY__IDLE_TIMEOUT_SECS";
    /// Request bodies up to this size are hashed in memory; larger ones are spooled to disk.
    pub const PROXY_MEMORY_BODY_BYTES: &str = "WAGGLE_PROXY__MEMORY_BODY_BYTES";
    /// Largest request body forwarded to the SaaS (413 beyond).
    pub const PROXY_API_BODY_CAP_BYTES: &str = "WAGGLE_PROXY__API_BODY_CAP_BYTES";
    /// Largest response buffered for AppAPI's PHP proxy (502 beyond).
    pub const PROXY_PHP_PROXY_RESPONSE_CAP_BYTES: &str = "WAGGLE_PROXY__PHP_PROXY_RESPONSE_CAP_BYTES";
    /// Largest WebSocket message relayed, bytes.
    pub const PROXY_WS_MAX_MESSAGE_BYTES: &str = "WAGGLE_PROXY__WS_MAX_MESSAGE_BYTES";

    /// `/nc`: oldest accepted signature, seconds.
    pub const CB_MAX_AGE_SECS: &str = "WAGGLE_CALLBACK__MAX_AGE_SECS";
    /// `/nc`: largest accepted clock lead, seconds.
    pub const CB_MAX_FUTURE_SECS: &str = "WAGGLE_CALLBACK__MAX_FUTURE_SECS";
    /// `/nc`: body cap, bytes.
    pub const CB_BODY_CAP_BYTES: &str = "WAGGLE_CALLBACK__BODY_CAP_BYTES";
    /// `/nc` and key announcements: replay store capacity.
    pub const CB_REPLAY_CAPACITY: &str = "WAGGLE_CALLBACK__REPLAY_CAPACITY";
    /// `/nc`: failure burst.
    pub const CB_FAILURE_BURST: &str = "WAGGLE_CALLBACK__FAILURE_BURST";
    /// `/nc`: sustained failures per second.
    pub const CB_FAILURE_PER_SEC: &str = "WAGGLE_CALLBACK__FAILURE_PER_SEC";
    /// `/nc`: read-only mode.
    pub const CB_READ_ONLY: &str = "WAGGLE_CALLBACK__READ_ONLY";
    /// `/nc`: extra allowed prefixes.
    pub const CB_EXTRA_ALLOW: &str = "WAGGLE_CALLBACK__EXTRA_ALLOW";
    /// `/nc`: denied prefixes.
    pub const CB_DENY: &str = "WAGGLE_CALLBACK__DENY";
    /// `/nc`: paths system calls may reach.
    pub const CB_SERVICE_PATHS: &str = "WAGGLE_CALLBACK__SERVICE_PATHS";
    /// `/nc`: DELETE/MOVE per user per minute.
    pub const CB_DESTRUCTIVE_PER_MINUTE: &str = "WAGGLE_CALLBACK__DESTRUCTIVE_PER_MINUTE";
    /// `/nc`: DELETE/MOVE per user per minute that warns.
    pub const CB_DESTRUCTIVE_WARN: &str = "WAGGLE_CALLBACK__DESTRUCTIVE_WARN_PER_MINUTE";

    /// Seconds between reconciliation runs.
    pub const SYNC_INTERVAL: &str = "WAGGLE_SYNC_INTERVAL";
    /// Where events are delivered.
    pub const EVENTS_URL: &str = "WAGGLE_EVENTS_URL";
    /// Retry schedule, ms, comma-separated.
    pub const EVENTS_SCHEDULE_MS: &str = "WAGGLE_EVENTS__SCHEDULE_MS";
    /// Subjects delivered in parallel.
    pub const EVENTS_CONCURRENCY: &str = "WAGGLE_EVENTS__CONCURRENCY";
    /// Timeout of one delivery, seconds.
    pub const EVENTS_REQUEST_TIMEOUT_SECS: &str = "WAGGLE_EVENTS__REQUEST_TIMEOUT_SECS";
    /// Longest idle sleep of the worker, ms.
    pub const EVENTS_POLL_MS: &str = "WAGGLE_EVENTS__POLL_MS";
    /// Pairing code sent at bootstrap.
    pub const PAIRING_CODE: &str = "WAGGLE_PAIRING_CODE";
    /// Request overlap after a key rotation, seconds.
    pub const KEYS_CALLBACK_OVERLAP_SECS: &str = "WAGGLE_KEYS__CALLBACK_OVERLAP_SECS";
    /// Webhook-signature overlap after a key rotation, seconds.
    pub const KEYS_WEBHOOK_OVERLAP_SECS: &str = "WAGGLE_KEYS__WEBHOOK_OVERLAP_SECS";
    /// First poll interval of a pending bootstrap, ms.
    pub const KEYS_POLL_MIN_MS: &str = "WAGGLE_KEYS__POLL_MIN_MS";
    /// Longest poll interval, ms.
    pub const KEYS_POLL_MAX_MS: &str = "WAGGLE_KEYS__POLL_MAX_MS";
    /// Timeout of one key call, seconds.
    pub const KEYS_REQUEST_TIMEOUT_SECS: &str = "WAGGLE_KEYS__REQUEST_TIMEOUT_SECS";

    /// AppAPI's unprefixed variables and the config keys they set.
    pub(super) const APPAPI_KEYS: [(&str, &str); 10] = [
        (APP_ID, "appapi.app_id"),
        (APP_SECRET, "appapi.secret"),
        (APP_VERSION, "appapi.version"),
        (APP_DISPLAY_NAME, "appapi.display_name"),
        (APP_HOST, "appapi.host"),
        (APP_PORT, "appapi.port"),
        (APP_PERSISTENT_STORAGE, "appapi.persistent_storage"),
        (NEXTCLOUD_URL, "appapi.nextcloud_url"),
        (AA_VERSION, "appapi.aa_version"),
        (HP_SHARED_KEY, "appapi.harp_shared_key"),
    ];
}

/// A configuration problem: the variable to fix and what is wrong, never the value.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable (or file key) to fix.
    pub variable: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), problem: problem.into() }
    }
}

/// How logs are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (default; for log collectors).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenOn {
    /// TCP on `APP_HOST:APP_PORT`.
    Tcp(SocketAddr),
    /// HaRP's unix socket (when `HP_SHARED_KEY` is set).
    Unix(PathBuf),
}

/// Identity and credentials AppAPI assigned to this app.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// `APP_ID`.
    pub id: String,
    /// `APP_SECRET`.
    pub secret: SecretString,
    /// `APP_VERSION`.
    pub version: String,
    /// `APP_DISPLAY_NAME`.
    pub display_name: String,
    /// `AA_VERSION` (may be empty).
    pub aa_version: String,
    /// `APP_PERSISTENT_STORAGE`.
    pub storage_dir: PathBuf,
}

/// Server behaviour.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen.
    pub listen: ListenOn,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Timeout applied to the lifecycle and admin route groups.
    pub lifecycle_timeout: Duration,
}

/// How Waggle reaches Nextcloud.
#[derive(Debug, Clone)]
pub struct NextcloudSettings {
    /// `NEXTCLOUD_URL`, trailing `/index.php` and `/` removed, then one `/` appended.
    pub url: Url,
    /// Overall timeout of one call.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of the init progress report.
    pub status_timeout: Duration,
    /// The public URL browsers use (`WAGGLE_NC_PUBLIC_URL`, default `NEXTCLOUD_URL`).
    pub public_url: Url,
}

/// The streaming proxy (shared by `/api`, `/auth` and `/nc`).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Time to wait for upstream response headers.
    pub header_timeout: Duration,
    /// Longest pause between two body chunks.
    pub idle_timeout: Duration,
    /// Bodies up to this many bytes stay in memory while hashed; larger ones are spooled.
    pub memory_body_bytes: u64,
    /// Largest request body accepted on `/api` and `/auth`.
    pub api_body_cap_bytes: u64,
    /// Largest response Waggle buffers to give it a `Content-Length` for AppAPI's PHP proxy.
    pub php_proxy_response_cap_bytes: u64,
    /// Largest WebSocket message relayed.
    pub ws_max_message_bytes: usize,
}

/// The `/nc` callback proxy: verification window, caps and the admin's policy.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// How old a signature's `created` may be.
    pub max_age_secs: u64,
    /// How far in the future `created` may be.
    pub max_future_secs: u64,
    /// Largest request body (413 beyond).
    pub body_cap_bytes: u64,
    /// Live spent signatures the replay store may hold.
    pub replay_capacity: usize,
    /// Failed verifications allowed in a burst before answering 429.
    pub failure_burst: u32,
    /// Failed verifications allowed per second, sustained.
    pub failure_per_sec: u32,
    /// Only GET, HEAD, PROPFIND, REPORT and SEARCH pass.
    pub read_only: bool,
    /// Apps whose `/index.php/apps/<app>/` routes may be called.
    pub apps: Vec<String>,
    /// Extra allowed path prefixes.
    pub extra_allow: Vec<String>,
    /// Denied path prefixes.
    pub deny: Vec<String>,
    /// Paths a system call (empty user) may reach.
    pub service_paths: Vec<String>,
    /// DELETE/MOVE calls one user may make per minute (429 beyond).
    pub destructive_per_minute: u32,
    /// DELETE/MOVE calls per user per minute that log a warning.
    pub destructive_warn_per_minute: u32,
}

/// Event delivery to the SaaS webhook.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    /// `WAGGLE_EVENTS_URL`, default `<service>/waggle/v1/events`; `None` without a service URL.
    pub url: Option<Url>,
    /// Delay before each retry (the first attempt is immediate).
    pub schedule: Vec<Duration>,
    /// Subjects delivered in parallel.
    pub concurrency: u32,
    /// Timeout of one delivery.
    pub request_timeout: Duration,
    /// Longest sleep of the idle worker.
    pub poll: Duration,
}

/// User/group reconciliation.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `WAGGLE_SYNC_INTERVAL`: time between runs.
    pub interval: Duration,
    /// `WAGGLE_SYNC__ADMIN_UID`: the administrator to read users as (default: lowest uid of `admin`).
    pub admin_uid: Option<String>,
}

/// Tenant key provisioning and rotation.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// How long a previous key still verifies `/nc` requests after a rotation.
    pub callback_overlap_secs: u64,
    /// How long a previous key still appears in webhook signatures (≥ the delivery retry horizon).
    pub webhook_overlap_secs: u64,
    /// First wait between polls of a pending bootstrap.
    pub poll_min: Duration,
    /// Longest wait between polls.
    pub poll_max: Duration,
    /// Timeout of one call to the key endpoints.
    pub request_timeout: Duration,
}

/// A tenant key given through the environment.
#[derive(Debug, Clone)]
pub struct TenantKeySettings {
    /// Key id.
    pub id: String,
    /// Key material (the HMAC key is its UTF-8 bytes).
    pub secret: SecretString,
}

/// How Waggle reaches the SaaS.
#[derive(Debug, Clone)]
pub struct SaasSettings {
    /// `WAGGLE_SERVICE_URL`, with a trailing `/`.
    pub service_url: Option<Url>,
    /// A pre-provisioned tenant key.
    pub tenant_key: Option<TenantKeySettings>,
    /// `WAGGLE_PAIRING_CODE`, sent at bootstrap.
    pub pairing_code: Option<String>,
}

/// The validated configuration, built once at start-up and shared as `Arc<Settings>`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// AppAPI identity.
    pub app: AppSettings,
    /// Server behaviour.
    pub server: ServerSettings,
    /// Nextcloud client.
    pub nextcloud: NextcloudSettings,
    /// SaaS.
    pub saas: SaasSettings,
    /// Streaming proxy.
    pub proxy: ProxySettings,
    /// `/nc` callbacks.
    pub callback: CallbackSettings,
    /// Tenant keys.
    pub keys: KeySettings,
    /// Event delivery.
    pub events: EventsSettings,
    /// Reconciliation.
    pub sync: SyncSettings,
    /// Log format.
    pub log_format: LogFormat,
}

// ---- raw shape, everything as strings -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct RawAppApi {
    app_id: Option<String>,
    secret: Option<String>,
    version: Option<String>,
    display_name: Option<String>,
    host: Option<String>,
    port: Option<String>,
    persistent_storage: Option<String>,
    nextcloud_url: Option<String>,
    aa_version: Option<String>,
    harp_shared_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawServer {
    shutdown_grace_secs: Option<String>,
    lifecycle_timeout_secs: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawNextcloud {
    timeout_secs: Option<String>,
    connect_timeout_secs: Option<String>,
    status_timeout_secs: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawProxy {
    header_timeout_secs: Option<String>,
    idle_timeout_secs: Option<String>,
    memory_body_bytes: Option<String>,
    api_body_cap_bytes: Option<String>,
    php_proxy_response_cap_bytes: Option<String>,
    ws_max_message_bytes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCallback {
    max_age_secs: Option<String>,
    max_future_secs: Option<String>,
    body_cap_bytes: Option<String>,
    replay_capacity: Option<String>,
    failure_burst: Option<String>,
    failure_per_sec: Option<String>,
    read_only: Option<String>,
    apps: Option<String>,
    extra_allow: Option<String>,
    deny: Option<String>,
    service_paths: Option<String>,
    destructive_per_minute: Option<String>,
    destructive_warn_per_minute: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawKeys {
    callback_overlap_secs: Option<String>,
    webhook_overlap_secs: Option<String>,
    poll_min_ms: Option<String>,
    poll_max_ms: Option<String>,
    request_timeout_secs: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEvents {
    schedule_ms: Option<String>,
    concurrency: Option<String>,
    request_timeout_secs: Option<String>,
    poll_ms: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawSync {
    admin_uid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(default)]
    sync: RawSync,
    sync_interval: Option<String>,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    events: RawEvents,
    events_url: Option<String>,
    pairing_code: Option<String>,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    callback: RawCallback,
    nc_public_url: Option<String>,
    #[serde(default)]
    appapi: RawAppApi,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    nextcloud: RawNextcloud,
    service_url: Option<String>,
    tenant_key: Option<String>,
    tenant_key_id: Option<String>,
    log_format: Option<String>,
    harp_socket: Option<String>,
}

impl Settings {
    /// Loads from the process environment (and the file it names).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&std::env::vars().collect())
    }

    /// Loads from the given environment map; the test seam (tests never mutate the real environment).
    pub fn load_from(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = vars.get(env::CONFIG_FILE).filter(|p| !p.is_empty()) {
            if !std::path::Path::new(path).is_file() {
                return Err(ConfigError::new(env::CONFIG_FILE, "names a file that does not exist"));
            }
            builder = builder.add_source(config::File::new(path, config::FileFormat::Toml));
        }
        // The environment is added last so it beats the file. `try_parsing` stays off on purpose.
        builder = builder.add_source(
            config::Environment::with_prefix(env::PREFIX)
                .prefix_separator("_")
                .separator("__")
                .source(Some(vars.clone())),
        );
        for (var, key) in env::APPAPI_KEYS {
            builder = builder
                .set_override_option(key, vars.get(var).cloned())
                .map_err(|e| ConfigError::new(var, e.to_string()))?;
        }
        let raw: Raw = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::new(env::CONFIG_FILE, format!("cannot be read: {e}")))?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Self, ConfigError> {
        let a = raw.appapi;
        let app_id = required(a.app_id, env::APP_ID)?;
        if !app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ConfigError::new(env::APP_ID, "may contain only letters, digits, `_` and `-`"));
        }
        let secret = exact(a.secret, env::APP_SECRET)?;
        let nextcloud_url = nc_url(&required(a.nextcloud_url, env::NEXTCLOUD_URL)?, env::NEXTCLOUD_URL)?;
        let public_url = match non_empty(raw.nc_public_url) {
            Some(u) => nc_url(&u, env::NC_PUBLIC_URL)?,
            None => nextcloud_url.clone(),
        };
        let port: u16 = required(a.port, env::APP_PORT)?
            .parse()
            .map_err(|_| ConfigError::new(env::APP_PORT, "is not a port number (0-65535)"))?;
        let harp = non_empty(a.harp_shared_key);
        let listen = match harp {
            Some(_) => ListenOn::Unix(PathBuf::from(required(raw.harp_socket, env::HARP_SOCKET)?)),
            None => ListenOn::Tcp(listen_addr(&required(a.host, env::APP_HOST)?, port)?),
        };
        let tenant_key = match (raw.tenant_key.filter(|k| !k.is_empty()), non_empty(raw.tenant_key_id)) {
            (Some(key), Some(id)) => Some(TenantKeySettings { id, secret: SecretString::from(key) }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    env::TENANT_KEY_ID,
                    "is required when WAGGLE_TENANT_KEY is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    env::TENANT_KEY,
                    "is required when WAGGLE_TENANT_KEY_ID is set",
                ));
            }
        };
        let service_url = non_empty(raw.service_url).map(|u| http_url(&u, env::SERVICE_URL)).transpose()?;
        let log_format = match non_empty(raw.log_format).as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::new(env::LOG_FORMAT, "must be `json` or `pretty`"));
            }
        };
        Ok(Self {
            app: AppSettings {
                id: app_id,
                secret: SecretString::from(secret),
                version: non_empty(a.version).unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
                display_name: non_empty(a.display_name).unwrap_or_else(|| "Waggle".to_owned()),
                aa_version: a.aa_version.unwrap_or_default(),
                storage_dir: PathBuf::from(required(a.persistent_storage, env::APP_PERSISTENT_STORAGE)?),
            },
            server: ServerSettings {
                listen,
                shutdown_grace: secs(raw.server.shutdown_grace_secs, env::SHUTDOWN_GRACE_SECS)?,
                lifecycle_timeout: secs(raw.server.lifecycle_timeout_secs, env::LIFECYCLE_TIMEOUT_SECS)?,
            },
            nextcloud: NextcloudSettings {
                url: nextcloud_url,
                timeout: secs(raw.nextcloud.timeout_secs, env::NC_TIMEOUT_SECS)?,
                connect_timeout: secs(raw.nextcloud.connect_timeout_secs, env::NC_CONNECT_TIMEOUT_SECS)?,
                status_timeout: secs(raw.nextcloud.status_timeout_secs, env::NC_STATUS_TIMEOUT_SECS)?,
                public_url,
            },
            proxy: ProxySettings {
                header_timeout: secs(raw.proxy.header_timeout_secs, env::PROXY_HEADER_TIMEOUT_SECS)?,
                idle_timeout: secs(raw.proxy.idle_timeout_secs, env::PROXY_IDLE_TIMEOUT_SECS)?,
                memory_body_bytes: number(raw.proxy.memory_body_bytes, env::PROXY_MEMORY_BODY_BYTES)?,
                api_body_cap_bytes: number(raw.proxy.api_body_cap_bytes, env::PROXY_API_BODY_CAP_BYTES)?,
                php_proxy_response_cap_bytes: number(
                    raw.proxy.php_proxy_response_cap_bytes,
                    env::PROXY_PHP_PROXY_RESPONSE_CAP_BYTES,
                )?,
                ws_max_message_bytes: usize::try_from(number(
                    raw.proxy.ws_max_message_bytes,
                    env::PROXY_WS_MAX_MESSAGE_BYTES,
                )?)
                .map_err(|_| ConfigError::new(env::PROXY_WS_MAX_MESSAGE_BYTES, "is too large"))?,
            },
            callback: callback_settings(raw.callback)?,
            events: EventsSettings {
                url: match non_empty(raw.events_url) {
                    Some(u) => Some(http_url(&u, env::EVENTS_URL)?),
                    None => service_url.as_ref().and_then(|b| b.join("waggle/v1/events").ok()),
                },
                schedule: list(raw.events.schedule_ms)
                    .iter()
                    .map(|ms| ms.parse().map(Duration::from_millis))
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        ConfigError::new(
                            env::EVENTS_SCHEDULE_MS,
                            "must be a comma-separated list of milliseconds",
                        )
                    })?,
                concurrency: u32::try_from(number(raw.events.concurrency, env::EVENTS_CONCURRENCY)?)
                    .map_err(|_| ConfigError::new(env::EVENTS_CONCURRENCY, "is too large"))?
                    .max(1),
                request_timeout: secs(raw.events.request_timeout_secs, env::EVENTS_REQUEST_TIMEOUT_SECS)?,
                poll: Duration::from_millis(number(raw.events.poll_ms, env::EVENTS_POLL_MS)?),
            },
            sync: SyncSettings {
                interval: secs(raw.sync_interval, env::SYNC_INTERVAL)?.max(Duration::from_secs(1)),
                admin_uid: non_empty(raw.sync.admin_uid),
            },
            keys: KeySettings {
                callback_overlap_secs: number(
                    raw.keys.callback_overlap_secs,
                    env::KEYS_CALLBACK_OVERLAP_SECS,
                )?,
                webhook_overlap_secs: number(raw.keys.webhook_overlap_secs, env::KEYS_WEBHOOK_OVERLAP_SECS)?,
                poll_min: Duration::from_millis(number(raw.keys.poll_min_ms, env::KEYS_POLL_MIN_MS)?),
                poll_max: Duration::from_millis(number(raw.keys.poll_max_ms, env::KEYS_POLL_MAX_MS)?),
                request_timeout: secs(raw.keys.request_timeout_secs, env::KEYS_REQUEST_TIMEOUT_SECS)?,
            },
            saas: SaasSettings { service_url, tenant_key, pairing_code: non_empty(raw.pairing_code) },
            log_format,
        })
    }

    /// Whether the app runs behind HaRP (listening on the unix socket).
    pub fn is_harp(&self) -> bool {
        matches!(self.server.listen, ListenOn::Unix(_))
    }
}

impl AppSettings {
    /// The secret, for the two places that need it (inbound check, outbound header).
    pub(crate) fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }
}

/// `APP_HOST` is an IP address or a host name: AppAPI passes an `OVERRIDE_APP_HOST` through as the
/// admin typed it. A name is resolved once, here, and the first address is bound (and probed by
/// `waggle healthcheck`, which resolves it the same way).
fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let is_name = bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !is_name {
        return Err(ConfigError::new(env::APP_HOST, "is neither an IP address nor a host name"));
    }
    let mut addrs = std::net::ToSocketAddrs::to_socket_addrs(&(bare, port))
        .map_err(|e| ConfigError::new(env::APP_HOST, format!("cannot be resolved ({e})")))?;
    addrs.next().ok_or_else(|| ConfigError::new(env::APP_HOST, "resolves to no address"))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn required(v: Option<String>, var: &str) -> Result<String, ConfigError> {
    non_empty(v).ok_or_else(|| ConfigError::new(var, "is required but not set"))
}

/// Secrets are taken byte for byte: no trimming.
fn exact(v: Option<String>, var: &str) -> Result<String, ConfigError> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| ConfigError::new(var, "is required but not set"))
}

fn secs(v: Option<String>, var: &str) -> Result<Duration, ConfigError> {
    let n: u64 =
        required(v, var)?.parse().map_err(|_| ConfigError::new(var, "is not a whole number of seconds"))?;
    Ok(Duration::from_secs(n))
}

fn callback_settings(c: RawCallback) -> Result<CallbackSettings, ConfigError> {
    let n32 = |v: Option<String>, var: &str| {
        u32::try_from(number(v, var)?).map_err(|_| ConfigError::new(var, "is too large"))
    };
    Ok(CallbackSettings {
        max_age_secs: number(c.max_age_secs, env::CB_MAX_AGE_SECS)?,
        max_future_secs: number(c.max_future_secs, env::CB_MAX_FUTURE_SECS)?,
        body_cap_bytes: number(c.body_cap_bytes, env::CB_BODY_CAP_BYTES)?,
        replay_capacity: usize::try_from(number(c.replay_capacity, env::CB_REPLAY_CAPACITY)?)
            .map_err(|_| ConfigError::new(env::CB_REPLAY_CAPACITY, "is too large"))?,
        failure_burst: n32(c.failure_burst, env::CB_FAILURE_BURST)?,
        failure_per_sec: n32(c.failure_per_sec, env::CB_FAILURE_PER_SEC)?,
        read_only: boolean(c.read_only, env::CB_READ_ONLY)?,
        apps: list(c.apps),
        extra_allow: prefixes(c.extra_allow, env::CB_EXTRA_ALLOW)?,
        deny: prefixes(c.deny, env::CB_DENY)?,
        service_paths: prefixes(c.service_paths, env::CB_SERVICE_PATHS)?,
        destructive_per_minute: n32(c.destructive_per_minute, env::CB_DESTRUCTIVE_PER_MINUTE)?,
        destructive_warn_per_minute: n32(c.destructive_warn_per_minute, env::CB_DESTRUCTIVE_WARN)?,
    })
}

fn list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn prefixes(v: Option<String>, var: &str) -> Result<Vec<String>, ConfigError> {
    let items = list(v);
    if items.iter().any(|p| !p.starts_with('/')) {
        return Err(ConfigError::new(var, "must be a comma-separated list of paths starting with `/`"));
    }
    Ok(items)
}

fn boolean(v: Option<String>, var: &str) -> Result<bool, ConfigError> {
    match non_empty(v).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ConfigError::new(var, "must be true or false")),
    }
}

fn number(v: Option<String>, var: &str) -> Result<u64, ConfigError> {
    required(v, var)?.parse().map_err(|_| ConfigError::new(var, "is not a whole number"))
}

fn http_url(value: &str, var: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(value).map_err(|e| ConfigError::new(var, format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(var, "must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ConfigError::new(var, "must not carry credentials, a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// AppAPI's rule: strip a trailing `/index.php` and `/` from a Nextcloud URL.
fn nc_url(value: &str, var: &str) -> Result<Url, ConfigError> {
    let trimmed = value.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/index.php").unwrap_or(trimmed);
    http_url(trimmed, var)
}

#[cfg(test)]
mod tests;
