//! The wiring: every part built once from the settings, in dependency order, and handed out narrowly.
//! Handlers extract the one or two parts they use (`State<Arc<SaasProxy>>`, `State<Outbox>`, …)
//! through the `FromRef` impls below; background workers receive theirs in [`Workers`]. Nothing
//! below this file knows `AppState`, so parts depend on each other, never on the whole.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditWriter;
use crate::auth::signature::SignatureVerifier;
use crate::callbacks::forward::NcForwarder;
use crate::callbacks::policy::CallbackPolicy;
use crate::callbacks::routes::Callbacks;
use crate::clock::unix_now;
use crate::config::Settings;
use crate::events::Event;
use crate::events::directory::Directory;
use crate::events::dispatch::Deliverer;
use crate::events::ingest::{HookIngest, hook_secret};
use crate::events::listeners::WebhookListeners;
use crate::events::queue::Outbox;
use crate::events::queue::QueueStats;
use crate::events::reconcile::Reconciler;
use crate::events::snapshot::Snapshot;
use crate::keys::{KeyStatus, Keyring};
use crate::lifecycle::{Hooks, Init};
use crate::lifecycle_state::Status;
use crate::metrics::Metrics;
use crate::nextcloud::admins::Admins;
use crate::nextcloud::{InstanceId, NcClient};
use crate::proxy::http::Forwarder;
use crate::replay::{Boot, ReplayStore};
use crate::saas::SaasClient;
use crate::saas::proxy::SaasProxy;
use crate::shutdown::Background;
use crate::signing::{Rfc9421, WireProfile};
use crate::store::{AuditRecord, Store, StoreError};
use crate::tenant::Provisioner;

/// What the router hands to handlers (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: Arc<Settings>,
    background: Background,
    metrics: Arc<Metrics>,
    store: Store,
    nc: NcClient,
    instance: InstanceId,
    keys: Arc<Keyring>,
    outbox: Outbox,
    reconciler: Arc<Reconciler>,
    verifier: Arc<SignatureVerifier>,
    replay: Arc<ReplayStore>,
    status: Arc<Status>,
    init: Arc<Init>,
    hooks: Arc<Hooks>,
    saas_proxy: Arc<SaasProxy>,
    callbacks: Arc<Callbacks>,
    hook_ingest: Arc<HookIngest>,
    provisioner: Arc<Provisioner>,
}

/// The background workers, built with the state and started by `App::run_until_stopped`.
#[derive(Debug)]
pub(crate) struct Workers {
    audit: AuditWriter,
    instance: InstanceId,
    nc: NcClient,
    status: Arc<Status>,
    deliverer: Arc<Deliverer>,
    reconciler: Arc<Reconciler>,
    keys: Arc<Keyring>,
    metrics: Arc<Metrics>,
    settings: Arc<Settings>,
}

impl Workers {
    /// Spawns the audit writer, the delivery worker, the start-up checks and the reconciliation
    /// schedule under `background`.
    pub(crate) fn spawn(self, background: &Background) {
        // The audit writer drains what is queued when shutdown begins; shutdown waits for it.
        background.spawn(crate::audit::run(self.audit, background.token()));
        background.spawn(self.deliverer.run(background.clone()));
        background.spawn(crate::lifecycle::start::run(
            self.instance,
            self.nc,
            self.status.clone(),
            background.clone(),
        ));
        background.spawn(crate::events::schedule::run(
            self.reconciler,
            self.status,
            self.keys,
            self.metrics,
            self.settings.sync.interval,
            background.clone(),
        ));
    }
}

impl AppState {
    /// Builds every part, in dependency order.
    pub(crate) fn build(settings: Arc<Settings>) -> anyhow::Result<(Self, Workers)> {
        let s = &settings;
        let background = Background::default();
        let metrics = Arc::new(Metrics::default());
        // Whether Waggle ran on this storage before (read before the store creates its file).
        let storage_was_used = Store::exists(&s.app.storage_dir);
        let store = Store::open(&s.app.storage_dir)?;
        // Spent signatures, shared by every signed route and wire profile.
        let replay = Arc::new(ReplayStore::open(
            &s.app.storage_dir.join("replay"),
            s.callback.replay_capacity,
            &Boot::current(),
            storage_was_used,
            unix_now(),
        )?);
        let (audit, audit_writer) = crate::audit::channel(store.clone(), metrics.clone());
        let profile: Arc<dyn WireProfile> = Arc::new(Rfc9421);

        // Nextcloud's side: the client and the instance id it resolves.
        let nc = NcClient::new(&s.app, &s.nextcloud)?;
        // Facts learned before a restart (the instance id, the enabled state): no user request
        // waits for Nextcloud to repeat them.
        let instance = InstanceId::load(nc.clone(), store.clone())?;
        let status = Arc::new(Status::load(store.clone())?);
        let admins = Admins::new(nc.clone(), store.clone(), s.sync.admin_uid.clone());
        // Keys, the SaaS client and the shared forwarder.
        let keys = Arc::new(Keyring::load(s));
        let saas = SaasClient::new(s, keys.clone(), profile.clone(), instance.clone())?;
        let forwarder = Forwarder::new(&s.proxy)?;
        // Events: outbox, reconciliation, delivery, the webhook fast path.
        let outbox = Outbox::new(store.clone())?;
        let reconciler = Arc::new(Reconciler::new(
            Directory::new(nc.clone(), admins.clone()),
            Snapshot::new(store.clone())?,
            outbox.clone(),
            instance.clone(),
            metrics.clone(),
        ));
        let deliverer = Arc::new(Deliverer::new(
            outbox.clone(),
            saas.clone(),
            keys.clone(),
            metrics.clone(),
            s.events.clone(),
        ));
        let secret = hook_secret(s.app.secret_bytes(), &s.app.id);
        let listeners = Arc::new(WebhookListeners::new(nc.clone(), secret.clone(), metrics.clone()));
        let hook_ingest =
            Arc::new(HookIngest::new(secret, reconciler.clone(), metrics.clone(), background.clone()));
        // The tenant and the lifecycle.
        let provisioner = Arc::new(Provisioner::new(
            s,
            keys.clone(),
            saas.clone(),
            instance.clone(),
            admins,
            audit.clone(),
            background.clone(),
        ));
        let init = Arc::new(Init::new(
            status.clone(),
            nc.clone(),
            instance.clone(),
            provisioner.clone(),
            reconciler.clone(),
            s.app.storage_dir.clone(),
            background.clone(),
        ));
        let hooks = Arc::new(Hooks::new(
            status.clone(),
            listeners,
            provisioner.clone(),
            s.app.storage_dir.clone(),
            background.clone(),
        ));
        // The two proxied route groups.
        let saas_proxy = Arc::new(SaasProxy::new(s, saas, forwarder.clone(), background.clone())?);
        let callbacks = Arc::new(Callbacks {
            policy: CallbackPolicy::new(&s.callback),
            forward: NcForwarder::new(s, nc.clone(), forwarder),
            audit,
            metrics: metrics.clone(),
        });
        let verifier = Arc::new(SignatureVerifier::new(
            &s.callback,
            replay.clone(),
            keys.clone(),
            profile,
            metrics.clone(),
        ));

        let workers = Workers {
            audit: audit_writer,
            instance: instance.clone(),
            nc: nc.clone(),
            status: status.clone(),
            deliverer,
            reconciler: reconciler.clone(),
            keys: keys.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
        };
        let state = Self(Arc::new(Inner {
            settings,
            background,
            metrics,
            store,
            nc,
            instance,
            keys,
            outbox,
            reconciler,
            verifier,
            replay,
            status,
            init,
            hooks,
            saas_proxy,
            callbacks,
            hook_ingest,
            provisioner,
        }));
        Ok((state, workers))
    }

    /// The validated settings.
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.0.settings
    }

    /// The shared cancellation token and task tracker.
    pub(crate) fn background(&self) -> &Background {
        &self.0.background
    }

    // --- Looking inside: what integration tests (and diagnostics) read -----------------------------

    /// A counter's value.
    pub fn metric(&self, name: &str) -> u64 {
        self.0.metrics.get(name)
    }

    /// The names of the counters touched so far.
    pub fn metric_names(&self) -> Vec<String> {
        self.0.metrics.snapshot().into_keys().collect()
    }

    /// Nextcloud's instance id, once resolved.
    pub fn instance_id(&self) -> Option<String> {
        self.0.instance.get()
    }

    /// Whether Nextcloud last enabled the app.
    pub fn is_enabled(&self) -> bool {
        self.0.status.is_enabled()
    }

    /// The tenant key state, as the admin status shows it.
    pub fn key_status(&self) -> KeyStatus {
        self.0.keys.status()
    }

    /// Whether `key_id` may verify a `/nc` request now.
    pub fn key_verifies(&self, key_id: &str) -> bool {
        self.0.keys.verification_key(key_id).is_some()
    }

    /// The outbox figures (`now_ms` ages the oldest event).
    pub async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
        self.0.outbox.stats(now_ms).await
    }

    /// Commits `events` to the outbox (as reconciliation does); the commit wakes delivery.
    pub async fn enqueue(&self, events: Vec<Event>, now_ms: i64) -> Result<usize, StoreError> {
        self.0.outbox.enqueue(events, now_ms).await
    }

    /// The newest audit rows, newest first, optionally for one user.
    pub async fn audit_recent(
        &self,
        user: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.store.audit_recent(user, limit).await
    }

    /// The Nextcloud client (the ADMIN policy asks it about group membership).
    pub(crate) fn nc(&self) -> &NcClient {
        &self.0.nc
    }

    /// The signature policy's verifier (for the signed route groups).
    pub(crate) fn verifier(&self) -> &Arc<SignatureVerifier> {
        &self.0.verifier
    }
}

/// One `FromRef` per part a handler extracts.
macro_rules! parts {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        }
    )*};
}

parts! {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    instance: InstanceId,
    keys: Arc<Keyring>,
    outbox: Outbox,
    reconciler: Arc<Reconciler>,
    replay: Arc<ReplayStore>,
    status: Arc<Status>,
    init: Arc<Init>,
    hooks: Arc<Hooks>,
    saas_proxy: Arc<SaasProxy>,
    callbacks: Arc<Callbacks>,
    hook_ingest: Arc<HookIngest>,
    provisioner: Arc<Provisioner>,
}
