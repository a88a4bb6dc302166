//! Operator commands that talk to a running gateway's admin listener: reload, quota view,
//! the PKS set, and sanctions (art. 45). The address and token come from `gerbang.toml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A client of one gateway's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    /// Reads the admin address and token from the configuration.
    pub fn from_config(path: &Path) -> Result<Self> {
        let config = gerbang_core::Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(admin) = &config.admin else {
            bail!(
                "{} has no [admin] section: the gateway has no admin listener to ask",
                path.display()
            );
        };
        let token = config
            .load_admin_token()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_context(|| format!("{}: [admin] token_file is not set", path.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            base: format!("http://{}", admin.address),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            runtime,
        })
    }

    /// Sends one call; an error status becomes an error carrying the gateway's message.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut req = self.http.request(method, &url).bearer_auth(&self.token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.with_context(|| {
                format!("cannot reach the admin listener at {url}; is the gateway running?")
            })?;
            let status = resp.status();
            let value: Value = resp
                .json()
                .await
                .context("the admin API answered something that is not JSON")?;
            if status.is_success() {
                Ok(value)
            } else {
                let msg = value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                bail!("{status}: {msg}")
            }
        })
    }
}

/// `gerbang reload`.
pub fn reload(config: &Path) -> Result<ExitCode> {
    let v = AdminClient::from_config(config)?.call(reqwest::Method::POST, "/reload", None)?;
    let r = &v["reloaded"];
    println!(
        "reloaded: {} PKS, {} User IDs, {} sanction(s), policy set {} ({} ms)",
        r["pks"], r["users"], r["sanctions"], r["policy_hash"], r["duration_ms"]
    );
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!("changes:  {}", text(&r["changes"]));
    println!("rules:    {}", text(&r["proof"]));
    Ok(ExitCode::SUCCESS)
}

/// `gerbang quota show`.
pub fn quota_show(config: &Path, user: Option<&str>, pengguna: Option<&str>) -> Result<ExitCode> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(u) = user {
        query.append_pair("user", u);
    }
    if let Some(p) = pengguna {
        query.append_pair("pengguna", p);
    }
    let v = AdminClient::from_config(config)?.call(
        reqwest::Method::GET,
        &format!("/quota?{}", query.finish()),
        None,
    )?;
    let rows = v["quota"].as_array().cloned().unwrap_or_default();
    // Each Pengguna with a daily cap across its User IDs, once.
    let mut caps: Vec<(String, &serde_json::Value)> = Vec::new();
    for r in &rows {
        let name = r["pengguna"].as_str().unwrap_or("").to_string();
        if r["pengguna_cap"].is_object() && caps.iter().all(|(n, _)| *n != name) {
            caps.push((name, &r["pengguna_cap"]));
        }
    }
    println!(
        "{:<24} {:<24} {:>8} {:>8} {:>9}  reset (WIB)",
        "user_id", "pengguna", "used", "limit", "remaining"
    );
    for r in &rows {
        println!(
            "{:<24} {:<24} {:>8} {:>8} {:>9}  {}",
            r["user_id"].as_str().unwrap_or(""),
            r["pengguna"].as_str().unwrap_or(""),
            r["used"].as_u64().unwrap_or(0),
            r["limit"].as_u64().unwrap_or(0),
            r["remaining"].as_u64().unwrap_or(0),
            r["reset"].as_str().unwrap_or("")
        );
    }
    for (name, cap) in caps {
        println!(
            "{:<24} {:<24} {:>8} {:>8} {:>9}  (cap of the Pengguna across its User IDs)",
            "(all User IDs)",
            name,
            cap["used"].as_u64().unwrap_or(0),
            cap["limit"].as_u64().unwrap_or(0),
            cap["remaining"].as_u64().unwrap_or(0),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `gerbang sanksi list`.
pub fn sanctions_list(config: &Path) -> Result<ExitCode> {
    let v = AdminClient::from_config(config)?.call(reqwest::Method::GET, "/sanksi", None)?;
    let rows = v["sanksi"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no sanctions in force");
    }
    for r in rows {
        let quota = r["kuota_harian"]
            .as_u64()
            .map(|q| format!(" (kuota {q}/hari)"))
            .unwrap_or_default();
        println!(
            "{}  {} {}{}  since {}  by {}: {}",
            r["id"].as_str().unwrap_or(""),
            r["jenis"].as_str().unwrap_or(""),
            r["sasaran"].as_str().unwrap_or(""),
            quota,
            r["sejak"].as_str().unwrap_or(""),
            r["oleh"].as_str().unwrap_or(""),
            r["alasan"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `gerbang sanksi add`.
pub fn sanctions_add(
    config: &Path,
    jenis: gerbang_core::SanctionKind,
    sasaran: &str,
    kuota_harian: Option<u32>,
    alasan: &str,
    oleh: &str,
) -> Result<ExitCode> {
    let body = serde_json::json!({
        "jenis": jenis.as_str(),
        "sasaran": sasaran,
        "kuota_harian": kuota_harian,
        "alasan": alasan,
        "oleh": oleh,
    });
    let v = AdminClient::from_config(config)?.call(reqwest::Method::POST, "/sanksi", Some(body))?;
    println!(
        "sanction {} applied; in force now (policy set {})",
        v["id"].as_str().unwrap_or(""),
        v["reloaded"]["policy_hash"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}

/// `gerbang sanksi lift`.
pub fn sanctions_lift(config: &Path, id: &str) -> Result<ExitCode> {
    let path = format!(
        "/sanksi/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    AdminClient::from_config(config)?.call(reqwest::Method::DELETE, &path, None)?;
    println!("sanction {id} lifted");
    Ok(ExitCode::SUCCESS)
}
