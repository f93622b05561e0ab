//! The second engine: V8 isolates, through the Deno runtime binary, in isolate-host processes.
//!
//! The `v8` crate cannot be built on the machines this project builds on (its build script downloads a
//! prebuilt library), but a released Deno binary is in the package registries (npm `deno`), so V8 runs
//! as a host process: the executor's [`ProcessEngine`](super::process::ProcessEngine) starts
//! `mcp-guard v8-host` exactly as it starts `mcp-guard isolate-host`, with an empty environment and one
//! channel; that launcher ([`launcher_main`]) confines the process (Landlock, rlimits, a seccomp allow
//! list, `no_new_privs`) and then `execve`s Deno, which inherits all of it:
//!
//! - Landlock: the Deno binary is the one file it may execute; it may read that binary and the C
//!   libraries it links (the dynamic loader maps them), nothing else; no TCP bind or connect; signals
//!   and abstract sockets scoped.
//! - seccomp: an allow list (`SECCOMP_RET_KILL_PROCESS` for everything else): what Deno and V8 need to
//!   run a script (threads, memory, including executable memory for the JIT, futexes, clocks, reads and
//!   writes of descriptors it holds, and opens, which Landlock answers), and no sockets, no process
//!   creation, no tracing, no mounts or namespaces, no BPF or io_uring. `execve` is allowed (the
//!   launcher needs it once); Landlock leaves the Deno binary as the only thing it can run again.
//! - Deno with no permission at all: `--no-prompt` and no `--allow-*`, `--no-config`, `--no-lock`,
//!   `--no-npm`, `--no-remote`, `--cached-only`, no `DENO_DIR` it could write (its cache directory
//!   is unreachable under Landlock), no update check.
//!
//! The host script (`host.js`, embedded in this binary and passed as a `data:` module: no file on disk)
//! speaks the channel protocol on standard input and output, starts the execution's Worker (a fresh V8
//! isolate, booted before the job arrives) and runs one execution; then the process exits. The Worker's
//! bootstrap (`worker.js`) removes Deno's globals and runs the same prelude as QuickJS.
//!
//! The memory limit is V8's heap limit for the process (`--max-heap-size`); a Worker that reaches it
//! makes V8 abort the process, which the executor reports as `limit_exceeded: memory` (it reads the
//! host's standard error for V8's out-of-memory report).

use std::{
    ffi::{CString, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::{
    outcome::{Outcome, Status},
    validator::Prepared,
};

const HOST_JS: &str = include_str!("host.js");
const WORKER_JS: &str = include_str!("worker.js");
const PRELUDE_JS: &str = include_str!("../quickjs/prelude.js");
const WEB_JS: &str = include_str!("../quickjs/web.js");

/// What V8 prints on standard error when an isolate reaches its heap limit (then it aborts).
pub const OOM_MARKERS: [&str; 3] =
    ["Fatal JavaScript out of memory", "Reached heap limit", "JavaScript heap out of memory"];

/// The shared libraries a glibc build of Deno links (`ldd deno`), searched in the standard directories:
/// the files, besides the binary, that the confined process may read.
const LIBRARIES: [&str; 7] = [
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
];
const LIBRARY_DIRS: [&str; 4] = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib"];

/// V8's stack limit must stay inside the Worker thread's real stack (about 4 MiB in Deno 2.9: a V8
/// limit of 4 MiB overflows it and aborts the process), with room for native frames: a larger
/// `limits.stack` is capped here.
pub const MAX_STACK_BYTES: u64 = 3 << 20;

/// Where the Deno binary is: `configured` (the config's `deno`), else `deno` next to the running
/// `mcp-guard` binary, else `/usr/local/lib/mcp-guard/deno` (the executor image's).
pub fn find_deno(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("the configured Deno binary {} does not exist (config field `deno`)", path.display()))
        };
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("deno")));
    let candidates: Vec<PathBuf> =
        beside.into_iter().chain([PathBuf::from("/usr/local/lib/mcp-guard/deno")]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "limits.engine is v8 but no Deno binary was found (looked at {}); set `deno` in the config, or run scripts/setup.sh, which installs it",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The host script with everything it embeds: the Worker's bootstrap, the prelude, the web built-ins
/// and the confinement the launcher achieved (reported back in `Ready`).
pub fn host_script(confinement: &str, seccomp: bool, max_executions: u32) -> String {
    // Each file is a comment, a "use strict" directive, then one function expression: the expression.
    let expression = |source: &'static str| {
        let start = source.find("\n(function").map_or(0, |i| i + 1);
        source[start..].trim().trim_end_matches(';')
    };
    let worker = WORKER_JS.replacen("__PRELUDE__", expression(PRELUDE_JS), 1).replacen(
        "__WEB__",
        expression(WEB_JS),
        1,
    );
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let report = serde_json::json!({ "summary": confinement, "seccomp": seccomp });
    HOST_JS
        .replacen("__WORKER__", &quote(&worker), 1)
        .replacen("__CONFINEMENT__", &report.to_string(), 1)
        .replacen("__MAX_EXECUTIONS__", &max_executions.max(1).to_string(), 1)
}

/// The submitted code as the Worker imports it: the prepared script (`"use strict";\n(<function>)`)
/// as a module whose default export is the function. Only the first line changes, so line and column
/// positions stay those of the prepared script.
pub fn module_source(prepared: &Prepared) -> Option<String> {
    let rest = prepared.script.strip_prefix("\"use strict\";\n")?;
    Some(format!("\"use strict\";export default\n{rest}\n;"))
}

/// The executor's side of a V8 outcome: stack frames mapped to the submitted source (as QuickJS's
/// are), and an uncaught stack overflow reported as the stack limit.
pub fn finish_outcome(outcome: &mut Outcome, prepared: Option<&Prepared>, limits: &mcp_guard_crds::Limits) {
    if let Status::Threw { error } = &mut outcome.status {
        if error.name == "RangeError" && error.message == "Maximum call stack size exceeded" {
            outcome.status = Status::LimitExceeded {
                limit: mcp_guard_crds::LimitKind::Stack,
                message: mcp_guard_crds::LimitKind::Stack.describe(limits),
            };
            return;
        }
        error.stack = match prepared {
            Some(p) => crate::engine::quickjs::map_stack(&error.stack, &p.positions),
            None => String::new(),
        };
        // A thrown error is output too: it gets what the console output left of the limit.
        let printed: usize = outcome.console.iter().map(|l| l.message.len() + 1).sum();
        let room = limits.output.as_usize().saturating_sub(printed);
        let whole = crate::outcome::ThrownError {
            name: std::mem::take(&mut error.name),
            message: std::mem::take(&mut error.message),
            stack: std::mem::take(&mut error.stack),
        };
        *error = whole.fit(room, limits.output);
    }
}

/// The Deno command line after the binary: run the host script with no permission and nothing
/// discovered or fetched.
fn deno_args(memory_limit: u64, stack_limit: u64, script: &str) -> Vec<OsString> {
    use base64::Engine as _;
    let heap_mib = memory_limit.div_ceil(1 << 20).max(8);
    let stack_kib = (stack_limit.min(MAX_STACK_BYTES) / 1024).max(64);
    let v8_flags = [
        format!("--max-heap-size={heap_mib}"),
        format!("--stack-size={stack_kib}"),
        // eval / new Function fail in the engine itself (the prelude's stubs say why).
        "--disallow-code-generation-from-strings".to_string(),
    ]
    .join(",");
    let url = format!(
        "data:text/javascript;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(script.as_bytes())
    );
    [
        "run",
        "--no-prompt",
        "--no-config",
        "--no-lock",
        "--no-npm",
        "--no-remote",
        "--cached-only",
        "--no-check",
        "--quiet",
        &format!("--v8-flags={v8_flags}"),
        &url,
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// The files the confined process may read: the Deno binary and the libraries it links.
fn readable_files(deno: &Path) -> Vec<PathBuf> {
    let mut files = vec![deno.to_path_buf()];
    for lib in LIBRARIES {
        if let Some(found) = LIBRARY_DIRS.iter().map(|d| Path::new(d).join(lib)).find(|p| p.exists()) {
            files.push(found);
        }
    }
    files
}

/// `mcp-guard v8-host`: confine this process, then execute Deno with the host script. Started by the
/// executor with the channel on descriptor 3 (moved to standard input and output here, where a Deno
/// script without permissions can reach it). Returns only on failure (the exit code).
pub fn launcher_main(deno: &Path, memory_limit: u64, stack_limit: u64, max_executions: u32) -> i32 {
    let fail = |m: &str| {
        eprintln!("mcp-guard v8-host: {m}");
        70
    };
    let deno = match deno.canonicalize() {
        Ok(p) => p,
        Err(e) => return fail(&format!("the Deno binary {}: {e}", deno.display())),
    };
    // SAFETY: descriptor juggling in a single-threaded process before exec: the channel (3) becomes
    // standard input and output; everything above standard error is closed.
    unsafe {
        if libc::dup2(crate::engine::process::host::CHANNEL_FD, 0) < 0
            || libc::dup2(crate::engine::process::host::CHANNEL_FD, 1) < 0
        {
            return fail(&format!("channel: {}", std::io::Error::last_os_error()));
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let mut report = match crate::engine::confine::confine_for_exec(&deno, &readable_files(&deno)) {
        Ok(r) => r,
        Err(e) => return fail(&format!("confinement failed: {e}")),
    };
    let seccomp = match seccomp::install() {
        Ok(on) => on,
        Err(e) => return fail(&format!("seccomp: {e}")),
    };
    report.seccomp = seccomp;
    let summary = format!(
        "V8 (Deno) host: {report}; process seccomp allow list {}",
        if seccomp { "on" } else { "off" }
    );
    let script = host_script(&summary, seccomp, max_executions);
    let args = deno_args(memory_limit, stack_limit, &script);
    let to_c = |s: &[u8]| CString::new(s).map_err(|_| "a NUL byte in an argument");
    let program = match to_c(deno.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut argv = vec![program.clone()];
    for a in &args {
        match to_c(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(e) => return fail(e),
        }
    }
    // The only environment: no update check, no colours, and a cache directory that cannot exist
    // (Landlock denies every path but the binary's and its libraries').
    let env: Vec<CString> = ["DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1", "DENO_DIR=/nonexistent/mcp-guard-deno"]
        .iter()
        .filter_map(|s| CString::new(*s).ok())
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: execve with NUL-terminated arrays of pointers to live C strings.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    fail(&format!("cannot execute {}: {}", deno.display(), std::io::Error::last_os_error()))
}

mod seccomp;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The host script travels as one `data:` URL argument: Linux refuses an argument over 128 KiB
    /// (MAX_ARG_STRLEN), so the embedded scripts must stay under it.
    #[test]
    fn the_host_script_fits_in_one_argument() {
        let script = host_script(&"x".repeat(300), true, 256);
        let args = deno_args(64 << 20, 1 << 20, &script);
        let longest = args.iter().map(|a| a.len()).max().unwrap();
        assert!(longest < 128 * 1024, "the data: URL is {longest} bytes");
        assert!(
            !script.contains("__WORKER__") && !script.contains("__PRELUDE__") && !script.contains("__WEB__")
        );
        assert!(!script.contains("__CONFINEMENT__") && !script.contains("__MAX_EXECUTIONS__"));
    }

    #[test]
    fn the_module_keeps_the_prepared_scripts_positions() {
        let prepared = Prepared {
            script: "\"use strict\";\n(async function () {\nreturn 1\n})".into(),
            positions: Default::default(),
        };
        let module = module_source(&prepared).unwrap();
        assert_eq!(module.lines().count(), prepared.script.lines().count() + 1);
        assert_eq!(module.lines().nth(2), Some("return 1"));
        assert!(module_source(&Prepared { script: "(1)".into(), positions: Default::default() }).is_none());
    }
}
