//! Telling the CDN what changed. Each change that leaves stale copies in shared caches — an
//! image deleted, its variants purged or the image un-published, a preset changed or deleted, an
//! owner's key rotated or the owner deleted — queues the cache tags of those copies (the tags
//! every `/i` answer carries in `Cache-Tag` and `Surrogate-Key`) in the database. A background
//! sender in every replica POSTs them to `PURGE_WEBHOOK_URL` as `{"tags": [...]}` with the same
//! tags in a `Surrogate-Key` header — what Varnish (ban, xkey), Fastly (surrogate keys) and
//! Cloudflare (cache tags) purge by — retrying with back-off.
//!
//! The queue lives in the database, so a purge survives a restart and memory holds one batch at
//! a time; a request only writes its row (it never waits for the webhook).

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

use crate::config::PurgeConfig;
use crate::db::{Db, QueuedPurge};

/// Purges sent in one webhook call, at most.
const BATCH: u32 = 32;
/// How often a sender looks for purges that other replicas queued or that are due again.
const POLL: Duration = Duration::from_secs(2);
/// The longest pause between two attempts at a failing purge.
const LONGEST_BACKOFF: Duration = Duration::from_secs(300);

/// The tag of every cached answer about image `id`.
pub fn image_tag(id: impl Display) -> String {
    format!("img-{id}")
}

/// The tag of every cached answer about `owner`'s images.
pub fn owner_tag(owner: impl Display) -> String {
    format!("own-{owner}")
}

/// The tag of every cached answer made through `owner`'s preset `name`.
pub fn preset_tag(owner: impl Display, name: &str) -> String {
    format!("pre-{owner}-{name}")
}

/// The tags a CDN purges an answer by, as its headers: the image (`img-{id}`), its owner
/// (`own-{user id}`) and, on a preset's path, the preset (`pre-{user id}-{name}`) — as
/// `Cache-Tag` (Cloudflare, comma-separated) and `Surrogate-Key` (Fastly, Varnish xkey;
/// space-separated). Made once per URL and remembered with it, not per request.
#[derive(Debug, Clone)]
pub struct Tags {
    /// `Cache-Tag`.
    pub cache_tag: http::HeaderValue,
    /// `Surrogate-Key`.
    pub surrogate_key: http::HeaderValue,
}

impl Tags {
    /// The tags of an answer about image `id` of `owner`, asked for with `ops`; `None` when one
    /// cannot be a header value (it always can: ids, names and ops are ASCII).
    pub fn of(id: &str, owner: &str, ops: Option<&str>) -> Option<Self> {
        let preset = ops.and_then(|ops| ops.split(',').find_map(|token| token.strip_prefix("p_")));
        let mut tags = vec![image_tag(id), owner_tag(owner)];
        if let Some(name) = preset {
            tags.push(preset_tag(owner, name));
        }
        Some(Self {
            cache_tag: http::HeaderValue::from_str(&tags.join(",")).ok()?,
            surrogate_key: http::HeaderValue::from_str(&tags.join(" ")).ok()?,
        })
    }
}

/// True for an absolute `http://` or `https://` URL with a host.
pub fn is_webhook_url(url: &str) -> bool {
    url.parse::<Uri>().is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

/// Queues purges and sends them; does nothing without a webhook.
#[derive(Clone, Default)]
pub struct Purges {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    db: Db,
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    give_up_after: Duration,
    /// Wakes this replica's sender when this replica queues a purge.
    queued: Notify,
}

impl Purges {
    /// Purges sent to `config.webhook_url` (none when it is empty), queued in `db`.
    ///
    /// # Errors
    /// The URL is not http(s), or it is https and the system has no root certificates.
    pub fn new(db: Db, config: &PurgeConfig) -> Result<Self, String> {
        if config.webhook_url.is_empty() {
            return Ok(Self::default());
        }
        let url: Uri = config.webhook_url.parse().map_err(|e| format!("PURGE_WEBHOOK_URL: {e}"))?;
        let https = url.scheme_str() == Some("https");
        let tls = crate::db::tls::web_client_config(https)
            .map_err(|e| format!("PURGE_WEBHOOK_URL is https, but its certificate cannot be checked: {e}"))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let client = Client::builder(TokioExecutor::new()).build(connector.enable_http1().wrap_connector(http));
        let inner = Inner {
            db,
            url,
            client,
            timeout: config.timeout,
            give_up_after: config.give_up_after,
            queued: Notify::new(),
        };
        Ok(Self { inner: Some(Arc::new(inner)) })
    }

    /// Queues a purge of `tags` (written to the database before this returns; sent later). A
    /// failure is logged, not returned: the change it follows has happened.
    pub async fn queue(&self, tags: &[String]) {
        let Some(inner) = &self.inner else { return };
        if let Err(e) = inner.db.queue_purge(&tags.join(" "), now_ms()).await {
            tracing::error!(error = ?e, ?tags, "could not queue a purge for the CDN; purge these tags by hand");
            return;
        }
        inner.queued.notify_one();
    }

    /// Sends queued purges until `stop` completes (nothing to do without a webhook).
    pub async fn send_until(&self, stop: impl std::future::Future<Output = ()>) {
        let Some(inner) = self.inner.clone() else { return };
        tokio::select! {
            () = inner.send_forever() => {}
            () = stop => {}
        }
    }
}

impl Inner {
    async fn send_forever(&self) {
        loop {
            // A taken batch is hidden from other senders for twice a call's timeout: should
            // this replica die mid-call, the purges come back then.
            let now = now_ms();
            let batch = match self.db.take_purges(now, now + millis(self.timeout * 2), BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = ?e, "could not read the purge queue");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                // Woken by this replica's next purge, else looking again shortly.
                let _ = tokio::time::timeout(POLL, self.queued.notified()).await;
                continue;
            }
            self.send(&batch).await;
        }
    }

    /// One webhook call for `batch`: done when it is taken; else each purge is due again after
    /// its back-off, or dropped once it has failed for longer than `give_up_after`.
    async fn send(&self, batch: &[QueuedPurge]) {
        let mut tags: Vec<&str> = batch.iter().flat_map(|p| p.tags.split(' ')).filter(|t| !t.is_empty()).collect();
        tags.sort_unstable();
        tags.dedup();
        let ids: Vec<i64> = batch.iter().map(|p| p.id).collect();
        let outcome = self.post(&tags).await;
        let done = match &outcome {
            Ok(()) => {
                tracing::info!(tags = tags.len(), purges = ids.len(), "purge sent to the webhook");
                ids
            }
            Err(why) => {
                let now = now_ms();
                let expired = |p: &&QueuedPurge| now - p.created_ms > millis(self.give_up_after);
                let (dropped, retried): (Vec<&QueuedPurge>, Vec<&QueuedPurge>) = batch.iter().partition(expired);
                let attempts = retried.iter().map(|p| p.attempts).max().unwrap_or(0);
                let next = now + millis(backoff(attempts));
                tracing::warn!(error = %why, purges = retried.len(), attempts = attempts + 1, "the purge webhook failed; retrying later");
                if !retried.is_empty() {
                    let ids: Vec<i64> = retried.iter().map(|p| p.id).collect();
                    if let Err(e) = self.db.purges_failed(&ids, next).await {
                        tracing::warn!(error = ?e, "could not reschedule purges");
                    }
                }
                for purge in &dropped {
                    tracing::error!(tags = %purge.tags, "gave up on a purge the webhook kept refusing; purge these tags by hand");
                }
                dropped.iter().map(|p| p.id).collect()
            }
        };
        if !done.is_empty() {
            if let Err(e) = self.db.purges_done(&done).await {
                tracing::warn!(error = ?e, "could not remove sent purges from the queue; they may be sent again");
            }
        }
    }

    async fn post(&self, tags: &[&str]) -> Result<(), String> {
        let body = serde_json::json!({ "tags": tags }).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("surrogate-key", tags.join(" "))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read the answer to its end so the connection can be used again.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("answered {status}"))
            }
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| "timed out".to_owned())?
    }
}

/// The pause after `attempts` failed attempts: 1 s, doubling, at most [`LONGEST_BACKOFF`].
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(16)).min(LONGEST_BACKOFF)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (0..12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), LONGEST_BACKOFF);
    }

    #[test]
    fn webhook_urls_are_absolute_http() {
        for good in ["http://127.0.0.1:6081/purge", "https://cdn.example/purge?x=1"] {
            assert!(is_webhook_url(good), "{good}");
        }
        for bad in ["", "/purge", "ftp://x/", "127.0.0.1:6081", "http://"] {
            assert!(!is_webhook_url(bad), "{bad}");
        }
    }
}
