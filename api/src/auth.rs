//! Caller authentication for both doors, on by default.
//!
//! A caller proves who it is with `authorization: Bearer <token>` (gRPC metadata or HTTP header), or
//! with a client certificate (mTLS; the caller is the certificate subject's CN). Bearer tokens are
//! checked against, in order:
//! - a static token file (`<token> <caller-name>` per line; `#` comments), re-read when it changes;
//! - the Kubernetes TokenReview API with an audience: the token must be valid *for that audience*, and
//!   the caller is the reviewed user name (`system:serviceaccount:<namespace>:<name>`);
//! - or, in Kubernetes (where the executor pod cannot reach the API server), the binding proxy, which
//!   reviews the token for the policy's audience itself; the token then also goes with each execution
//!   to the proxy, which opens it only for the caller the token names.
//!
//! Then the caller must be on the allowed-callers list when there is one (`*` at the end of an entry
//! matches any rest, e.g. `system:serviceaccount:agents:*`): a valid caller that is not gets
//! PERMISSION_DENIED / 403. Without credentials, or with bad ones: UNAUTHENTICATED / 401.
//!
//! TokenReview is guarded against amplification (every review costs the API server work, and anyone
//! who can reach the executor can send tokens): only JWT-shaped tokens (three base64url segments, at
//! most 8 KiB) are reviewed; refused tokens are remembered briefly by their sha256 digest (never the
//! token itself), as accepted ones are; and each peer address has a budget of reviews that do not
//! succeed (a token bucket: a burst of [`FAILURE_BURST`], refilled at [`FAILURES_PER_SECOND`]). A peer
//! beyond it is answered RESOURCE_EXHAUSTED / 429 without asking the API server; tokens known from the
//! token file or the review cache still work from it, and other peers are not affected.
//!
//! Discovery callers (same syntax) may list and describe the bound tools but never run code: a caller
//! that matches a discovery entry and no allowed-callers entry is let in as discovery-only, and
//! `Execute`, `ExecuteStream` and `execute_code` refuse it with PERMISSION_DENIED. The operator uses
//! this to read the bound servers' state without being able to execute anything.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use sha2::Digest;

use crate::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity recorded in audit records and used as the rate-limit key.
    pub name: String,
    /// How it was established: `token-file`, `token-review`, `mtls` or `none`.
    pub method: &'static str,
    /// Let in as a discovery caller only: may list and describe tools, may not run code.
    pub discovery_only: bool,
    /// The bearer token, when the binding proxy reviewed it (it checks it again for each execution).
    pub token: Option<mcp_guard_sandbox::host::CallerToken>,
}

impl Caller {
    /// A caller that may run code.
    pub fn new(name: impl Into<String>, method: &'static str) -> Self {
        Caller { name: name.into(), method, discovery_only: false, token: None }
    }

    /// `Ok` when this caller may run code; PERMISSION_DENIED for a discovery-only caller.
    pub fn may_execute(&self) -> Result<(), ApiError> {
        if self.discovery_only {
            return Err(ApiError::PermissionDenied(format!(
                "caller `{}` is a discovery caller: it may list and describe tools but not execute code",
                self.name
            )));
        }
        Ok(())
    }
}

/// How callers are authenticated.
#[derive(Debug, Default)]
pub struct AuthConfig {
    pub token_file: Option<PathBuf>,
    pub token_review: Option<TokenReviewConfig>,
    /// Accept a verified client certificate's CN as the caller.
    pub mtls: bool,
    /// Allowed callers (exact names, or prefixes ending in `*`); `None`: every authenticated caller.
    pub allowed_callers: Option<Vec<String>>,
    /// Callers allowed ListTools and DescribeTools only (exact names, or prefixes ending in `*`).
    pub discovery_callers: Vec<String>,
    /// No authentication at all: every request is the caller `anonymous`.
    pub insecure_no_auth: bool,
    /// Bearer tokens are reviewed by the binding proxy (which reviews them with TokenReview for the
    /// policy's audience), with the same caches and failure limits as [`AuthConfig::token_review`].
    pub proxy_review: Option<mcp_guard_binding_client::ProxyToolHost>,
}

/// Where and how to call the Kubernetes TokenReview API.
#[derive(Debug, Clone)]
pub struct TokenReviewConfig {
    /// The API server's base URL, e.g. `https://10.96.0.1:443`.
    pub api_server: String,
    /// The audience tokens must be issued for.
    pub audience: String,
    /// This pod's own service-account token, re-read on every review (projected tokens rotate).
    pub token_file: PathBuf,
    /// CA bundle of the API server (PEM); `None`: the system roots.
    pub ca_file: Option<PathBuf>,
    /// How long a successful review is remembered.
    pub cache_ttl: Duration,
}

impl TokenReviewConfig {
    /// The in-cluster defaults: the service-account files under
    /// `/var/run/secrets/kubernetes.io/serviceaccount/`.
    pub fn in_cluster(api_server: String, audience: String) -> Self {
        let dir = PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount");
        TokenReviewConfig {
            api_server,
            audience,
            token_file: dir.join("token"),
            ca_file: Some(dir.join("ca.crt")),
            cache_ttl: Duration::from_secs(30),
        }
    }
}

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The static token file, re-read when its modification time, size or inode changes.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    state: Mutex<TokenFileState>,
}

#[derive(Debug, Default)]
struct TokenFileState {
    stamp: Option<(SystemTime, u64, u64)>,
    /// sha256(token) -> caller; looking tokens up by digest keeps comparisons independent of the token.
    tokens: HashMap<Digest32, String>,
}

impl TokenFile {
    fn load(path: PathBuf) -> Result<Self, String> {
        let file = TokenFile { path, state: Mutex::new(TokenFileState::default()) };
        file.refresh()?;
        Ok(file)
    }

    fn stamp(&self) -> std::io::Result<(SystemTime, u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.path)?;
        Ok((m.modified()?, m.len(), m.ino()))
    }

    /// Re-read the file when it changed. A file that cannot be read or parsed keeps the last good set.
    fn refresh(&self) -> Result<(), String> {
        let stamp = self.stamp().map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut state = self.state.lock().map_err(|_| "token file state poisoned".to_string())?;
        if state.stamp == Some(stamp) {
            return Ok(());
        }
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let tokens = parse_token_file(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if state.stamp.is_some() {
            tracing::info!(path = %self.path.display(), callers = tokens.len(), "reloaded the token file");
        }
        state.tokens = tokens;
        state.stamp = Some(stamp);
        Ok(())
    }

    fn lookup(&self, token: &str) -> Option<String> {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %e, "cannot reload the token file; keeping the last good one");
        }
        let state = self.state.lock().ok()?;
        state.tokens.get(&digest(token)).cloned()
    }
}

/// `<token> <caller-name>` per line; blank lines and `#` comments are skipped.
pub fn parse_token_file(text: &str) -> Result<HashMap<Digest32, String>, String> {
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(token), Some(caller), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {}: expected `<token> <caller-name>`", i + 1));
        };
        if token.len() < 16 {
            return Err(format!("line {}: the token is shorter than 16 characters", i + 1));
        }
        if tokens.insert(digest(token), caller.to_string()).is_some() {
            return Err(format!("line {}: the same token appears twice", i + 1));
        }
    }
    Ok(tokens)
}

/// Kubernetes TokenReview, asked directly or through the binding proxy.
#[derive(Debug)]
struct TokenReview {
    backend: Backend,
    cache_ttl: Duration,
    /// sha256(token) -> (user, when): accepted tokens, for `config.cache_ttl`.
    cache: Mutex<HashMap<Digest32, (String, Instant)>>,
    /// sha256(token) -> when: refused tokens, for [`NEGATIVE_CACHE_TTL`].
    refused: Mutex<HashMap<Digest32, Instant>>,
    /// Per-peer budget of reviews that do not succeed.
    limiter: FailureLimiter,
}

const MAX_CACHED_REVIEWS: usize = 4096;
/// How long a refused token is remembered (and refused without a review).
pub const NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(15);
/// The longest token sent for review; service-account JWTs are around 1 KiB.
pub const MAX_REVIEWED_TOKEN_BYTES: usize = 8 * 1024;
/// Reviews that do not succeed a peer may cause at once...
pub const FAILURE_BURST: f64 = 20.0;
/// ... and per second after that.
pub const FAILURES_PER_SECOND: f64 = 2.0;
/// Peers tracked by the limiter; see [`FailureLimiter::try_acquire`].
const MAX_TRACKED_PEERS: usize = 4096;

/// Whether `token` looks like a JWT (JWS compact serialisation): three non-empty base64url segments
/// (no padding) separated by dots, at most [`MAX_REVIEWED_TOKEN_BYTES`]. Service-account tokens are.
pub fn jwt_shaped(token: &str) -> bool {
    let base64url = |segment: &str| {
        !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    token.len() <= MAX_REVIEWED_TOKEN_BYTES
        && token.split('.').count() == 3
        && token.split('.').all(base64url)
}

/// Insert into a time-stamped map of at most `cap` entries: when full, drop the entries older than
/// `ttl`, then (if still full) the oldest half.
fn bounded_insert<V>(
    map: &mut HashMap<Digest32, V>,
    key: Digest32,
    value: V,
    cap: usize,
    ttl: Duration,
    at: impl Fn(&V) -> Instant,
) {
    if map.len() >= cap && !map.contains_key(&key) {
        map.retain(|_, v| at(v).elapsed() < ttl);
        if map.len() >= cap {
            let mut times: Vec<Instant> = map.values().map(&at).collect();
            let (_, median, _) = times.select_nth_unstable(cap / 2);
            let median = *median;
            map.retain(|_, v| at(v) > median);
        }
    }
    map.insert(key, value);
}

/// A token bucket per peer address (IPv6 peers by /64): each review that is not known to succeed takes
/// one token, a successful one gives it back.
#[derive(Debug, Default)]
struct FailureLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl FailureLimiter {
    /// The bucket key: the address, an IPv6 one cut to its /64 (one host usually has the whole /64), an
    /// IPv4-mapped one as IPv4. `None` (the door does not know the peer) shares one bucket.
    fn key(peer: Option<IpAddr>) -> IpAddr {
        match peer {
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            Some(IpAddr::V4(a)) => IpAddr::V4(a),
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !((1u128 << 64) - 1))),
            },
        }
    }

    fn refilled((tokens, at): (f64, Instant), now: Instant) -> f64 {
        (tokens + now.duration_since(at).as_secs_f64() * FAILURES_PER_SECOND).min(FAILURE_BURST)
    }

    /// Take one token from `peer`'s bucket; `false` when it is empty. When [`MAX_TRACKED_PEERS`] peers
    /// have recently failed, a new peer is refused too: the API server stays protected from an attacker
    /// with many addresses.
    fn try_acquire(&self, peer: Option<IpAddr>) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        let now = Instant::now();
        let key = Self::key(peer);
        if buckets.len() >= MAX_TRACKED_PEERS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| Self::refilled(*b, now) < FAILURE_BURST);
            if buckets.len() >= MAX_TRACKED_PEERS {
                return false;
            }
        }
        let bucket = buckets.entry(key).or_insert((FAILURE_BURST, now));
        let tokens = Self::refilled(*bucket, now);
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return false;
        }
        *bucket = (tokens - 1.0, now);
        true
    }

    /// Give back the token of a review that succeeded.
    fn refund(&self, peer: Option<IpAddr>) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some(bucket) = buckets.get_mut(&Self::key(peer))
        {
            bucket.0 = (bucket.0 + 1.0).min(FAILURE_BURST);
        }
    }
}

/// Who reviews tokens.
#[derive(Debug)]
enum Backend {
    /// The API server.
    Api { config: TokenReviewConfig, client: reqwest::Client },
    /// The binding proxy (which asks the API server).
    Proxy(Box<mcp_guard_binding_client::ProxyToolHost>),
}

/// The answer of [`TokenReview::review`].
#[derive(Debug, PartialEq, Eq)]
enum Review {
    /// Valid for our audience: the user name.
    User(String),
    /// Refused (now or recently).
    Refused,
    /// Not a JWT: not sent for review.
    NotJwt,
    /// The peer's failure budget is spent: not sent for review.
    Limited,
    /// Valid, but the proxy refuses this caller (the message says why).
    Denied(String),
    /// Valid, and the proxy admits this caller for discovery only (not cached here).
    Discoverer(String),
}

impl TokenReview {
    fn new(config: TokenReviewConfig) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy();
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            builder = builder.tls_certs_only([cert]);
        }
        let client = builder.build().map_err(|e| format!("cannot build the TokenReview client: {e}"))?;
        Ok(Self::with_backend(config.cache_ttl, Backend::Api { config, client }))
    }

    fn via_proxy(proxy: mcp_guard_binding_client::ProxyToolHost) -> Self {
        Self::with_backend(Duration::from_secs(30), Backend::Proxy(Box::new(proxy)))
    }

    fn with_backend(cache_ttl: Duration, backend: Backend) -> Self {
        TokenReview {
            backend,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            limiter: FailureLimiter::default(),
        }
    }

    /// Review `token` sent from `peer`, from the caches when possible; `Err` when the API server cannot
    /// answer.
    async fn review(&self, token: &str, peer: Option<IpAddr>) -> Result<Review, String> {
        if !jwt_shaped(token) {
            return Ok(Review::NotJwt);
        }
        let key = digest(token);
        if let Ok(cache) = self.cache.lock()
            && let Some((user, at)) = cache.get(&key)
            && at.elapsed() < self.cache_ttl
        {
            return Ok(Review::User(user.clone()));
        }
        if let Ok(refused) = self.refused.lock()
            && refused.get(&key).is_some_and(|at| at.elapsed() < NEGATIVE_CACHE_TTL)
        {
            return Ok(Review::Refused);
        }
        if !self.limiter.try_acquire(peer) {
            return Ok(Review::Limited);
        }
        let result = match &self.backend {
            Backend::Api { config, client } => self.ask(config, client, token).await,
            Backend::Proxy(proxy) => match proxy.review_caller(token, peer).await {
                Ok((user, false)) => Ok(Review::User(user)),
                Ok((user, true)) => Ok(Review::Discoverer(user)),
                Err(s) => match s.code() {
                    tonic::Code::Unauthenticated => Ok(Review::Refused),
                    tonic::Code::PermissionDenied => Ok(Review::Denied(s.message().to_string())),
                    tonic::Code::ResourceExhausted => Ok(Review::Limited),
                    _ => Err(format!("the binding proxy cannot review the token: {}", s.message())),
                },
            },
        };
        if let Ok(Review::User(user)) = &result
            && let Ok(mut cache) = self.cache.lock()
        {
            let value = (user.clone(), Instant::now());
            bounded_insert(&mut cache, key, value, MAX_CACHED_REVIEWS, self.cache_ttl, |v| v.1);
        }
        match &result {
            Ok(Review::User(_) | Review::Denied(_) | Review::Discoverer(_)) => self.limiter.refund(peer),
            Ok(Review::Refused) => {
                if let Ok(mut refused) = self.refused.lock() {
                    bounded_insert(
                        &mut refused,
                        key,
                        Instant::now(),
                        MAX_CACHED_REVIEWS,
                        NEGATIVE_CACHE_TTL,
                        |at| *at,
                    );
                }
            }
            _ => {}
        }
        result
    }

    /// Ask the API server.
    async fn ask(
        &self,
        config: &TokenReviewConfig,
        client: &reqwest::Client,
        token: &str,
    ) -> Result<Review, String> {
        let own = std::fs::read_to_string(&config.token_file)
            .map_err(|e| format!("cannot read {}: {e}", config.token_file.display()))?;
        let url =
            format!("{}/apis/authentication.k8s.io/v1/tokenreviews", config.api_server.trim_end_matches('/'));
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": { "token": token, "audiences": [config.audience] },
        });
        let response = client
            .post(&url)
            .bearer_auth(own.trim())
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("TokenReview request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("TokenReview answered HTTP {status}"));
        }
        let review: serde_json::Value =
            response.json().await.map_err(|e| format!("TokenReview answer is not JSON: {e}"))?;
        let s = &review["status"];
        let authenticated = s["authenticated"].as_bool() == Some(true);
        let audience_ok = s["audiences"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(config.audience.as_str())));
        let user = s["user"]["username"].as_str().filter(|u| !u.is_empty());
        match (authenticated, audience_ok, user) {
            (true, true, Some(user)) => Ok(Review::User(user.to_string())),
            _ => {
                tracing::debug!(
                    authenticated,
                    audience_ok,
                    error = s["error"].as_str().unwrap_or_default(),
                    "TokenReview refused a token"
                );
                Ok(Review::Refused)
            }
        }
    }
}

/// Authenticates callers; see the module documentation.
#[derive(Debug)]
pub struct Authenticator {
    token_file: Option<TokenFile>,
    token_review: Option<TokenReview>,
    mtls: bool,
    allowed: Option<Vec<String>>,
    discovery: Vec<String>,
    insecure: bool,
}

/// Whether `caller` matches one of `allowed` (exact, or a prefix ending in `*`).
pub fn caller_allowed(allowed: &[String], caller: &str) -> bool {
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => caller.starts_with(prefix),
        None => a == caller,
    })
}

/// The token of an `authorization` value `Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(value: &str) -> Result<&str, ApiError> {
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthenticated("malformed authorization: expected `Bearer <token>`".into()));
    }
    Ok(token)
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        let methods = config.token_file.is_some()
            || config.token_review.is_some()
            || config.proxy_review.is_some()
            || config.mtls;
        if !methods && !config.insecure_no_auth {
            return Err(
                "no caller authentication is configured: give --auth-tokens, --token-review-audience \
                 or --client-ca (or, for local experiments only, --insecure-no-auth)"
                    .into(),
            );
        }
        let token_file = config.token_file.map(TokenFile::load).transpose()?;
        let token_review = match (config.token_review, config.proxy_review) {
            (Some(_), Some(_)) => {
                return Err(
                    "tokens are reviewed either by the API server or by the binding proxy, not both".into()
                );
            }
            (Some(c), None) => Some(TokenReview::new(c)?),
            (None, Some(proxy)) => Some(TokenReview::via_proxy(proxy)),
            (None, None) => None,
        };
        Ok(Authenticator {
            token_file,
            token_review,
            mtls: config.mtls,
            allowed: config.allowed_callers,
            discovery: config.discovery_callers,
            insecure: config.insecure_no_auth,
        })
    }

    /// An authenticator that lets everyone in as `anonymous` (`--insecure-no-auth`).
    pub fn insecure() -> Self {
        Authenticator {
            token_file: None,
            token_review: None,
            mtls: false,
            allowed: None,
            discovery: Vec::new(),
            insecure: true,
        }
    }

    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Authenticate from the `authorization` value (if any) and a verified client certificate's CN
    /// (if any), then authorise against the allowed callers. `peer` is the caller's address (when the
    /// door knows it): TokenReview failures are limited per peer.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        client_cn: Option<String>,
        peer: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        if self.insecure {
            return Ok(Caller::new("anonymous", "none"));
        }
        let mut caller = match authorization {
            Some(value) => self.check_bearer(bearer_token(value)?, peer).await?,
            None => match client_cn.filter(|_| self.mtls) {
                Some(cn) => Caller::new(cn, "mtls"),
                None => {
                    return Err(ApiError::Unauthenticated(
                        "no credentials: send `authorization: Bearer <token>` or a client certificate".into(),
                    ));
                }
            },
        };
        // `None`: there is no allowed-callers list (every authenticated caller may execute).
        let listed = self.allowed.as_ref().map(|allowed| caller_allowed(allowed, &caller.name));
        if listed != Some(true) && caller_allowed(&self.discovery, &caller.name) {
            // Least privilege: a discovery caller runs no code, even when every caller may.
            caller.discovery_only = true;
        } else if listed == Some(false) {
            return Err(ApiError::PermissionDenied(format!(
                "caller `{}` is not allowed by this policy",
                caller.name
            )));
        }
        Ok(caller)
    }

    async fn check_bearer(&self, token: &str, peer: Option<IpAddr>) -> Result<Caller, ApiError> {
        if let Some(file) = &self.token_file
            && let Some(name) = file.lookup(token)
        {
            return Ok(Caller::new(name, "token-file"));
        }
        if let Some(review) = &self.token_review {
            match review.review(token, peer).await {
                Ok(Review::User(name)) => {
                    let mut caller = Caller::new(name, "token-review");
                    if matches!(review.backend, Backend::Proxy(_)) {
                        caller.token = Some(mcp_guard_sandbox::host::CallerToken(token.to_string()));
                    }
                    return Ok(caller);
                }
                Ok(Review::Denied(message)) => return Err(ApiError::PermissionDenied(message)),
                Ok(Review::Discoverer(name)) => {
                    let mut caller = Caller::new(name, "token-review");
                    caller.discovery_only = true;
                    return Ok(caller);
                }
                Ok(Review::Refused) => {
                    return Err(ApiError::Unauthenticated(
                        "the bearer token is not valid for this audience".into(),
                    ));
                }
                Ok(Review::NotJwt) => {
                    return Err(ApiError::Unauthenticated(
                        "the bearer token is not valid (not a service-account token)".into(),
                    ));
                }
                Ok(Review::Limited) => {
                    tracing::debug!(?peer, "too many failed token reviews from this peer");
                    return Err(ApiError::ResourceExhausted(
                        "too many failed authentications from this address; try again later".into(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot review a token");
                    return Err(ApiError::Unavailable("cannot verify the token right now".into()));
                }
            }
        }
        Err(ApiError::Unauthenticated("the bearer token is not valid".into()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_files_are_strict() {
        assert!(parse_token_file("# c\n\n0123456789abcdef alice\n").unwrap().len() == 1);
        assert!(parse_token_file("short alice").unwrap_err().contains("shorter than 16"));
        assert!(parse_token_file("0123456789abcdef").unwrap_err().contains("line 1"));
        assert!(parse_token_file("0123456789abcdef a\n0123456789abcdef b").unwrap_err().contains("twice"));
    }

    #[test]
    fn allowed_callers_match_exactly_or_by_prefix() {
        let allowed = vec!["alice".to_string(), "system:serviceaccount:agents:*".to_string()];
        assert!(caller_allowed(&allowed, "alice"));
        assert!(!caller_allowed(&allowed, "alice2"));
        assert!(caller_allowed(&allowed, "system:serviceaccount:agents:bot"));
        assert!(!caller_allowed(&allowed, "system:serviceaccount:other:bot"));
    }

    fn authenticator(allowed: Option<&[&str]>, discovery: &[&str]) -> Authenticator {
        let dir = std::env::temp_dir().join(format!("mcp-guard-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, "alice-token-0123456789 alice\noperator-token-0123456789 system:sa:op\n")
            .unwrap();
        let auth = Authenticator::new(AuthConfig {
            token_file: Some(tokens),
            allowed_callers: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
            discovery_callers: discovery.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        auth
    }

    #[tokio::test]
    async fn discovery_callers_may_not_execute() {
        for allowed in [Some(&["alice"][..]), None] {
            let auth = authenticator(allowed, &["system:sa:*"]);
            let op = auth.authenticate(Some("Bearer operator-token-0123456789"), None, None).await.unwrap();
            assert!(op.discovery_only, "{allowed:?}");
            let e = op.may_execute().unwrap_err();
            assert!(matches!(&e, ApiError::PermissionDenied(m) if m.contains("system:sa:op")), "{e:?}");
            let alice = auth.authenticate(Some("Bearer alice-token-0123456789"), None, None).await.unwrap();
            assert!(!alice.discovery_only);
            assert!(alice.may_execute().is_ok());
        }
        // An identity on both lists keeps its right to execute.
        let auth = authenticator(Some(&["system:sa:op"]), &["system:sa:op"]);
        let op = auth.authenticate(Some("Bearer operator-token-0123456789"), None, None).await.unwrap();
        assert!(op.may_execute().is_ok());
        // Neither list: refused.
        let auth = authenticator(Some(&["bob"]), &["carol"]);
        let e = auth.authenticate(Some("Bearer alice-token-0123456789"), None, None).await.unwrap_err();
        assert!(matches!(e, ApiError::PermissionDenied(_)), "{e:?}");
    }

    #[test]
    fn only_jwt_shaped_tokens_are_reviewed() {
        assert!(jwt_shaped("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2ln-_x"));
        for bad in
            ["forged-token", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=", "a+b.c.d", "a.b c.d", ""]
        {
            assert!(!jwt_shaped(bad), "{bad}");
        }
        let long = format!("a.{}.c", "b".repeat(MAX_REVIEWED_TOKEN_BYTES));
        assert!(!jwt_shaped(&long));
    }

    #[test]
    fn the_failure_limiter_is_per_peer_and_refills() {
        let limiter = FailureLimiter::default();
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        let taken = (0..100).take_while(|_| limiter.try_acquire(a)).count();
        assert_eq!(taken, FAILURE_BURST as usize);
        assert!(limiter.try_acquire(b), "another peer has its own bucket");
        limiter.refund(a);
        assert!(limiter.try_acquire(a), "a refund gives one back");
        assert!(!limiter.try_acquire(a));
        // IPv6 peers share a bucket per /64; IPv4-mapped addresses are their IPv4 address.
        let v6 = |s: &str| FailureLimiter::key(Some(s.parse().unwrap()));
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:2"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
        assert_eq!(v6("::ffff:10.0.0.1"), FailureLimiter::key(a));
    }

    #[test]
    fn bounded_maps_stay_bounded() {
        let mut map = HashMap::new();
        for i in 0..10_000u32 {
            bounded_insert(
                &mut map,
                digest(&i.to_string()),
                Instant::now(),
                64,
                Duration::from_secs(60),
                |at| *at,
            );
            assert!(map.len() <= 64);
        }
        assert!(map.contains_key(&digest("9999")), "the newest entry is kept");
    }

    #[test]
    fn bearer_values_are_parsed() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        assert!(bearer_token("Basic abc").is_err());
        assert!(bearer_token("Bearer").is_err());
    }
}
