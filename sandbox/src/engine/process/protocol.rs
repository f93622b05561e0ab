//! The channel between the executor and an isolate host: one socketpair, length-prefixed JSON frames.
//!
//! A host runs several executions of one caller at a time, so every frame after `Ready` names the
//! execution it belongs to: an id the executor chose when it sent the [`Job`] (`ToHost::Run`). The
//! executor sends jobs and the results of the tool calls the host asks for; the host sends `Ready` once
//! confined, then, per execution, tool calls, events and the outcome (`Done`, its last frame). Every
//! frame is bounded ([`MAX_FRAME`]); a larger or malformed frame, a second `Ready`, or a frame naming an
//! execution the host is not running (never sent, or already `Done`) ends the conversation: the
//! executor kills the host.

use mcp_guard_crds::Limits;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    engine::{Code, ExecutionEvent},
    host::{ExecutionInfo, ToolError},
    outcome::Outcome,
};

/// Largest frame either side accepts. Code is capped at 4 MiB (`limits.codeSize`), outputs and tool
/// arguments/results are budgeted below 64 MiB; a frame over this is a protocol error.
pub const MAX_FRAME: usize = 80 * 1024 * 1024;

/// One execution for a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub execution: ExecutionInfo,
    /// The submitted source (validated in the host) or, from older callers and tests, prepared code.
    pub code: Code,
    pub limits: Limits,
    /// The bound tools as `(server, tool names)`; the host rebuilds the same catalog (identifiers are
    /// deterministic).
    pub catalog: Vec<(String, Vec<String>)>,
}

/// One execution for a script host (V8): what `Job` says, prepared by the executor for a host that is
/// JavaScript (plain numbers, the catalog as the prelude takes it, the code as a module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptJob {
    /// The prepared code as an ES module whose default export is the function to call.
    pub module: String,
    /// The bound tools, as the prelude takes them (names and identifiers).
    pub catalog: serde_json::Value,
    /// The `Math.random` seed (a string: it is 64 bits).
    pub seed: String,
    /// The clock origin (0: now).
    pub clock_ms: u64,
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub output_bytes: u64,
    pub tool_calls: u32,
    pub discovery_calls: u32,
    /// The message of each limit (`LimitKind::describe`), by its name.
    pub messages: std::collections::BTreeMap<String, String>,
}

/// Executor to host. `id` names the execution (chosen by the executor, unique for the host's life).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToHost {
    Run {
        id: u64,
        job: Box<Job>,
    },
    /// An execution for a V8 host.
    Script {
        id: u64,
        job: Box<ScriptJob>,
    },
    ToolResult {
        id: u64,
        call: u64,
        result: Result<serde_json::Value, ToolError>,
    },
}

/// Host to executor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromHost {
    /// The host is confined and waits for its jobs; `confinement` says what it got. Sent once, first.
    Ready {
        confinement: String,
        seccomp: bool,
    },
    /// Execution `id` calls a tool; `call` is unique for the host's life.
    ToolCall {
        id: u64,
        call: u64,
        server: String,
        tool: String,
        arguments: serde_json::Value,
    },
    Event {
        id: u64,
        event: ExecutionEvent,
    },
    /// Execution `id` ended; nothing more comes for it.
    Done {
        id: u64,
        outcome: Box<Outcome>,
    },
}

impl FromHost {
    /// The execution the frame belongs to (`None` for `Ready`).
    pub fn execution(&self) -> Option<u64> {
        match self {
            FromHost::Ready { .. } => None,
            FromHost::ToolCall { id, .. } | FromHost::Event { id, .. } | FromHost::Done { id, .. } => {
                Some(*id)
            }
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the channel closed")]
    Closed,
    #[error("a frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("a malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("channel: {0}")]
    Io(#[from] std::io::Error),
}

/// Write one frame.
pub async fn write_frame<W: AsyncWriteExt + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

/// Read one frame; `Closed` at a clean end of stream between frames.
pub async fn read_frame<R: AsyncReadExt + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // Grow with the bytes that arrive, not with what the header claims: a host (which runs guest code)
    // that announces 80 MiB and sends nothing costs the executor nothing.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(FrameError::Closed);
    }
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let msg = FromHost::ToolCall {
            id: 3,
            call: 7,
            server: "s".into(),
            tool: "t".into(),
            arguments: serde_json::json!({"x": 1}),
        };
        let writer = tokio::spawn(async move {
            write_frame(&mut a, &msg).await.unwrap();
            a
        });
        let back: FromHost = read_frame(&mut b).await.unwrap();
        assert!(matches!(back, FromHost::ToolCall { id: 3, call: 7, .. }));
        assert_eq!(back.execution(), Some(3));
        let mut a = writer.await.unwrap();
        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        assert!(matches!(read_frame::<_, FromHost>(&mut b).await, Err(FrameError::TooLarge(_))));
        drop(a);
        assert!(matches!(read_frame::<_, FromHost>(&mut b).await, Err(FrameError::Closed)));
    }

    /// A header that announces a large frame, then the stream ends: `Closed`. (The reader reserves at
    /// most 64 KiB up front and grows with what arrives; the fuzz target `host_frames` runs such input
    /// by the thousand.)
    #[tokio::test]
    async fn a_frame_cut_short_is_closed_without_reserving_what_it_announced() {
        let mut stream: Vec<u8> = (MAX_FRAME as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(b"{\"Ready\"");
        let r = read_frame::<_, FromHost>(&mut stream.as_slice()).await;
        assert!(matches!(r, Err(FrameError::Closed)), "{r:?}");
        // A complete frame after a partial read still decodes.
        let mut ok = Vec::new();
        write_frame(&mut ok, &FromHost::Ready { confinement: "x".into(), seccomp: true }).await.unwrap();
        assert!(matches!(read_frame::<_, FromHost>(&mut ok.as_slice()).await, Ok(FromHost::Ready { .. })));
    }
}
