//! The demo's HTTP side: the simulator's test hooks, the people the tour looks up, and
//! the gateway as a Pengguna reaches it, one client per source address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use gerbang_core::Config;
use serde_json::Value;

use super::children::loopback_for;
use super::json::body;
use super::printout::{shell_quote, shown};
use super::{PASSWORD, REQUEST_TIMEOUT};

/// The simulator's test hooks.
pub(super) struct Sim {
    pub(super) base: String,
    pub(super) client: reqwest::Client,
}

impl Sim {
    pub(super) fn new(addr: SocketAddr) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: format!("http://{addr}"),
            client,
        })
    }

    pub(super) async fn get(&self, path_and_query: &str) -> Result<String> {
        let url = format!("{}{path_and_query}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    pub(super) async fn sample(&self, kind: &str, n: usize) -> Result<Vec<String>> {
        let body = self
            .get(&format!("/__sim/sample?kind={kind}&n={n}"))
            .await?;
        let v: Value = serde_json::from_str(&body).context("dwh-sim sample is not JSON")?;
        let niks: Vec<String> = v
            .get("nik")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if niks.is_empty() {
            bail!("dwh-sim gave no sample NIK of kind {kind}");
        }
        Ok(niks)
    }

    /// The full record as the simulator holds it (raw JSON object).
    pub(super) async fn record(&self, nik: &str) -> Result<String> {
        self.get(&format!("/__sim/record?nik={nik}")).await
    }

    /// Data requests the simulator has received.
    pub(super) async fn requests(&self) -> Result<u64> {
        let body = self.get("/__sim/stats").await?;
        let v: Value = serde_json::from_str(&body).context("dwh-sim stats are not JSON")?;
        v.get("requests")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("dwh-sim stats without `requests`: {body}"))
    }
}

/// One person of the simulated population, as the tour uses them.
pub(super) struct Person {
    pub(super) nik: String,
    pub(super) name: String,
    /// `dd-MM-yyyy`, as clients send dates.
    pub(super) birth_date: String,
    pub(super) raw: String,
}

impl Person {
    pub(super) async fn fetch(sim: &Sim, nik: &str) -> Result<Self> {
        let raw = sim.record(nik).await?;
        let v: Value = serde_json::from_str(&raw).context("dwh-sim record is not JSON")?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("dwh-sim record of {nik} has no {k}"))
        };
        let name = text("NAMA_LGKP")?;
        let iso = text("TGL_LHR")?;
        let birth_date = match iso.split('-').collect::<Vec<_>>()[..] {
            [y, m, d] => format!("{d}-{m}-{y}"),
            _ => bail!("dwh-sim record of {nik}: TGL_LHR {iso:?} is not yyyy-MM-dd"),
        };
        Ok(Self {
            nik: nik.to_string(),
            name,
            birth_date,
            raw,
        })
    }
}

/// The gateway as a Pengguna reaches it: one client per source address.
pub(super) struct Api {
    pub(super) scheme: &'static str,
    pub(super) port: u16,
    pub(super) connect: SocketAddr,
    pub(super) ca: Option<(reqwest::Certificate, String)>,
    pub(super) clients: BTreeMap<IpAddr, reqwest::Client>,
}

impl Api {
    pub(super) fn new(config: &Config) -> Result<Self> {
        let connect = loopback_for(config.listen.address);
        let ca = match &config.listen.tls {
            Some(tls) => {
                let path = tls.cert.parent().unwrap_or(Path::new(".")).join("ca.pem");
                let pem = std::fs::read(&path).with_context(|| {
                    format!(
                        "reading the CA that signed the gateway's certificate ({})",
                        shown(&path)
                    )
                })?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", shown(&path)))?;
                Some((cert, shown(&path)))
            }
            None => None,
        };
        Ok(Self {
            scheme: if ca.is_some() { "https" } else { "http" },
            port: connect.port(),
            connect,
            ca,
            clients: BTreeMap::new(),
        })
    }

    /// The URL of a web service: a lookup's, or the data-balikan service's for
    /// [`BALIKAN`].
    pub(super) fn url(&self, instansi: &str, service: &str) -> String {
        if service == BALIKAN {
            return format!(
                "{}://localhost:{}/dukcapil/balikan/{instansi}",
                self.scheme, self.port
            );
        }
        format!(
            "{}://localhost:{}/dukcapil/get_json/{instansi}/{service}",
            self.scheme, self.port
        )
    }

    pub(super) fn client(&mut self, from: IpAddr) -> Result<reqwest::Client> {
        if let Some(c) = self.clients.get(&from) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .local_address(from)
            // The certificate names localhost; always reach the configured listener.
            .resolve("localhost", self.connect)
            .timeout(REQUEST_TIMEOUT);
        if let Some((cert, _)) = &self.ca {
            builder = builder.add_root_certificate(cert.clone());
        }
        let client = builder
            .build()
            .with_context(|| format!("building an HTTP client bound to {from}"))?;
        self.clients.insert(from, client.clone());
        Ok(client)
    }

    pub(super) async fn send(&mut self, call: &Call) -> Result<(u16, String)> {
        let client = self.client(call.from)?;
        let mut request = client
            .post(self.url(call.instansi, call.service))
            .header("Content-Type", "application/json")
            .body(call.body.clone());
        for (name, value) in &call.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, body))
    }

    /// The same request as a ready-to-paste curl command.
    pub(super) fn curl(&self, call: &Call) -> String {
        let mut s = format!("curl -s --interface {}", call.from);
        if let Some((_, path)) = &self.ca {
            let _ = write!(s, " --cacert {}", shell_quote(path));
        }
        for (name, value) in &call.headers {
            let _ = write!(s, " -H {}", shell_quote(&format!("{name}: {value}")));
        }
        let _ = write!(
            s,
            " \\\n    -H 'Content-Type: application/json' \\\n    -d {} \\\n    {}",
            shell_quote(&call.body),
            self.url(call.instansi, call.service)
        );
        s
    }
}

/// The `service` of a [`Call`] to the data-balikan web service (`/dukcapil/balikan/…`).
pub(super) const BALIKAN: &str = "balikan";

/// One request of the tour.
pub(super) struct Call {
    pub(super) from: IpAddr,
    pub(super) instansi: &'static str,
    pub(super) service: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: String,
}

impl Call {
    pub(super) fn new(
        from: [u8; 4],
        instansi: &'static str,
        service: &'static str,
        body: String,
    ) -> Self {
        Self {
            from: IpAddr::V4(Ipv4Addr::from(from)),
            instansi,
            service,
            headers: Vec::new(),
            body,
        }
    }

    /// A `CALL_NIK` with the demo password, keys in the order clients send them.
    pub(super) fn nik(from: [u8; 4], instansi: &'static str, user: &str, nik: &str) -> Self {
        let body = body(&[("nik", nik), ("user_id", user), ("password", PASSWORD)]);
        Self::new(from, instansi, "CALL_NIK", body)
    }

    pub(super) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}
