//! Test harness: boots the real server on port 0 against real backends.
//!
//! - SQLite: a file in a fresh temporary folder per test.
//! - PostgreSQL: a fresh database per test on the server at `TEST_DATABASE_URL`
//!   (default `postgres://postgres@127.0.0.1:5432/test`). Unreachable → the test fails loudly.
//! - S3: an in-process s3s-fs server on 127.0.0.1, one per test process on its own thread,
//!   with a fresh bucket per test.
//!
//! `TEST_LOG=1` shows the servers' logs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imgedge::clock::Clock;
use imgedge::config::{DatabaseBackend, S3Config};
use imgedge::http::state::AppState;
use imgedge::{App, Config};
use serde_json::Value;
use tokio::sync::oneshot;

/// JWT secret of every test server (tests forge tokens with it).
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// Credentials of the in-process S3 server.
pub const S3_ACCESS_KEY: &str = "imgedge-test";
/// Secret of the in-process S3 server.
pub const S3_SECRET_KEY: &str = "imgedge-test-secret";

/// Which backends a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + local folder (the embedded default).
    Sqlite,
    /// PostgreSQL + local folder.
    Postgres,
    /// PostgreSQL + S3 (production).
    PostgresS3,
}

/// Shared resources of one test: database and bucket names, temp folder.
pub struct Env {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database: DatabaseBackend,
    pub pg_name: Option<String>,
    /// The bucket, on S3 backends.
    pub s3: Option<S3Config>,
}

impl Env {
    /// Fresh database and storage for `backend`.
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database, pg_name) = match backend {
            Backend::Sqlite => (DatabaseBackend::Sqlite(dir.path().join("imgedge.db")), None),
            Backend::Postgres | Backend::PostgresS3 => {
                let (url, name) = fresh_pg_database().await;
                (DatabaseBackend::Postgres(url), Some(name))
            }
        };
        let s3 = (backend == Backend::PostgresS3).then(fresh_bucket);
        Self { backend, dir, database, pg_name, s3 }
    }

    /// A server configuration on these backends; tests adjust it before spawning.
    pub fn config(&self) -> Config {
        let mut config = Config::embedded(self.dir.path());
        config.server.host = "127.0.0.1".parse().expect("ip");
        config.server.port = 0;
        config.server.shutdown_grace = Duration::from_secs(2);
        config.database.backend = self.database.clone();
        if let Some(s3) = &self.s3 {
            config.storage.s3 = s3.clone();
        }
        config.auth.jwt_secret = Some(JWT_SECRET.to_owned().into());
        config.transform.workers = 2;
        config.transform.avif_speed = 10;
        // A test that asks `fmt_auto` for AVIF gets AVIF, however loaded the machine: the budget
        // after which a cheaper format stands in is tested on its own (`auto_format`).
        config.transform.auto_format_budget = Duration::ZERO;
        config.log.access_log = false;
        config
    }
}

impl Env {
    /// Runs one SQL statement on this test's database, behind the server's back.
    pub async fn execute(&self, sql: &str) {
        match &self.database {
            DatabaseBackend::Sqlite(path) => {
                rusqlite::Connection::open(path).expect("open sqlite").execute_batch(sql).expect("sql");
            }
            DatabaseBackend::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                client.batch_execute(sql).await.expect("sql");
            }
        }
    }
}

impl Env {
    /// The single number that `sql` selects, read behind the server's back.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.database {
            DatabaseBackend::Sqlite(path) => {
                rusqlite::Connection::open(path).expect("open sqlite").query_row(sql, [], |r| r.get(0)).expect("sql")
            }
            DatabaseBackend::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                client.query_one(sql, &[]).await.expect("sql").get(0)
            }
        }
    }

    /// The PostgreSQL URL of this test's database (for a server in a child process).
    pub fn database_url(&self) -> String {
        match &self.database {
            DatabaseBackend::Postgres(url) => url.clone(),
            DatabaseBackend::Sqlite(_) => panic!("not a PostgreSQL test"),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, off the test's runtime; `sweep_stale_databases` catches the rest.
            std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    if let Ok(client) = admin_client().await {
                        let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    }
                });
            });
        }
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub clock: Clock,
    pub env: Arc<Env>,
    /// Dropping it stops the server.
    _shutdown: oneshot::Sender<()>,
}

/// A registered owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: String,
    pub token: String,
    pub key: Vec<u8>,
}

/// Starts a server on fresh `backend`s with the default test configuration.
pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

/// Starts a server on fresh `backend`s after `adjust` edits the configuration.
pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let env = Arc::new(Env::new(backend).await);
    let mut config = env.config();
    adjust(&mut config);
    spawn_on(env, config, noon()).await
}

/// A clock that starts at noon UTC today: tests count quota days without crossing midnight.
pub fn noon() -> Clock {
    let today = chrono::Utc::now().date_naive();
    Clock::starting_at(today.and_hms_opt(12, 0, 0).expect("noon exists").and_utc())
}

/// Starts a server with `config` on an existing environment (a second replica).
pub async fn spawn_on(env: Arc<Env>, config: Config, clock: Clock) -> TestApp {
    init_logs();
    let app = App::build_with_clock(config, clock.clone()).await.expect("server starts");
    let addr = app.addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp { addr, client, state, clock, env, _shutdown: tx }
}

impl TestApp {
    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path` without credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// GET `path` with a bearer token.
    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// POST JSON with a bearer token.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }

    /// Registers `username` (password `password123`) and fetches its signing key.
    pub async fn register(&self, username: &str) -> Owner {
        let res = self
            .post_json("/v1/auth/register", None, &serde_json::json!({"username": username, "password": "password123"}))
            .await;
        assert_eq!(res.status(), 201, "register {username}");
        let body: Value = res.json().await.expect("json");
        let token = body["token"].as_str().expect("token").to_owned();
        let key: Value = self.get_auth("/v1/me/signing-key", &token).await.json().await.expect("json");
        Owner {
            id: body["user"]["id"].as_str().expect("id").to_owned(),
            token,
            key: hex::decode(key["key"].as_str().expect("key")).expect("hex"),
        }
    }

    /// Uploads `bytes` as the raw body; returns the response.
    pub async fn upload_raw(&self, owner: &Owner, bytes: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/images"))
            .bearer_auth(&owner.token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("request")
    }

    /// Uploads `bytes` and returns the `Image` JSON (asserting 201).
    pub async fn upload(&self, owner: &Owner, bytes: Vec<u8>) -> Value {
        let res = self.upload_raw(owner, bytes, "application/octet-stream").await;
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "upload: {body}");
        body
    }

    /// One counter or gauge of `/metrics`, labels included in `name`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not in /metrics"))
    }

    /// `/i/{id}/{ops}` signed with `owner`'s key (no expiry).
    pub fn signed(&self, owner: &Owner, path: &str) -> String {
        sign(&owner.key, path, None)
    }

    /// Fetches a signed variant and returns the response (any status).
    pub async fn variant(&self, owner: &Owner, id: &str, ops: &str) -> reqwest::Response {
        self.get(&self.signed(owner, &format!("/i/{id}/{ops}"))).await
    }

    /// Fetches a signed variant, asserts 200 and returns its bytes.
    pub async fn variant_bytes(&self, owner: &Owner, id: &str, ops: &str) -> Vec<u8> {
        let res = self.variant(owner, id, ops).await;
        let status = res.status();
        let bytes = res.bytes().await.expect("body").to_vec();
        assert_eq!(status, 200, "{ops}: {}", String::from_utf8_lossy(&bytes));
        bytes
    }

    /// Transforms used today by `owner`, from `GET /v1/me`.
    pub async fn used_today(&self, owner: &Owner) -> u64 {
        let me: Value = self.get_auth("/v1/me", &owner.token).await.json().await.expect("json");
        me["quota"]["used"].as_u64().expect("used")
    }

    /// Every object key in the store under `prefix`.
    pub async fn stored_keys(&self, prefix: &str) -> Vec<String> {
        self.state
            .shared
            .store
            .list(prefix)
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key.as_str().to_owned())
            .collect()
    }
}

/// The real `imgedge` binary in a child process, on the embedded default in a temporary folder.
pub struct Child {
    pub addr: std::net::SocketAddr,
    /// The working folder (data under `data/`), removed when the last child using it is gone.
    pub dir: Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
    process: std::process::Child,
    logs: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Child {
    /// Starts `imgedge` with `env` on top of a loopback port picked by the server and JSON logs,
    /// and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self::start_in(Arc::new(tempfile::tempdir().expect("temp dir")), env)
    }

    /// Kills the process (SIGKILL: no drain, no cleanup) and starts a new one on the same data.
    pub fn kill_and_restart(mut self) -> Self {
        let _ = self.process.kill();
        let _ = self.process.wait();
        Self::start_in(Arc::clone(&self.dir), std::mem::take(&mut self.env))
    }

    fn start_in(dir: Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> Self {
        use std::io::BufRead;
        let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_imgedge"))
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .envs([("HOST", "127.0.0.1"), ("PORT", "0"), ("DATA_DIR", "data"), ("LOG_FORMAT", "json")])
            .envs([("ACCESS_LOG", "false"), ("TRANSFORM_WORKERS", "2")])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("imgedge starts");
        let mut lines = std::io::BufReader::new(process.stdout.take().expect("stdout")).lines();
        let addr = loop {
            let line = lines.next().expect("imgedge exited before listening").expect("log line");
            let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
            if event["message"] == "imgedge listening" {
                break event["addr"].as_str().expect("addr field").parse().expect("socket address");
            }
        };
        // Keep reading the logs (so the child never blocks on a full pipe), for `logs`.
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("log lines").push(event);
                }
            }
        });
        Self { addr, dir, env, process, logs }
    }

    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers `username` (password `password123`) and fetches its signing key.
    pub async fn register(&self, username: &str) -> Owner {
        let client = reqwest::Client::new();
        let body = serde_json::json!({"username": username, "password": "password123"});
        let session: Value = client
            .post(format!("{}/v1/auth/register", self.base()))
            .json(&body)
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        let token = session["token"].as_str().expect("token").to_owned();
        let key: Value = client
            .get(format!("{}/v1/me/signing-key", self.base()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("key")
            .json()
            .await
            .expect("json");
        Owner {
            id: session["user"]["id"].as_str().expect("id").to_owned(),
            token,
            key: hex::decode(key["key"].as_str().expect("key")).expect("hex"),
        }
    }

    /// The JSON log events written so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().expect("log lines").clone()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.process.id()).expect("pid");
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.process.try_wait().expect("try_wait").is_none()
    }

    /// The exit code once the process ends within `limit`; `None` if it does not (it is then
    /// killed) or a signal ended it.
    pub fn wait(mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.process.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Holds every worker of a server busy until opened (or dropped), so tests can line requests up
/// behind a transform deterministically.
pub struct Gate {
    release: Vec<std::sync::mpsc::Sender<()>>,
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

impl Gate {
    /// Occupies all of `app`'s workers and returns once they are all busy.
    pub async fn close(app: &TestApp) -> Self {
        let workers = app.state.shared.workers.clone();
        let (mut release, mut jobs) = (Vec::new(), Vec::new());
        for _ in 0..app.state.config.transform.workers {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let pool = workers.clone();
            jobs.push(tokio::spawn(async move {
                let _ = pool.run(move || rx.recv()).await;
            }));
            release.push(tx);
        }
        wait_until("every worker is held", || workers.running() == release.len()).await;
        Self { release, jobs }
    }

    /// Lets the workers go and waits for them to be free.
    pub async fn open(self) {
        drop(self.release);
        for job in self.jobs {
            job.await.expect("gate job");
        }
    }
}

/// Raises this process's soft limit on open descriptors to at least `wanted` (up to the hard
/// limit), for tests that hold thousands of sockets; panics when the hard limit is lower.
pub fn raise_descriptor_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        assert!(
            limit.rlim_max >= wanted,
            "the descriptor limit is {} (hard); this test needs {wanted}",
            limit.rlim_max
        );
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit");
        }
    }
}

/// Polls `ready` every 10 ms; panics naming `what` after 20 s.
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts an error answer: its status and its contract code; returns the message.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> String {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!((got, body["error"]["code"].as_str().unwrap_or_default()), (status, code), "{body}");
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// `path?[exp=..&]sig=..` for a raw key.
pub fn sign(key: &[u8], path: &str, exp: Option<i64>) -> String {
    imgedge::auth::SigningKey::from_bytes(key).expect("32-byte key").signed_url(path, exp)
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            imgedge::telemetry::init(&Config::embedded("/tmp").log);
        }
    });
}

// ---------------------------------------------------------------- PostgreSQL

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub async fn admin_client() -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut last = None;
    // Debian's cluster has a `postgres` role; some set-ups only have `root`.
    for url in [admin_url(), admin_url().replacen("postgres@", "root@", 1)] {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                return Ok(client);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Creates an empty database and returns its URL and name.
async fn fresh_pg_database() -> (String, String) {
    let client = admin_client().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for this test and is not reachable at {} ({e}); set TEST_DATABASE_URL",
            admin_url()
        )
    });
    sweep_stale_databases(&client).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let name = format!("imgedge_t_{now}_{}", uuid::Uuid::new_v4().simple());
    // A linguistic collation (ICU en-US), as production clusters usually have, where "B" sorts
    // after "a": ordering that only works under byte order fails here. Servers built without ICU
    // get their default collation.
    let icu = format!(
        "CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    if client.batch_execute(&icu).await.is_err() {
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
    }
    let base = admin_url();
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    (format!("{prefix}/{name}"), name)
}

/// Drops test databases left over (older than an hour) by runs that crashed.
async fn sweep_stale_databases(client: &tokio_postgres::Client) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let Ok(rows) = client.query("SELECT datname FROM pg_database WHERE datname LIKE 'imgedge_t_%'", &[]).await
        else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let born = name.split('_').nth(2).and_then(|t| t.parse::<u64>().ok()).unwrap_or(now);
            if now.saturating_sub(born) > 3600 {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------- S3

struct S3Server {
    endpoint: String,
    root: PathBuf,
}

fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("imgedge-s3-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).expect("s3 root");
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_root = root.clone();
        // Its own thread and runtime: it outlives every test's runtime.
        std::thread::Builder::new()
            .name("s3s-fs".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(run_s3(thread_root, tx));
            })
            .expect("s3 thread");
        let endpoint = rx.recv_timeout(Duration::from_secs(10)).expect("s3 server starts");
        S3Server { endpoint, root }
    })
}

async fn run_s3(root: PathBuf, ready: std::sync::mpsc::Sender<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
    let addr = listener.local_addr().expect("addr");
    ready.send(format!("http://{addr}")).expect("ready");
    serve_s3(listener, root).await;
}

/// Serves S3 (s3s-fs over `root`) on `listener`; its connections end when this future is
/// dropped.
async fn serve_s3(listener: tokio::net::TcpListener, root: PathBuf) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
    let service = builder.build();
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        connections.spawn(async move {
            let _ = conn.await;
        });
    }
}

/// An S3 server of one test, on its runtime, which the test stops (connections refused, open
/// ones cut) and starts again on the same port.
pub struct StoppableS3 {
    pub endpoint: String,
    addr: std::net::SocketAddr,
    root: PathBuf,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl StoppableS3 {
    /// A server with one bucket, `bucket`, in a fresh folder.
    pub async fn start(bucket: &str) -> Self {
        let root = std::env::temp_dir().join(format!("imgedge-s3-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join(bucket)).expect("bucket folder");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
        let addr = listener.local_addr().expect("addr");
        let serving = Some(tokio::spawn(serve_s3(listener, root.clone())));
        Self { endpoint: format!("http://{addr}"), addr, root, serving }
    }

    /// Stops serving.
    pub async fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    /// Serves again on the same address.
    pub async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind s3");
        self.serving = Some(tokio::spawn(serve_s3(listener, self.root.clone())));
    }
}

/// A new empty bucket on the in-process S3 server.
pub fn fresh_bucket() -> S3Config {
    let server = s3_server();
    let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(server.root.join(&bucket)).expect("bucket folder");
    s3_config(&server.endpoint, &bucket)
}

/// Client settings for `bucket` on `endpoint`.
pub fn s3_config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        endpoint: endpoint.to_owned(),
        force_path_style: true,
        access_key_id: S3_ACCESS_KEY.into(),
        secret_access_key: Some(S3_SECRET_KEY.to_owned().into()),
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(10),
        max_attempts: 2,
    }
}

/// Declares one test per listed backend for each `async fn name(backend: Backend)`; the
/// backends default to all three:
/// `for_backends!(name, other_name);` or `for_backends!([Sqlite, Postgres] name);`
///
/// A test that wants a server with the default configuration starts it with
/// `spawn(backend).await`.
#[macro_export]
macro_rules! for_backends {
    (@one $name:ident [$($backend:ident),+]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[allow(non_snake_case)] // named after the Backend variant
                async fn $backend() {
                    super::$name($crate::harness::Backend::$backend).await;
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        $crate::for_backends!([Sqlite, Postgres, PostgresS3] $($name),+);
    };
    ($backends:tt $($name:ident),+ $(,)?) => {$(
        $crate::for_backends!(@one $name $backends);
    )+};
}
