//! Approvals: a call of a `requireApproval` tool pauses its execution until a person decides, and the
//! caller then resumes it.
//!
//! - **Pausing.** The call is refused with `approval_required` and remembered in the execution; the
//!   executor ends the execution as `approval_required` once the calls in flight are done (so calls
//!   issued together, `Promise.all`, are gathered into one approval). At that end the proxy records one
//!   [`ApprovalRecord`] in its [`ApprovalStore`] and the execution's [`Journal`], sealed.
//! - **The journal** holds what the resume needs: the code, the seed of `Math.random`, the clock, and
//!   every call that reached an upstream with its result. It holds tool results, so it never goes into
//!   the approval record (which approvers read): it is sealed (ChaCha20-Poly1305, a key only the proxy
//!   reads, bound to the approval's id and policy) and stored beside it.
//! - **Resuming.** Only the requester may resume, only once (the store marks the approval used
//!   atomically) and only once decided. The code runs again from the start; calls are matched to the
//!   journal by their position in issue order plus server, tool and an argument digest: a match is
//!   answered from the journal without reaching the upstream, a mismatch ends the run as
//!   `ReplayDiverged`, and the approved call runs (once) or, denied, fails with `approval_denied`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use mcp_guard_crds::{ApprovalSettings, Approvers};
use mcp_guard_tools::FailureKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

/// A call waiting for approval, as the approver sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCall {
    /// Its position among the execution's calls, in issue order.
    pub sequence: u64,
    pub server: String,
    pub tool: String,
    /// The arguments with the proxy's secrets redacted.
    pub arguments: Value,
    /// sha256 of the arguments as the code sent them (canonical JSON), hex.
    pub arguments_sha256: String,
}

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ApprovalState {
    Pending,
    Approved {
        by: String,
    },
    Denied {
        by: String,
        #[serde(default)]
        reason: String,
    },
    Expired,
    /// Resumed (once); `verdict` is what was decided.
    Used {
        execution: String,
        verdict: Verdict,
        by: String,
    },
}

impl ApprovalState {
    pub fn name(&self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved { .. } => "approved",
            ApprovalState::Denied { .. } => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Used { .. } => "used",
        }
    }
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Approved,
    Denied,
}

/// One approval, as the store keeps it (never any tool result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    pub id: String,
    pub policy: String,
    pub execution_id: String,
    pub requester: String,
    pub calls: Vec<PendingCall>,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    pub allow_self_approval: bool,
    pub approvers: Approvers,
    #[serde(flatten)]
    pub state: ApprovalState,
}

impl ApprovalRecord {
    /// Whether it can no longer be decided at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        humantime::parse_rfc3339(&self.expires_at).map_or(true, |t| now > t)
    }

    /// Until when a decided approval may be resumed: one time-to-live after the decision deadline.
    pub(crate) fn resumable_until(&self) -> Option<SystemTime> {
        let expires = humantime::parse_rfc3339(&self.expires_at).ok()?;
        let created = humantime::parse_rfc3339(&self.created_at).ok()?;
        Some(expires + expires.duration_since(created).unwrap_or_default())
    }

    /// A one-line summary: `server.tool` of the first call, `+N` more.
    pub fn summary(&self) -> String {
        match self.calls.split_first() {
            Some((first, [])) => format!("{}.{}", first.server, first.tool),
            Some((first, rest)) => format!("{}.{} +{}", first.server, first.tool, rest.len()),
            None => String::new(),
        }
    }
}

/// Why a store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("approval {0} does not exist")]
    NotFound(String),
    /// The approval is not in a state that allows this (undecided, decided, used, expired).
    #[error("{0}")]
    Conflict(String),
    /// The decider may not decide this approval.
    #[error("{0}")]
    Forbidden(String),
    /// The store cannot be read or written now.
    #[error("the approval store failed: {0}")]
    Unavailable(String),
}

/// Where approvals and their sealed journals live: a directory locally ([`DirectoryStore`]), Kubernetes
/// objects in a cluster (implemented in the `mcp-guard` binary: this crate holds no API client).
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// Record a new, pending approval and its sealed journal, together: both or neither.
    async fn create(&self, record: &ApprovalRecord, sealed_journal: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, id: &str) -> Result<ApprovalRecord, StoreError>;
    async fn journal(&self, id: &str) -> Result<Vec<u8>, StoreError>;
    /// Mark a decided approval used by `execution`, atomically: of concurrent calls for one approval,
    /// exactly one succeeds. Returns the state it had (approved or denied). `Conflict` when it is not
    /// decided or already used.
    async fn mark_used(&self, id: &str, execution: &str) -> Result<ApprovalState, StoreError>;
    /// Every approval `requester` asked for (all, when `None`), newest first.
    async fn list(&self, requester: Option<&str>) -> Result<Vec<ApprovalRecord>, StoreError>;
}

/// The key that seals journals, and the sealing itself.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

const SEAL_VERSION: u8 = 1;

impl Sealer {
    /// A key of 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("the journal key is not hex: {e}"))?;
        if bytes.len() != 32 {
            return Err(format!("the journal key must be 32 bytes (64 hex digits), not {}", bytes.len()));
        }
        Ok(Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)) })
    }

    /// The key in `path`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the journal key {}: {e}", path.display()))?;
        Self::from_hex(&text)
    }

    fn aad(id: &str, policy: &str) -> Vec<u8> {
        format!("mcp-guard journal v{SEAL_VERSION}\0{policy}\0{id}").into_bytes()
    }

    pub fn seal(&self, id: &str, policy: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = Self::aad(id, policy);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad: &aad })
            .map_err(|_| "the journal could not be sealed".to_string())?;
        let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Open a journal sealed for approval `id` of `policy`; fails for any other approval, another
    /// key or any change to the bytes.
    pub fn open(&self, id: &str, policy: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let refused = || {
            format!(
                "the journal of approval {id} cannot be opened: it was sealed with another key, for another approval, or changed"
            )
        };
        let (version, rest) = sealed.split_first().ok_or_else(refused)?;
        if *version != SEAL_VERSION || rest.len() < 12 {
            return Err(refused());
        }
        let (nonce, body) = rest.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &Self::aad(id, policy) })
            .map_err(|_| refused())
    }
}

/// A call's recorded result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Recorded {
    Value(Value),
    Failure { kind: FailureKind, message: String },
}

/// One call that reached its upstream, with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub(crate) sequence: u64,
    pub(crate) server: String,
    pub(crate) tool: String,
    pub(crate) arguments_sha256: String,
    pub(crate) result: Recorded,
}

/// Everything a resume needs, sealed in the store beside its approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Journal {
    pub(crate) approval: String,
    pub(crate) policy: String,
    pub(crate) caller: String,
    pub(crate) code: String,
    pub(crate) code_sha256: String,
    pub(crate) seed: u64,
    pub(crate) clock_ms: u64,
    pub(crate) entries: Vec<Entry>,
    /// The calls the approval is for: (sequence, server, tool, argument digest).
    pub(crate) paused: Vec<(u64, String, String, String)>,
}

/// A resumed execution's view of its journal.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) approval: String,
    pub(crate) entries: HashMap<u64, Entry>,
    /// The calls the approval decided: sequence → (server, tool, digest).
    pub(crate) decided: HashMap<u64, (String, String, String)>,
    pub(crate) verdict: Option<Verdict>,
    pub(crate) decided_by: String,
    pub(crate) reason: String,
}

/// sha256 of a JSON value's canonical text (keys sorted), hex.
pub(crate) fn digest(value: &Value) -> String {
    hex::encode(sha2::Sha256::digest(canonical(value).as_bytes()))
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A new approval id: a DNS-1123 name (it names a Kubernetes object), 122 random bits.
pub(crate) fn new_id() -> String {
    format!("ap-{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Why a resume is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("approval {0} does not exist")]
    NotFound(String),
    #[error("approval {0} was asked for by another caller")]
    OtherCaller(String),
    /// Undecided, expired, already used.
    #[error("{0}")]
    NotResumable(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The local store: a directory (mode 0700), `<id>.json` per approval and `<id>.journal` per sealed
/// journal. Writes go to a temporary file renamed into place; marking used takes `<id>.used`, created
/// exclusively, so of two concurrent resumes (in any processes) one wins.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    dir: PathBuf,
}

impl DirectoryStore {
    /// The store in `dir`, created (0700) when missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let mode = std::fs::metadata(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", dir.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(DirectoryStore { dir: dir.to_path_buf() })
    }

    /// The key that seals this store's journals: `journal.key` in the directory, generated (0600) on
    /// first use.
    pub fn sealer(&self) -> Result<Sealer, String> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let path = self.dir.join("journal.key");
        if !path.exists() {
            let key = ChaCha20Poly1305::generate_key(&mut OsRng);
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(mut f) => f
                    .write_all(hex::encode(key).as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                // Another process made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Sealer::from_file(&path)
    }

    fn checked(&self, id: &str) -> Result<(), StoreError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(()) } else { Err(StoreError::NotFound(id.escape_debug().to_string())) }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let tmp = self.dir.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(name))
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::Unavailable(format!("cannot write {name}: {e}"))
        })
    }

    fn read_record(&self, id: &str) -> Result<ApprovalRecord, StoreError> {
        self.checked(id)?;
        let text = match std::fs::read(self.dir.join(format!("{id}.json"))) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.into()));
            }
            Err(e) => return Err(StoreError::Unavailable(format!("cannot read approval {id}: {e}"))),
        };
        let mut record: ApprovalRecord = serde_json::from_slice(&text)
            .map_err(|e| StoreError::Unavailable(format!("approval {id} is malformed: {e}")))?;
        // A used marker wins over whatever the record says (the record is rewritten after it).
        if let Ok(used) = std::fs::read(self.dir.join(format!("{id}.used")))
            && let Ok(state) = serde_json::from_slice::<ApprovalState>(&used)
        {
            record.state = state;
        }
        if record.state == ApprovalState::Pending && record.expired_at(SystemTime::now()) {
            record.state = ApprovalState::Expired;
        }
        Ok(record)
    }

    /// Decide a pending approval as `by` (the local user). Refused when `by` is not an approver (when
    /// the approval lists any), is the requester (unless self-approval is allowed), when it is
    /// already decided, or expired.
    pub fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        by: &str,
        reason: &str,
    ) -> Result<ApprovalRecord, StoreError> {
        let mut record = self.read_record(id)?;
        match &record.state {
            ApprovalState::Pending => {}
            ApprovalState::Expired => {
                return Err(StoreError::Conflict(format!(
                    "approval {id} expired at {} without a decision",
                    record.expires_at
                )));
            }
            other => return Err(StoreError::Conflict(format!("approval {id} is already {}", other.name()))),
        }
        if by == record.requester && !record.allow_self_approval {
            return Err(StoreError::Forbidden(format!(
                "{by} asked for approval {id} and may not decide it (the policy does not allow self-approval)"
            )));
        }
        if !record.approvers.is_empty() && !record.approvers.users.iter().any(|u| u == by) {
            return Err(StoreError::Forbidden(format!(
                "{by} is not an approver of policy {}",
                record.policy
            )));
        }
        record.state = match verdict {
            Verdict::Approved => ApprovalState::Approved { by: by.into() },
            Verdict::Denied => ApprovalState::Denied { by: by.into(), reason: reason.into() },
        };
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.write(&format!("{id}.json"), &bytes)?;
        Ok(record)
    }
}

#[async_trait]
impl ApprovalStore for DirectoryStore {
    async fn create(&self, record: &ApprovalRecord, sealed_journal: &[u8]) -> Result<(), StoreError> {
        self.checked(&record.id)?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // The journal first: an approval whose record exists always has its journal.
        self.write(&format!("{}.journal", record.id), sealed_journal)?;
        self.write(&format!("{}.json", record.id), &bytes)
    }

    async fn get(&self, id: &str) -> Result<ApprovalRecord, StoreError> {
        self.read_record(id)
    }

    async fn journal(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.checked(id)?;
        std::fs::read(self.dir.join(format!("{id}.journal")))
            .map_err(|e| StoreError::Unavailable(format!("cannot read the journal of approval {id}: {e}")))
    }

    async fn mark_used(&self, id: &str, execution: &str) -> Result<ApprovalState, StoreError> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let mut record = self.read_record(id)?;
        let (verdict, by) = match &record.state {
            ApprovalState::Approved { by } => (Verdict::Approved, by.clone()),
            ApprovalState::Denied { by, .. } => (Verdict::Denied, by.clone()),
            ApprovalState::Used { execution, .. } => {
                return Err(StoreError::Conflict(format!(
                    "approval {id} was already resumed by execution {execution}"
                )));
            }
            other => return Err(StoreError::Conflict(format!("approval {id} is {}", other.name()))),
        };
        let decided = record.state.clone();
        let used = ApprovalState::Used { execution: execution.into(), verdict, by };
        let bytes = serde_json::to_vec(&used).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let path = self.dir.join(format!("{id}.used"));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => f
                .write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| StoreError::Unavailable(format!("cannot write {}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Conflict(format!("approval {id} was already resumed")));
            }
            Err(e) => return Err(StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))),
        }
        record.state = used;
        if let Ok(bytes) = serde_json::to_vec_pretty(&record) {
            // The marker is the truth; the record follows for readers of the directory.
            let _ = self.write(&format!("{id}.json"), &bytes);
        }
        Ok(decided)
    }

    async fn list(&self, requester: Option<&str>) -> Result<Vec<ApprovalRecord>, StoreError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", self.dir.display())))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            if id.starts_with('.') {
                continue;
            }
            match self.read_record(id) {
                Ok(r) if requester.is_none_or(|q| q == r.requester) => out.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!(approval = id, error = %e, "skipping an unreadable approval"),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// The store and key a proxy uses, from its configuration.
pub(crate) struct Approvals {
    pub(crate) settings: ApprovalSettings,
    /// The directory store is opened from the settings; a Kubernetes store is set by the binary
    /// ([`crate::BindingProxy::set_approval_store`]).
    pub(crate) store: std::sync::OnceLock<std::sync::Arc<dyn ApprovalStore>>,
}

impl Approvals {
    pub(crate) fn new(settings: ApprovalSettings) -> Self {
        let store = std::sync::OnceLock::new();
        if let Some(dir) = &settings.store.directory {
            match DirectoryStore::open(Path::new(dir)) {
                Ok(s) => {
                    let _ = store.set(std::sync::Arc::new(s) as std::sync::Arc<dyn ApprovalStore>);
                }
                // Calls that need approval then fail closed, saying why, when their execution ends.
                Err(e) => tracing::error!(error = %e, "cannot open the approval store"),
            }
        }
        Approvals { settings, store }
    }

    pub(crate) fn store(&self) -> Result<std::sync::Arc<dyn ApprovalStore>, String> {
        self.store.get().cloned().ok_or_else(|| "the approval store is not available".to_string())
    }

    pub(crate) fn sealer(&self) -> Result<Sealer, String> {
        match (&self.settings.journal_key_file, &self.settings.store.directory) {
            (Some(file), _) => Sealer::from_file(Path::new(file)),
            (None, Some(dir)) => DirectoryStore::open(Path::new(dir)).map_err(|e| e.to_string())?.sealer(),
            (None, None) => Err("approvals.journalKeyFile is not set".into()),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.settings.ttl.duration()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn journals_open_only_for_their_approval_and_key() {
        let key = hex::encode([7u8; 32]);
        let s = Sealer::from_hex(&key).unwrap();
        let sealed = s.seal("ap-1", "ns/p", b"results").unwrap();
        assert_eq!(s.open("ap-1", "ns/p", &sealed).unwrap(), b"results");
        assert!(s.open("ap-2", "ns/p", &sealed).is_err(), "bound to the approval id");
        assert!(s.open("ap-1", "ns/q", &sealed).is_err(), "bound to the policy");
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(s.open("ap-1", "ns/p", &flipped).is_err(), "authenticated");
        let other = Sealer::from_hex(&hex::encode([8u8; 32])).unwrap();
        assert!(other.open("ap-1", "ns/p", &sealed).is_err(), "another key");
        assert!(!sealed.windows(7).any(|w| w == b"results"), "encrypted");
        assert!(Sealer::from_hex("abcd").is_err());
        assert!(Sealer::from_hex("zz").is_err());
    }

    #[test]
    fn digests_ignore_key_order_but_not_values() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[2,1]},"b":1}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        // A key that looks like JSON cannot collide with structure.
        let d: Value = serde_json::from_str(r#"{"a\":1,\"b":2}"#).unwrap();
        let e: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        assert_ne!(digest(&d), digest(&e));
    }

    fn record(id: &str, requester: &str, ttl: Duration) -> ApprovalRecord {
        let now = SystemTime::now();
        ApprovalRecord {
            id: id.into(),
            policy: "local".into(),
            execution_id: "e1".into(),
            requester: requester.into(),
            calls: vec![],
            created_at: rfc3339(now),
            expires_at: rfc3339(now + ttl),
            allow_self_approval: false,
            approvers: Approvers { users: vec!["unix:alice".into()], ..Approvers::default() },
            state: ApprovalState::Pending,
        }
    }

    #[tokio::test]
    async fn the_directory_store_enforces_deciders_and_uses_each_approval_once() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-approvals-{}", uuid::Uuid::new_v4().simple()));
        let store = DirectoryStore::open(&dir.join("approvals")).unwrap();
        store.create(&record("ap-a", "unix:alice", Duration::from_secs(60)), b"j").await.unwrap();
        // Not decided yet: cannot be used.
        assert!(matches!(store.mark_used("ap-a", "e2").await, Err(StoreError::Conflict(_))));
        // The requester may not approve its own call; a non-approver may not either.
        assert!(matches!(
            store.decide("ap-a", Verdict::Approved, "unix:alice", ""),
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            store.decide("ap-a", Verdict::Approved, "unix:mallory", ""),
            Err(StoreError::Forbidden(_))
        ));
        store.create(&record("ap-b", "agent", Duration::from_secs(60)), b"j").await.unwrap();
        store.decide("ap-b", Verdict::Approved, "unix:alice", "").unwrap();
        // A second decision is refused.
        assert!(matches!(
            store.decide("ap-b", Verdict::Denied, "unix:alice", ""),
            Err(StoreError::Conflict(_))
        ));
        // Concurrent uses: exactly one wins.
        let (a, b) = tokio::join!(store.mark_used("ap-b", "e3"), store.mark_used("ap-b", "e4"));
        assert_eq!([a.is_ok(), b.is_ok()].iter().filter(|x| **x).count(), 1, "{a:?} {b:?}");
        assert!(matches!(store.get("ap-b").await.unwrap().state, ApprovalState::Used { .. }));
        // Expired approvals cannot be decided.
        store.create(&record("ap-c", "agent", Duration::ZERO), b"j").await.unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            store.decide("ap-c", Verdict::Approved, "unix:alice", ""),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.get("ap-c").await.unwrap().state, ApprovalState::Expired);
        // Ids that are not names are never paths.
        assert!(matches!(store.get("../etc/passwd").await, Err(StoreError::NotFound(_))));
        let listed = store.list(Some("agent")).await.unwrap();
        assert_eq!(listed.len(), 2);
        // The key is private.
        store.sealer().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("approvals/journal.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
