//! The delivery worker: takes the due head of each subject from the outbox, POSTs it to the SaaS
//! webhook (the SaaS client's `post_event`, Standard Webhooks headers), and acks only after a 2xx.
//! Failures are retried on the configured schedule with ±20 % jitter, honouring `Retry-After`; other
//! 4xx give up sooner; a 410 pauses delivery (persisted) and alerts; an event that exhausts its
//! schedule is dead-lettered. Deliveries run in a rolling window (`WAGGLE_EVENTS__CONCURRENCY`
//! subjects at once, one event per subject) and their outcomes are recorded in group commits (see
//! [`Deliverer::run`]). It stops at shutdown; an in-flight event simply stays pending.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::queue::{Outbox, Pending, Settle, Settlement};
use crate::clock::now_ms;
use crate::config::EventsSettings;
use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::saas::SaasClient;
use crate::shutdown::Background;
use crate::signing::webhooks::WebhookSecret;
use crate::store::StoreError;

/// Attempts allowed for a non-retryable 4xx before dead-lettering.
const CLIENT_ERROR_ATTEMPTS: u32 = 3;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx: acknowledged.
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// Give up: dead letter.
    Dead,
    /// 410: pause delivery.
    Gone,
}

/// Decides what to do after attempt number `attempts` (1-based) answered `status` (None: no answer),
/// given the retry schedule (the delay after attempt n is `schedule[n - 1]`; past its end the event
/// is dead) and the `Retry-After` seconds.
pub(crate) fn decide(
    status: Option<u16>,
    attempts: u32,
    schedule: &[Duration],
    retry_after: Option<u64>,
) -> Outcome {
    match status {
        Some(200..=299) => Outcome::Delivered,
        Some(410) => Outcome::Gone,
        Some(s @ 400..=499) if !matches!(s, 408 | 409 | 425 | 429) && attempts >= CLIENT_ERROR_ATTEMPTS => {
            Outcome::Dead
        }
        _ => match schedule.get((attempts as usize).saturating_sub(1)) {
            None => Outcome::Dead,
            Some(delay) => {
                let after = retry_after.map_or(Duration::ZERO, Duration::from_secs);
                Outcome::Retry((*delay).max(after))
            }
        },
    }
}

/// ±20 % jitter, so retries of many events spread out.
fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    d.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// What one refill (or one [`Deliverer::step`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Delivery is paused (a 410 until an admin resumes): nothing was sent.
    Paused,
    /// No tenant key yet: events wait in the outbox.
    NoKey,
    /// Nothing was due; the next event is due after this long (at most the poll interval).
    Idle(Duration),
    /// This many due heads were attempted.
    Attempted(usize),
}

/// The delivery worker's parts, built once.
#[derive(Debug)]
pub(crate) struct Deliverer {
    outbox: Outbox,
    saas: SaasClient,
    keys: Arc<Keyring>,
    metrics: Arc<Metrics>,
    settings: EventsSettings,
}

/// Deliveries in flight: at most one per subject, at most `concurrency` in all.
#[derive(Debug, Default)]
struct Flight {
    tasks: JoinSet<Finished>,
    /// Subjects with an event in flight or delivered but not yet settled.
    subjects: HashSet<String>,
}

/// One attempt that has come back, not yet recorded.
#[derive(Debug)]
struct Finished {
    subject: String,
    settlement: Settlement,
    /// For the log line and the counter once it is recorded.
    status: Option<u16>,
}

impl Deliverer {
    /// A worker over these parts.
    pub(crate) fn new(
        outbox: Outbox,
        saas: SaasClient,
        keys: Arc<Keyring>,
        metrics: Arc<Metrics>,
        settings: EventsSettings,
    ) -> Self {
        Self { outbox, saas, keys, metrics, settings }
    }

    /// Runs until shutdown: a rolling window of deliveries. Whenever a slot is free it is refilled
    /// from the due heads (subjects already in flight skipped); every attempt that has come back is
    /// recorded in one transaction with the others that came back meanwhile (group commit), and only
    /// then is its subject's next event eligible, so a subject stays in order even across a
    /// `kill -9` (an attempt not yet recorded is simply sent again, with the same id).
    pub(crate) async fn run(self: Arc<Self>, background: Background) {
        let Some(url) = self.saas.events_url() else {
            tracing::warn!("no events URL (WAGGLE_EVENTS_URL or WAGGLE_SERVICE_URL); event delivery is off");
            return;
        };
        tracing::info!(url = %url, "event delivery started");
        let window = self.settings.concurrency.max(1) as usize;
        let mut flight = Flight::default();
        let mut finished: Vec<Finished> = Vec::new();
        loop {
            if background.is_cancelled() {
                break;
            }
            if !finished.is_empty() {
                self.record(&mut flight, std::mem::take(&mut finished)).await;
            }
            let idle = if flight.tasks.len() < window {
                match self.refill(&mut flight, window).await {
                    Ok(Step::Idle(wait)) => wait,
                    Ok(Step::Paused | Step::NoKey | Step::Attempted(_)) => self.settings.poll,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "event delivery could not read the outbox");
                        self.settings.poll
                    }
                }
            } else {
                self.settings.poll
            };
            if flight.tasks.is_empty() {
                let wait = idle;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.outbox.woken() => {}
                    () = background.cancelled() => break,
                }
                continue;
            }
            tokio::select! {
                Some(done) = flight.tasks.join_next() => {
                    finished.extend(done.ok());
                    while let Some(done) = flight.tasks.try_join_next() {
                        finished.extend(done.ok());
                    }
                }
                () = background.cancelled() => break,
            }
        }
        // Attempts that came back before the stop are still recorded; those in flight stay pending.
        if !finished.is_empty() {
            self.record(&mut flight, finished).await;
        }
        tracing::info!("event delivery stopped");
    }

    /// One round for callers that need determinism (tests): fill the window, wait for every
    /// attempt, record them.
    #[cfg(test)]
    pub(crate) async fn step(self: &Arc<Self>) -> Result<Step, StoreError> {
        let mut flight = Flight::default();
        let step = self.refill(&mut flight, self.settings.concurrency.max(1) as usize).await?;
        let mut finished = Vec::new();
        while let Some(done) = flight.tasks.join_next().await {
            finished.extend(done.ok());
        }
        self.record(&mut flight, finished).await;
        Ok(step)
    }

    /// Starts deliveries for free slots. `Idle` says how long to sleep when nothing is in flight
    /// and nothing was due.
    async fn refill(self: &Arc<Self>, flight: &mut Flight, window: usize) -> Result<Step, StoreError> {
        let poll = self.settings.poll;
        let secrets: Arc<[WebhookSecret]> =
            self.keys.webhook_keys().iter().map(|k| WebhookSecret::new(k.secret().to_vec())).collect();
        if secrets.is_empty() {
            return Ok(Step::NoKey);
        }
        let free = window - flight.tasks.len();
        // The heads of subjects in flight come back too (they are not settled yet): ask for more.
        let limit = u32::try_from(flight.tasks.len() + free).unwrap_or(u32::MAX);
        let Some(due) = self.outbox.lease(now_ms(), limit).await? else {
            return Ok(Step::Paused);
        };
        let mut started = 0;
        for event in due {
            if started == free {
                break;
            }
            if !flight.subjects.insert(event.subject.clone()) {
                continue;
            }
            started += 1;
            let (this, secrets) = (self.clone(), secrets.clone());
            let span = tracing::info_span!("deliver", event.id = %event.id, event.type = %event.kind);
            flight.tasks.spawn(async move { this.attempt(&secrets, event).await }.instrument(span));
        }
        if started > 0 || !flight.tasks.is_empty() {
            return Ok(Step::Attempted(started));
        }
        let next = self.outbox.next_due_at().await?;
        Ok(Step::Idle(
            next.map_or(poll, |at| {
                Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(poll)
            }),
        ))
    }

    /// One attempt: POST, then decide (nothing is recorded here).
    async fn attempt(&self, secrets: &[WebhookSecret], event: Pending) -> Finished {
        let (status, retry_after, error) = match self.saas.post_event(&event.id, event.payload, secrets).await
        {
            Ok(a) => (Some(a.status), a.retry_after, format!("HTTP {}", a.status)),
            Err(crate::saas::SaasError::Timeout) => (None, None, "timeout".to_owned()),
            Err(_) => (None, None, "connection failed".to_owned()),
        };
        let attempts = event.attempts + 1;
        let outcome = match decide(status, attempts, &self.settings.schedule, retry_after) {
            Outcome::Delivered => Settle::Delivered,
            Outcome::Retry(delay) => {
                let next_ms = now_ms() + i64::try_from(jitter(delay).as_millis()).unwrap_or(i64::MAX / 2);
                Settle::Retry { attempts, next_ms, status, error }
            }
            Outcome::Dead => Settle::Dead { attempts, status, error },
            Outcome::Gone => Settle::Pause { attempts: event.attempts, status, error },
        };
        Finished { subject: event.subject, settlement: Settlement { id: event.id, outcome }, status }
    }

    /// Records attempts that came back, in one transaction, then frees their subjects. When the
    /// store fails, nothing is recorded: the events stay pending and are sent again (same ids).
    async fn record(&self, flight: &mut Flight, finished: Vec<Finished>) {
        let settled: Vec<Settlement> = finished.iter().map(|f| f.settlement.clone()).collect();
        let result = self.outbox.settle(settled, now_ms()).await;
        for f in &finished {
            flight.subjects.remove(&f.subject);
        }
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), events = finished.len(), "cannot record deliveries; they will be sent again");
            tokio::time::sleep(self.settings.poll).await;
            return;
        }
        for f in finished {
            self.report(&f);
        }
    }

    /// The counter and the log line of one recorded attempt.
    fn report(&self, f: &Finished) {
        let metrics = &self.metrics;
        let id = f.settlement.id.as_str();
        match &f.settlement.outcome {
            Settle::Delivered => {
                metrics.incr("events_delivered");
                tracing::debug!(event.id = id, status = f.status, "event delivered");
            }
            Settle::Retry { attempts, next_ms, error, .. } => {
                metrics.incr("events_retried");
                let delay_ms = (next_ms - now_ms()).max(0);
                tracing::warn!(event.id = id, attempts, error = %error, delay_ms, "event delivery failed; will retry");
            }
            Settle::Dead { attempts, error, .. } => {
                metrics.incr("events_dead_lettered");
                tracing::error!(event.id = id, attempts, error = %error, "event delivery gave up; moved to the dead letters");
            }
            Settle::Pause { .. } => {
                metrics.incr("events_paused");
                tracing::error!(
                    event.id = id,
                    "the events URL answered 410 Gone: delivery is paused until an admin resumes it"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::queue::PAUSED;

    fn schedule() -> Vec<Duration> {
        [5, 300, 1800].iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn outcomes_follow_the_standard_webhooks_rules() {
        let s = schedule();
        assert_eq!(decide(Some(204), 1, &s, None), Outcome::Delivered);
        assert_eq!(decide(Some(410), 1, &s, None), Outcome::Gone);
        assert_eq!(decide(Some(503), 1, &s, None), Outcome::Retry(Duration::from_secs(5)));
        assert_eq!(decide(None, 2, &s, None), Outcome::Retry(Duration::from_secs(300)));
        assert_eq!(
            decide(Some(429), 1, &s, Some(60)),
            Outcome::Retry(Duration::from_secs(60)),
            "Retry-After wins when longer"
        );
        assert_eq!(decide(Some(503), 2, &s, Some(1)), Outcome::Retry(Duration::from_secs(300)));
        assert_eq!(decide(Some(503), 4, &s, None), Outcome::Dead, "schedule exhausted");
        assert_eq!(decide(Some(400), 1, &s, None), Outcome::Retry(Duration::from_secs(5)));
        assert_eq!(decide(Some(400), 3, &s, None), Outcome::Dead, "client errors give up after 3");
        assert_eq!(decide(Some(429), 3, &s, None), Outcome::Retry(Duration::from_secs(1800)));
        assert_eq!(
            decide(Some(302), 1, &s, None),
            Outcome::Retry(Duration::from_secs(5)),
            "3xx is a failure"
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100));
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(120));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    /// A webhook on loopback answering `statuses` in order (then 204), and the events it received.
    async fn webhook(statuses: Vec<u16>) -> (url::Url, Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(std::sync::Mutex::new(statuses.into_iter()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
            let (log, script) = (log.clone(), script.clone());
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                log.lock().unwrap().push(id);
                let status = script.lock().unwrap().next().unwrap_or(204);
                http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    /// A deliverer over a temporary store, delivering to `service` (signing with a tenant key
    /// unless `with_key` is false).
    fn deliverer(dir: &std::path::Path, service: &url::Url, with_key: bool) -> (Arc<Deliverer>, Outbox) {
        let key = if with_key { "tenant-key-0123456789abcdef" } else { "" };
        let key_id = if with_key { "k1" } else { "" };
        let vars: std::collections::HashMap<String, String> = [
            ("APP_SECRET", "s"),
            ("NEXTCLOUD_URL", "http://127.0.0.1:9/"),
            ("APP_PERSISTENT_STORAGE", dir.to_str().unwrap()),
            ("WAGGLE_SERVICE_URL", service.as_str()),
            ("WAGGLE_TENANT_KEY", key),
            ("WAGGLE_TENANT_KEY_ID", key_id),
            ("WAGGLE_EVENTS__SCHEDULE_MS", "0,0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = crate::config::Settings::load_from(&vars).unwrap();
        let store = crate::store::Store::open(dir).unwrap();
        let nc = crate::nextcloud::NcClient::new(&settings.app, &settings.nextcloud).unwrap();
        let instance = crate::nextcloud::InstanceId::load(nc, store.clone()).unwrap();
        let keys = Arc::new(Keyring::load(&settings));
        let saas =
            SaasClient::new(&settings, keys.clone(), Arc::new(crate::signing::Rfc9421), instance).unwrap();
        let outbox = Outbox::new(store).unwrap();
        let d = Deliverer::new(outbox.clone(), saas, keys, Arc::default(), settings.events);
        (Arc::new(d), outbox)
    }

    fn user_event(n: u32) -> crate::events::Event {
        crate::events::event(
            "oc",
            crate::events::EventType::UserUpdated,
            "user:a",
            &n.to_string(),
            &serde_json::json!({"n": n}),
            1,
        )
    }

    #[tokio::test]
    async fn steps_driven_one_by_one_pause_on_410_and_deliver_after_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = webhook(vec![410]).await;
        let (d, outbox) = deliverer(dir.path(), &url, true);
        assert!(matches!(d.step().await.unwrap(), Step::Idle(_)), "nothing due yet");
        outbox.enqueue(vec![user_event(1)], now_ms()).await.unwrap();
        assert_eq!(d.step().await.unwrap(), Step::Attempted(1));
        assert_eq!(d.step().await.unwrap(), Step::Paused, "the 410 paused delivery");
        assert_eq!(seen.lock().unwrap().len(), 1, "nothing is sent while paused");
        outbox.set_flag(PAUSED, None).await.unwrap();
        assert_eq!(d.step().await.unwrap(), Step::Attempted(1));
        assert_eq!(outbox.stats(now_ms()).await.unwrap().depth, 0, "acknowledged after the 204");
        let ids = seen.lock().unwrap().clone();
        assert_eq!(ids, [user_event(1).id, user_event(1).id], "the same event, the same id");
    }

    #[tokio::test]
    async fn without_a_tenant_key_events_wait_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = webhook(vec![]).await;
        let (d, outbox) = deliverer(dir.path(), &url, false);
        outbox.enqueue(vec![user_event(1)], now_ms()).await.unwrap();
        assert_eq!(d.step().await.unwrap(), Step::NoKey);
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(outbox.stats(now_ms()).await.unwrap().depth, 1);
    }
}
