//! Preparing a run over HTTP: notebooks owned by `bench_owner`, bench users
//! added as editors, and a dev token for each (`GET /__dev/token`).

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::args::Common;
use crate::stats::now_micros;

/// Notebooks shared with enough bench users for the sockets, and their tokens.
/// User `u` holds sockets `u * per_user ..` and is a member of notebook `u % notebooks`.
pub(crate) struct Setup {
    /// One WebSocket URL per notebook.
    pub(crate) ws_urls: Vec<String>,
    /// The WebSocket base of `--url` (`ws://host:port`), the prefix of `ws_urls`.
    pub(crate) ws_base: String,
    pub(crate) tokens: Vec<String>,
    pub(crate) per_user: usize,
    /// (cell id, cell version) of the first notebook's cells.
    pub(crate) cells: Vec<(String, i64)>,
    /// The first notebook's id.
    pub(crate) notebook: String,
    pub(crate) common: Common,
}

impl Setup {
    /// The token for socket number `k`.
    pub(crate) fn token_for(&self, k: usize) -> &str {
        &self.tokens[k / self.per_user]
    }

    /// The WebSocket URL of socket number `k`'s notebook.
    fn ws_url_for(&self, k: usize) -> &str {
        &self.ws_urls[(k / self.per_user) % self.ws_urls.len()]
    }

    /// Socket `k`'s notebook URL on the server whose WebSocket base is `base`
    /// (`None`: the `--url` server).
    pub(crate) fn ws_url_on(&self, base: Option<&str>, k: usize) -> String {
        let url = self.ws_url_for(k);
        match base {
            Some(base) => format!("{base}{}", &url[self.ws_base.len()..]),
            None => url.to_string(),
        }
    }
}

/// `http://host:port` -> `ws://host:port` (https -> wss), without a trailing slash.
pub(crate) fn ws_base_of(url: &str) -> Result<String> {
    let base = url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = base.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else {
        bail!("{url}: server URLs must start with http:// or https://");
    }
}

/// A token for `user` from `quire dev`, valid for `lifetime` seconds.
async fn dev_token(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    lifetime: u64,
) -> Result<String> {
    let url = format!("{base}/__dev/token?user_id={user}&lifetime_secs={lifetime}");
    let response = http
        .get(&url)
        .send()
        .await
        .context("GET /__dev/token (is `quire dev` running?)")?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("GET /__dev/token -> {status}: {body}");
    }
    Ok(body.trim().to_string())
}

/// Creates `notebooks` notebooks of `cells` code cells (owner `bench_owner`)
/// and shares them with one editor per `sockets_per_user` sockets.
pub(crate) async fn setup(
    common: &Common,
    sockets: usize,
    cells: usize,
    notebooks: usize,
    cell_bytes: usize,
) -> Result<Setup> {
    let base = common.url.trim_end_matches('/').to_string();
    let ws_url = ws_base_of(&base).context("--url")?;
    let per_user = common.sockets_per_user.max(1);
    let api = Api {
        http: reqwest::Client::new(),
        base,
        lifetime: common.token_lifetime_secs,
    };
    let owner = dev_token(&api.http, &api.base, "bench_owner", api.lifetime).await?;
    let source = "x".repeat(cell_bytes);
    let cell_list: Vec<Value> = (0..cells)
        .map(|_| json!({"cell_type": "code", "source": source}))
        .collect();
    let mut ids = Vec::new();
    let mut cells = Vec::new();
    for n in 0..notebooks.max(1) {
        let notebook = api.create_notebook(&owner, n, &cell_list).await?;
        ids.push(
            notebook["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no id in {notebook}"))?
                .to_string(),
        );
        if n == 0 {
            cells = cell_versions(&notebook)?;
        }
    }
    let tokens = api
        .share_with_editors(&owner, &ids, sockets.div_ceil(per_user))
        .await?;
    eprintln!(
        "setup: {} notebook(s) (first {}), {} users x <= {per_user} sockets",
        ids.len(),
        ids[0],
        tokens.len()
    );
    Ok(Setup {
        ws_urls: ids
            .iter()
            .map(|id| format!("{ws_url}/api/v1/notebooks/{id}/ws"))
            .collect(),
        ws_base: ws_url,
        tokens,
        per_user,
        cells,
        notebook: ids[0].clone(),
        common: common.clone(),
    })
}

/// (id, version) of each cell of a created notebook.
fn cell_versions(notebook: &Value) -> Result<Vec<(String, i64)>> {
    Ok(notebook["cells"]
        .as_array()
        .ok_or_else(|| anyhow!("no cells in {notebook}"))?
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["version"].as_i64().unwrap_or(1),
            )
        })
        .collect())
}

/// The REST API of the `--url` server.
struct Api {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    /// Lifetime of the tokens minted, in seconds.
    lifetime: u64,
}

impl Api {
    /// `POST /api/v1/notebooks` as `owner`; the created notebook.
    async fn create_notebook(&self, owner: &str, n: usize, cells: &[Value]) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/api/v1/notebooks", self.base))
            .bearer_auth(owner)
            .json(&json!({"title": format!("quire-bench {n}"), "cells": cells}))
            .send()
            .await?;
        let status = response.status();
        let notebook: Value = response.json().await?;
        if !status.is_success() {
            bail!("create notebook -> {status}: {notebook}");
        }
        Ok(notebook)
    }

    /// Makes `users` fresh users editors (user `i` of notebook `i mod len`)
    /// and returns their tokens, in order.
    async fn share_with_editors(
        &self,
        owner: &str,
        ids: &[String],
        users: usize,
    ) -> Result<Vec<String>> {
        let nonce = now_micros() % 1_000_000_000;
        let results: Vec<Result<(usize, String)>> = futures::stream::iter(0..users)
            .map(|i| {
                let user = format!("bench_{nonce}_u{i}");
                let notebook = &ids[i % ids.len()];
                async move {
                    let token = self.add_editor(owner, notebook, &user).await?;
                    Ok((i, token))
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut tokens = vec![String::new(); users];
        for r in results {
            let (i, token) = r?;
            tokens[i] = token;
        }
        Ok(tokens)
    }

    /// `PUT .../members/{user}` as editor, then a token for `user`.
    async fn add_editor(&self, owner: &str, notebook: &str, user: &str) -> Result<String> {
        let response = self
            .http
            .put(format!(
                "{}/api/v1/notebooks/{notebook}/members/{user}",
                self.base
            ))
            .bearer_auth(owner)
            .json(&json!({"role": "editor"}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("share with {user} -> {}", response.status());
        }
        dev_token(&self.http, &self.base, user, self.lifetime).await
    }
}
