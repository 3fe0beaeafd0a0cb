//! An acknowledged write survives `kill -9`: the real binary is started on a
//! SQLite file, writes are acked, the process is SIGKILLed right after the last
//! ack, and a fresh process on the same file has every acked write, consistently.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// A running `quire dev` process and its base URL.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `quire dev` on port 0 and reads the URL from its banner.
    fn start(database_url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "dev",
                "--addr",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quire");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("quire exited before printing its banner")
                .expect("read stdout");
            if let Some(rest) = line.split("running at ").nth(1) {
                let url = rest.split_whitespace().next().expect("url");
                break url.trim_end_matches('/').to_string();
            }
        };
        // Keep reading its output so the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    fn kill9(mut self) {
        // Child::kill sends SIGKILL on Unix: no graceful shutdown, no flush.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/__dev/token?user_id=user_durable"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn acked_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/quire.db?mode=rwc", dir.path().display());
    let http = reqwest::Client::new();

    let server = Server::start(&db);
    let token1 = token(&http, &server.base).await;
    let created: Value = http
        .post(format!("{}/api/v1/notebooks", server.base))
        .bearer_auth(&token1)
        .json(&json!({"title": "durable"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let mut acked = Vec::new();
    for i in 0..25 {
        let response = http
            .post(format!("{}/api/v1/notebooks/{id}/cells", server.base))
            .bearer_auth(&token1)
            .json(&json!({"cell_type": "code", "source": format!("x = {i}"), "index": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let cell: Value = response.json().await.unwrap();
        acked.push(cell["id"].as_str().unwrap().to_string());
    }
    // The instant after the last ack.
    server.kill9();

    let server = Server::start(&db);
    let token2 = token(&http, &server.base).await;
    let notebook: Value = http
        .get(format!("{}/api/v1/notebooks/{id}", server.base))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        notebook["version"], 25,
        "every acked op is committed exactly once"
    );
    let cells = notebook["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells.iter().map(|c| c["id"].as_str().unwrap()).collect();
    // Each insert went to index 0, so the newest is first.
    let expected: Vec<&str> = acked.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, expected);
    for (i, cell) in cells.iter().enumerate() {
        assert_eq!(cell["source"], format!("x = {}", 24 - i));
        assert_eq!(cell["version"], 1);
    }
}
