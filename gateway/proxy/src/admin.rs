//! The admin listener: health, readiness and metrics for monitoring; reload, the PKS set,
//! quota use and sanctions (art. 45) for Ditjen's operators. It listens apart from the
//! Pengguna listener (loopback unless `allow_non_loopback` says otherwise) and, except for
//! health, readiness and metrics, wants the bearer token from the configured file (which
//! must be readable by its owner only, checked at start).
//!
//! Whoever can reach it must not be able to hold it: a request head must arrive within
//! [`HEADER_TIMEOUT`] (an idle keep-alive connection is closed after as long), a body
//! within [`BODY_TIMEOUT`] and [`MAX_ADMIN_BODY`], and at most [`MAX_CONNECTIONS`]
//! connections are served at once (more wait in the kernel's accept queue).

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use gerbang_core::{
    Clock, NewSanction, SanctionEditError, SanctionFields, add_sanction_to_text, fresh_sanction_id,
    remove_sanction_from_text,
};
use gerbang_policy::Snapshot;
use gerbang_quota::{Meter, until_next_wib_midnight};
use gerbang_shared::SanctionStore;

use crate::metrics::Metrics;
use crate::reload::{Reloader, SanctionFileError};

/// Largest admin request body (a sanction is a few hundred bytes).
pub const MAX_ADMIN_BODY: usize = 16 * 1024;

/// Time a client has to send a request head, and the longest an idle keep-alive
/// connection is kept: an operator's tool sends its head at once.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Time a client has to send a request body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Everything the admin API reads or changes.
pub struct Admin {
    pub address: std::net::SocketAddr,
    pub token: Option<String>,
    pub quota_series: usize,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub meter: Arc<Meter>,
    pub metrics: Arc<Metrics>,
    pub reloader: Arc<Reloader>,
    pub clock: Arc<dyn Clock>,
    pub audit: Option<Arc<gerbang_audit::AuditLog>>,
    pub instance: String,
    /// Whether the gateway is stopping (`/ready` says so).
    pub(crate) drain: Arc<crate::listener::Drain>,
    /// The looked-up NIKs kept for data balikan (its unnoted count is a metric).
    pub(crate) lookups: Arc<dyn gerbang_shared::LookupMemory>,
}

type Answer = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type)
            .unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Answer {
    reply(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    json_reply(status, &json!({ "error": message.to_string() }))
}

impl Admin {
    /// Serves one request.
    async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
        peer: std::net::IpAddr,
    ) -> Answer {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().clone();
        match (&method, path.as_str()) {
            (&Method::GET, "/health") => return reply(StatusCode::OK, "text/plain", "ok\n"),
            (&Method::GET, "/ready") => return self.ready(),
            (&Method::GET, "/metrics") => return self.metrics(),
            _ => {}
        }
        if let Err(denied) = self.check_token(&req) {
            return *denied;
        }
        let read = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(req.into_body(), MAX_ADMIN_BODY).collect(),
        );
        let body = match read.await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_ADMIN_BODY} bytes"),
                );
            }
            Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("unreadable body: {e}")),
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {BODY_TIMEOUT:?}"),
                );
            }
        };
        let param = |name: &str| query_param(&query, name);
        match (&method, path.as_str()) {
            (&Method::POST, "/reload") => self.reload().await,
            (&Method::GET, "/reload/diff") => self.reload_diff().await,
            (&Method::GET, "/pks") => match param("nomor") {
                Some(nomor) => self.pks_detail(&nomor),
                None => self.pks_list(),
            },
            (&Method::GET, "/quota") => self.quota(param("user"), param("pengguna")),
            (&Method::GET, "/sanksi") => self.sanctions(),
            (&Method::POST, "/sanksi") => self.add_sanction(&body, peer).await,
            (&Method::DELETE, p) if p.starts_with("/sanksi/") => {
                let id = p.trim_start_matches("/sanksi/").to_string();
                self.lift_sanction(id, peer).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {method} {path}"),
            ),
        }
    }

    fn check_token(&self, req: &http::Request<Incoming>) -> Result<(), Box<Answer>> {
        let Some(token) = &self.token else {
            return Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no admin token is configured ([admin] token_file); only /health, /ready and /metrics answer",
            )));
        };
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes()).into() {
            Ok(())
        } else {
            Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            )))
        }
    }

    /// Whether a balancer should send requests here, from the live state (not from gauges a
    /// scrape refreshes): 503 with the reason while the quota store is down, the decision
    /// log cannot write, or the gateway is draining to stop.
    fn ready(&self) -> Answer {
        let quota = self.meter.store_healthy();
        // No decision log configured: nothing can fail to be written.
        let audit = self.audit.as_ref().is_none_or(|log| log.is_healthy());
        let draining = self.drain.is_draining();
        let reason = if draining {
            Some(
                "draining: the gateway is stopping; requests in flight finish, new connections are refused",
            )
        } else if !quota {
            Some("the quota store is unavailable: data requests are refused (code 25)")
        } else if !audit {
            Some("the decision log cannot be written: data requests are refused (code 26)")
        } else {
            None
        };
        let status = if reason.is_some() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        json_reply(
            status,
            &json!({
                "ready": reason.is_none(),
                "reason": reason,
                "quota_store": quota,
                "audit_log": audit,
                "draining": draining,
                "policy_hash": self.snapshot.load().engine().hash(),
            }),
        )
    }

    fn metrics(&self) -> Answer {
        self.metrics.watch(|| crate::metrics::LiveState {
            snapshot: Arc::clone(&self.snapshot),
            meter: Arc::clone(&self.meter),
            clock: Arc::clone(&self.clock),
            quota_series: self.quota_series,
        });
        self.metrics.refresh_audit(self.audit.as_deref());
        self.metrics.set_balikan_unnoted(self.lookups.dropped());
        match self.metrics.render() {
            Ok(text) => reply(StatusCode::OK, "text/plain; version=0.0.4", text),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    async fn reload(&self) -> Answer {
        let r = Arc::clone(&self.reloader);
        match tokio::task::spawn_blocking(move || r.reload("admin API")).await {
            Ok(Ok(summary)) => json_reply(StatusCode::OK, &json!({ "reloaded": summary })),
            Ok(Err(errors)) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload refused, the previous set stays in force:\n{errors}"),
            ),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    /// What a reload would change now (the files on disk against the running set), and
    /// what was proved of their rules; nothing is swapped. 422 when a reload would be refused.
    async fn reload_diff(&self) -> Answer {
        let r = Arc::clone(&self.reloader);
        match tokio::task::spawn_blocking(move || r.preview()).await {
            Ok(Ok(review)) => json_reply(
                StatusCode::OK,
                &json!({ "text": review.diff.render(), "review": review }),
            ),
            Ok(Err(errors)) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("a reload now would be refused:\n{errors}"),
            ),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    fn pks_list(&self) -> Answer {
        let snap = self.snapshot.load();
        let list: Vec<_> = snap
            .agreements()
            .iter()
            .map(|p| {
                json!({
                    "nomor": p.nomor,
                    "pengguna": p.pengguna,
                    "nama_pengguna": p.nama_pengguna,
                    "status": format!("{:?}", p.status).to_lowercase(),
                    "mulai": p.mulai,
                    "sampai": p.sampai,
                    "metode_akses": p.metode_akses.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "users": p.users.len(),
                    "file": p.source.display().to_string(),
                })
            })
            .collect();
        json_reply(StatusCode::OK, &json!({ "pks": list }))
    }

    fn pks_detail(&self, nomor: &str) -> Answer {
        let snap = self.snapshot.load();
        let day = self.clock.today();
        let Some(p) = snap.agreements().iter().find(|p| p.nomor == nomor) else {
            return error(StatusCode::NOT_FOUND, format!("no PKS numbered `{nomor}`"));
        };
        let vocab = snap.vocabulary();
        // Password hashes and SAM keys stay out: the detail is for reading the agreement.
        let users: Vec<_> = p
            .users
            .iter()
            .map(|u| {
                json!({
                    "id": u.id,
                    "status": format!("{:?}", u.status).to_lowercase(),
                    "kuota_harian": u.kuota_harian.get(),
                    "used_today": self.meter.used(&u.id, day),
                    "ip_lan": u.ip_lan.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        let sams: Vec<_> = p
            .sams
            .iter()
            .map(|s| json!({ "id": s.id, "status": format!("{:?}", s.status).to_lowercase() }))
            .collect();
        json_reply(
            StatusCode::OK,
            &json!({
                "nomor": p.nomor,
                "pengguna": p.pengguna,
                "nama_pengguna": p.nama_pengguna,
                "tujuan": p.tujuan,
                "status": format!("{:?}", p.status).to_lowercase(),
                "mulai": p.mulai,
                "sampai": p.sampai,
                "metode_akses": p.metode_akses.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "elemen_data": vocab.names(p.elemen_data),
                "kepemilikan_asing_mayoritas": p.kepemilikan_asing_mayoritas,
                "penegak_hukum": p.penegak_hukum,
                "users": users,
                "sams": sams,
                "file": p.source.display().to_string(),
            }),
        )
    }

    fn quota(&self, user: Option<String>, pengguna: Option<String>) -> Answer {
        let snap = self.snapshot.load();
        let day = self.clock.today();
        let now = self.clock.now();
        let reset = (now + until_next_wib_midnight(now)).with_timezone(&gerbang_core::WIB);
        let rows: Vec<_> = snap
            .agreements()
            .iter()
            .filter(|p| pengguna.as_ref().is_none_or(|want| &p.pengguna == want))
            .flat_map(|p| p.users.iter().map(move |u| (p, u)))
            .filter(|(_, u)| user.as_ref().is_none_or(|want| &u.id == want))
            .map(|(p, u)| {
                let used = self.meter.used(&u.id, day);
                let limit = u.kuota_harian.get();
                // With a Pengguna cap, what all its User IDs used together, and its limit.
                let cap = snap.pengguna_cap(&p.pengguna).map(|cap| {
                    let used = self
                        .meter
                        .used(&crate::stages::pengguna_key(&p.pengguna), day);
                    json!({
                        "used": used,
                        "limit": cap.get(),
                        "remaining": cap.get().saturating_sub(used),
                    })
                });
                json!({
                    "user_id": u.id,
                    "pengguna": p.pengguna,
                    "pks": p.nomor,
                    "day": day,
                    "used": used,
                    "limit": limit,
                    "remaining": limit.saturating_sub(used),
                    "pengguna_cap": cap,
                    "reset": reset.to_rfc3339(),
                })
            })
            .collect();
        if rows.is_empty() && (user.is_some() || pengguna.is_some()) {
            return error(
                StatusCode::NOT_FOUND,
                "no such User ID or Pengguna in the loaded PKS files",
            );
        }
        json_reply(StatusCode::OK, &json!({ "quota": rows }))
    }

    fn sanctions(&self) -> Answer {
        let snap = self.snapshot.load();
        json_reply(
            StatusCode::OK,
            &json!({ "sanksi": snap.sanctions().entries }),
        )
    }

    async fn add_sanction(&self, body: &Bytes, peer: std::net::IpAddr) -> Answer {
        let new: NewSanction = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "a sanction is {{\"jenis\", \"sasaran\", \"alasan\", \"oleh\"?, \"kuota_harian\"?}}: {e}"
                    ),
                );
            }
        };
        let now = self.clock.now().with_timezone(&gerbang_core::WIB);
        if let Some(store) = self.reloader.shared_sanctions() {
            return self
                .add_shared_sanction(Arc::clone(store), &new, now, peer)
                .await;
        }
        let target = (new.jenis, new.sasaran.clone());
        let r = Arc::clone(&self.reloader);
        let edited = tokio::task::spawn_blocking(move || {
            r.edit_sanctions(|text| add_sanction_to_text(text, &new, now))
        })
        .await;
        match edited {
            Ok(Ok((id, summary))) => {
                tracing::warn!(sanction.id = id.as_str(), "sanction applied");
                self.audit_sanction(
                    &format!("SanksiTambah:{}", target.0.as_str()),
                    &id,
                    Some(target.1),
                    peer,
                    &summary.policy_hash,
                );
                json_reply(
                    StatusCode::CREATED,
                    &json!({ "id": id, "reloaded": summary }),
                )
            }
            Ok(Err(e)) => sanction_error(&e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    async fn lift_sanction(&self, id: String, peer: std::net::IpAddr) -> Answer {
        if let Some(store) = self.reloader.shared_sanctions() {
            return self.lift_shared_sanction(Arc::clone(store), id, peer).await;
        }
        let r = Arc::clone(&self.reloader);
        let wanted = id.clone();
        let edited = tokio::task::spawn_blocking(move || {
            r.edit_sanctions(|text| remove_sanction_from_text(text, &wanted).map(|t| (t, ())))
        })
        .await;
        match edited {
            Ok(Ok(((), summary))) => {
                tracing::warn!(sanction.id = id.as_str(), "sanction lifted");
                self.audit_sanction("SanksiCabut", &id, None, peer, &summary.policy_hash);
                json_reply(
                    StatusCode::OK,
                    &json!({ "lifted": id, "reloaded": summary }),
                )
            }
            Ok(Err(e)) => sanction_error(&e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

/// Sanctions shared by every instance through Redis (`docs/gateway.md`, "Several
/// instances"): added and lifted there, in force here at once and on the others within a
/// second. The sanctions file, if any, stays this instance's own: its entries are lifted
/// by editing it.
impl Admin {
    async fn add_shared_sanction(
        &self,
        store: Arc<dyn SanctionStore>,
        new: &NewSanction,
        now: chrono::DateTime<chrono::FixedOffset>,
        peer: std::net::IpAddr,
    ) -> Answer {
        let fields = SanctionFields::new(new, now);
        if let Err(why) = fields.check() {
            return error(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
        if !fields.target_known(self.snapshot.load().agreements()) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "sasaran: `{}` ({}) is in no PKS file",
                    fields.sasaran,
                    fields.jenis.as_str()
                ),
            );
        }
        let serde_json::Value::Object(map) = json!(fields) else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a sanction is not a JSON object",
            );
        };
        // An id neither the file nor Redis has; another instance applying one in the same
        // second takes it first, and the next is tried.
        let mut tried: Vec<String> = Vec::new();
        let id = loop {
            let id = {
                let snap = self.snapshot.load();
                let shared = store.current();
                fresh_sanction_id(now, |id| {
                    tried.iter().any(|t| t == id)
                        || shared.entries.contains_key(id)
                        || snap.sanctions().entries.iter().any(|s| s.id == id)
                })
            };
            match store.add(&id, &map).await {
                Ok(true) => break id,
                Ok(false) if tried.len() < MAX_ID_TRIES => tried.push(id),
                Ok(false) => {
                    return error(
                        StatusCode::CONFLICT,
                        "no free sanction id within this second; try again",
                    );
                }
                Err(e) => return shared_unreachable(&e),
            }
        };
        tracing::warn!(
            sanction.id = id.as_str(),
            "sanction applied on every instance"
        );
        let (summary, hash) = self.reload_after_shared_change().await;
        self.audit_sanction(
            &format!("SanksiTambah:{}", fields.jenis.as_str()),
            &id,
            Some(fields.sasaran.clone()),
            peer,
            &hash,
        );
        json_reply(
            StatusCode::CREATED,
            &json!({ "id": id, "shared": true, "reloaded": summary }),
        )
    }

    async fn lift_shared_sanction(
        &self,
        store: Arc<dyn SanctionStore>,
        id: String,
        peer: std::net::IpAddr,
    ) -> Answer {
        match store.lift(&id).await {
            Ok(true) => {}
            Ok(false) => {
                let snap = self.snapshot.load();
                return match (
                    snap.sanctions().entries.iter().any(|s| s.id == id),
                    &snap.sanctions().source,
                ) {
                    (true, Some(file)) => error(
                        StatusCode::CONFLICT,
                        format!(
                            "sanction `{id}` is in this instance's sanctions file {}, not shared: lift it by editing that file on every instance that has it",
                            file.display()
                        ),
                    ),
                    _ => error(StatusCode::NOT_FOUND, format!("no sanction with id `{id}`")),
                };
            }
            Err(e) => return shared_unreachable(&e),
        }
        tracing::warn!(
            sanction.id = id.as_str(),
            "sanction lifted on every instance"
        );
        let (summary, hash) = self.reload_after_shared_change().await;
        self.audit_sanction("SanksiCabut", &id, None, peer, &hash);
        json_reply(
            StatusCode::OK,
            &json!({ "lifted": id, "shared": true, "reloaded": summary }),
        )
    }

    /// Reloads so that the change is in force here before the answer; the summary, `None`
    /// (logged) if the reload was refused (the change stands in Redis, and the files must be
    /// mended), and the policy hash in force for the decision-log record.
    async fn reload_after_shared_change(&self) -> (Option<crate::reload::ReloadSummary>, String) {
        let r = Arc::clone(&self.reloader);
        match tokio::task::spawn_blocking(move || r.reload("shared sanction")).await {
            Ok(Ok(summary)) => {
                let hash = summary.policy_hash.clone();
                (Some(summary), hash)
            }
            Ok(Err(_)) | Err(_) => (None, self.snapshot.load().engine().hash().to_string()),
        }
    }
}

/// How many ids one second offers a sanction before the API gives up.
const MAX_ID_TRIES: usize = 64;

fn shared_unreachable(e: &gerbang_shared::Unavailable) -> Answer {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the shared Redis is unreachable, so no sanction can be applied or lifted now (those in force stay): {e}"
        ),
    )
}

impl Admin {
    /// Writes a sanction applied or lifted to the decision log: the action names it, the
    /// reason holds its id, `user_id` its target.
    fn audit_sanction(
        &self,
        action: &str,
        id: &str,
        target: Option<String>,
        peer: std::net::IpAddr,
        policy_hash: &str,
    ) {
        let Some(log) = &self.audit else { return };
        let record = gerbang_audit::Record {
            time: self.clock.now(),
            instance: self.instance.clone(),
            request_id: format!("{}-admin-{id}", self.instance),
            user_id: target,
            pengguna: None,
            pks: None,
            peer_ip: peer,
            channel: Some("admin".into()),
            action: Some(action.to_string()),
            decision: gerbang_audit::Decision::Allow,
            reason: Some(id.to_string()),
            policy_ids: Vec::new(),
            policy_hash: policy_hash.to_string(),
            nik_digest: None,
            elements: Vec::new(),
            balikan: None,
            upstream_status: None,
            latency_us: 0,
            quota_used: None,
            quota_limit: None,
        };
        if let Err(e) = log.append(&record) {
            tracing::error!(error = %e, sanction.id = id, "the sanction is in force but its decision-log record was not written");
        }
    }
}

fn sanction_error(e: &SanctionFileError) -> Answer {
    let status = match e {
        SanctionFileError::NotConfigured => StatusCode::CONFLICT,
        SanctionFileError::Read { .. } | SanctionFileError::Write { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        SanctionFileError::Edit(SanctionEditError::NotFound(_)) => StatusCode::NOT_FOUND,
        SanctionFileError::Edit(SanctionEditError::Unreadable(_))
        | SanctionFileError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e)
}

/// The decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The admin listener as a pingora background service, on the socket bound at the start
/// (or taken over from the previous process in a binary upgrade).
pub struct AdminService {
    pub admin: Arc<Admin>,
    pub listener: std::sync::Mutex<Option<std::net::TcpListener>>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let admin = Arc::clone(&self.admin);
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(listener) = taken else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address = %admin.address, error = %e, "cannot open the admin listener; metrics, reload and sanctions are unavailable");
                return;
            }
        };
        let address = listener.local_addr().unwrap_or(admin.address);
        tracing::info!(address = %address, "admin listener ready");
        // With port 0 in the configuration, how a supervisor learns the port.
        println!("gerbang admin listening on http://{address}");
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            // A connection is accepted only with a free slot: past the cap, clients wait
            // in the kernel's accept queue rather than holding a task each.
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        // Out of file descriptors and the like: do not spin.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let admin = Arc::clone(&admin);
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let admin = Arc::clone(&admin);
                    async move { Ok::<_, Infallible>(admin.handle(req, peer.ip()).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
            });
        }
    }
}
