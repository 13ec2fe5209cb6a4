//! A real server for the API tests: a vault file in a temporary folder, an admin key, and the
//! server listening on 127.0.0.1 with a port of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use nanu::{Context, KeySpec, Options, Vault};
use nanu_server::{Config, Server};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server over a fresh vault.
pub struct TestServer {
    pub addr: SocketAddr,
    pub vault: Arc<Vault>,
    /// The secret of an admin key holding the `admin` scope.
    pub admin: String,
    pub admin_id: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), nanu_server::ServeError>>>,
}

/// An HTTP answer: the status, the headers and the body parsed as JSON (`Value::Null` when the
/// body is empty or not JSON; `text` keeps it as is).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// Panics unless the status is `status`, showing the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Answer {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Panics unless this is an error answer with `status` and `code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Answer {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.text);
        let message = self.json["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "an error without a message: {}",
            self.text
        );
        self
    }
}

impl TestServer {
    /// A server with the default configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `adjust` changes (the listen address stays 127.0.0.1:0).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.vault");
        // A raw key skips the KDF, which keeps each test's vault cheap to create.
        let vault = Vault::create(&path, &Options::key([7; 32])).expect("create the vault");
        let vault = Arc::new(vault);
        let mut spec = KeySpec::new("ops");
        spec.env = "admin".to_owned();
        spec.scopes = vec!["admin".to_owned()];
        let minted = vault
            .mint(&spec, &Context::actor("test"))
            .expect("mint the admin key");

        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        adjust(&mut config);
        let server = Server::bind(vault.clone(), config).await.expect("bind");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            vault,
            admin: minted.secret.expose().to_owned(),
            admin_id: minted.key_id,
            client: reqwest::Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional bearer token and an optional raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
            text,
        }
    }

    /// GET with the admin key.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Some(&self.admin), None).await
    }

    /// A call with the admin key and a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Value) -> Answer {
        let body = serde_json::to_vec(&body).expect("json");
        self.send(method, path, Some(&self.admin), Some(body)).await
    }

    /// POST with the admin key and a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, body).await
    }

    /// Mints a key through the API with the admin key; returns (key id, secret).
    pub async fn mint(&self, spec: Value) -> (String, String) {
        let answer = self.post("/v1/keys", spec).await;
        answer.expect(201);
        let key_id = answer.json["key_id"].as_str().expect("key_id").to_owned();
        let secret = answer.json["secret"].as_str().expect("secret").to_owned();
        (key_id, secret)
    }

    /// Mints an admin key holding `scopes` through the library; returns (key id, secret).
    pub fn admin_key(&self, scopes: &[&str]) -> (String, String) {
        let mut spec = KeySpec::new("ops");
        spec.env = "admin".to_owned();
        spec.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let minted = self
            .vault
            .mint(&spec, &Context::actor("test"))
            .expect("mint an admin key");
        (minted.key_id, minted.secret.expose().to_owned())
    }

    /// Verifies a secret through the API.
    pub async fn verify(&self, secret: &str) -> Value {
        let answer = self.post("/v1/verify", json!({ "secret": secret })).await;
        answer.expect(200);
        answer.json.clone()
    }

    /// The vault file's path.
    pub fn vault_path(&self) -> PathBuf {
        self.dir.path().join("test.vault")
    }

    /// Stops the server (waiting for it to finish) and closes the vault. Returns the temporary
    /// folder, which is removed when dropped.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || vault.close())
            .await
            .expect("close task")
            .expect("the vault closes cleanly");
        self.dir
    }
}
