//! An HTTP proxy in front of an S3-compatible server that fails requests on purpose: a share
//! of them at random, or every one while an outage lasts. It answers a failed request with 503
//! SlowDown, as S3 does when it throttles, and counts requests by method (`GET parquet` and
//! `PUT parquet` for requests of data files).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Rng;

#[derive(Default)]
struct Faults {
    /// Out of 1000 requests, how many fail.
    per_mille: u64,
    outage: bool,
    rng: Option<Rng>,
    requests: BTreeMap<String, u64>,
    /// Requests by the access key id they were signed with.
    access_keys: BTreeMap<String, u64>,
    /// Each request forwarded: when it came, how long the answer took, its kind and path.
    timeline: Vec<(Instant, Duration, String)>,
    failed: u64,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    faults: Arc<Mutex<Faults>>,
}

/// A running proxy; it stops with the test process.
pub struct FaultyProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    faults: Arc<Mutex<Faults>>,
}

impl FaultyProxy {
    /// A proxy to `upstream` (`http://host:port`) that fails `per_mille` of 1000 requests,
    /// chosen by a random generator seeded with `seed`.
    pub fn start(upstream: &str, per_mille: u64, seed: u64) -> FaultyProxy {
        let faults = Arc::new(Mutex::new(Faults { per_mille, rng: Some(Rng::seeded(seed)), ..Faults::default() }));
        let proxy = Proxy { upstream: upstream.to_string(), client: reqwest::Client::new(), faults: faults.clone() };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(proxy);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let address: SocketAddr = receiver.recv().unwrap();
        FaultyProxy { endpoint: format!("http://{address}"), faults }
    }

    /// Forgets the requests counted so far.
    pub fn reset_counts(&self) {
        let mut faults = self.faults.lock().unwrap();
        faults.requests.clear();
        faults.access_keys.clear();
        faults.timeline.clear();
        faults.failed = 0;
    }

    /// Fails every request from now until [`end_outage`](Self::end_outage).
    pub fn begin_outage(&self) {
        self.faults.lock().unwrap().outage = true;
    }

    pub fn end_outage(&self) {
        self.faults.lock().unwrap().outage = false;
    }

    /// Requests seen, by the access key id that signed them (SigV4's `Credential=`).
    pub fn access_keys(&self) -> BTreeMap<String, u64> {
        self.faults.lock().unwrap().access_keys.clone()
    }

    /// Each request forwarded since the counts were last reset: when it came, how long the
    /// store took to answer, and `KIND path`. For finding where an operation waits.
    pub fn timeline(&self) -> Vec<(Instant, Duration, String)> {
        self.faults.lock().unwrap().timeline.clone()
    }

    /// Requests seen, by kind, and how many of them were failed.
    pub fn requests(&self) -> (BTreeMap<String, u64>, u64) {
        let faults = self.faults.lock().unwrap();
        (faults.requests.clone(), faults.failed)
    }
}

/// Whether this request fails; counts it either way.
fn fails(faults: &Mutex<Faults>, kind: &str) -> bool {
    let mut faults = faults.lock().unwrap();
    *faults.requests.entry(kind.to_string()).or_default() += 1;
    let per_mille = faults.per_mille;
    let unlucky = faults.rng.as_mut().is_some_and(|rng| rng.below(1000) < per_mille);
    let failing = faults.outage || unlucky;
    faults.failed += u64::from(failing);
    failing
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    // A GET of the bucket with `list-type` is a LIST, the request cleanup and listings make.
    let listing = request.uri().query().is_some_and(|q| q.contains("list-type"));
    let data_file = request.uri().path().ends_with(".parquet");
    let kind = match (listing, data_file) {
        (true, _) => "LIST".to_string(),
        (false, true) => format!("{} parquet", request.method()),
        (false, false) => request.method().to_string(),
    };
    let kind = kind.as_str();
    if let Some(key) = access_key(&request) {
        *proxy.faults.lock().unwrap().access_keys.entry(key).or_default() += 1;
    }
    if fails(&proxy.faults, kind) {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected by the test</Message></Error>";
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let what = format!("{kind} {}", request.uri().path());
    let came = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut upstream = proxy.client.request(method, format!("{}{path}", proxy.upstream)).body(body);
    // The body is passed whole, so its framing is the client library's to set again.
    for (name, value) in parts.headers.iter().filter(|(name, _)| !hop_by_hop(name.as_str())) {
        upstream = upstream.header(name.as_str(), value.as_bytes());
    }
    let Ok(answer) = upstream.send().await else { return StatusCode::BAD_GATEWAY.into_response() };
    let mut response = Response::builder().status(answer.status().as_u16());
    // Content-Length stays: a HEAD answer's is the object's size.
    for (name, value) in answer.headers().iter().filter(|(name, _)| !matches!(name.as_str(), "transfer-encoding" | "connection")) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes())) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    proxy.faults.lock().unwrap().timeline.push((came, came.elapsed(), what));
    response.body(Body::from(bytes)).unwrap()
}

/// The access key id of a SigV4-signed request: `Authorization: AWS4-HMAC-SHA256 Credential=KEY/date/…`.
fn access_key(request: &Request) -> Option<String> {
    let authorization = request.headers().get("authorization")?.to_str().ok()?;
    let credential = authorization.split("Credential=").nth(1)?;
    credential.split('/').next().map(str::to_string)
}

fn hop_by_hop(name: &str) -> bool {
    matches!(name, "content-length" | "transfer-encoding" | "connection")
}
