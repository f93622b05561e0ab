// The host script of a V8 isolate host: the main isolate of a confined Deno process that the executor
// started (through `mcp-guard v8-host`, which confined the process before it executed Deno). It speaks
// the isolate-host channel protocol (`protocol.rs`: length-prefixed JSON frames) on standard input and
// output, runs exactly one execution in a fresh Worker (its own V8 isolate, started before the job
// arrives) and exits; exiting is also how it ends an execution at a limit, since Deno's
// `Worker.terminate()` does not interrupt a busy isolate.
//
// The Worker runs guest code, so everything that comes from it is untrusted here: tool calls are
// checked against the catalog and counted against `toolCalls` / `discoveryCalls`, console lines and the
// result against `output`; the CPU and wall-time limits are this script's timers; after an approval
// pause nothing more of the guest's is forwarded. The executor checks again what it can (the number
// of calls, the wall time, by killing this process).
"use strict";
import process from "node:process";

const WORKER_SOURCE = __WORKER__;
const CONFINEMENT = __CONFINEMENT__;
// Executions of one caller this host serves, one at a time, each in its own isolate.
const MAX_EXECUTIONS = __MAX_EXECUTIONS__;
const stdin = Deno.stdin;
const stdout = Deno.stdout;
const MAX_FRAME = 80 * 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const utf8Length = (s) => {
  // Bytes of `s` in UTF-8 (lone surrogates count as U+FFFD, as the executor will see them).
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
};

// --- The channel -------------------------------------------------------------------------------------
// Frames are written synchronously: a guest that floods this isolate with messages cannot keep a frame
// (its outcome above all) waiting behind them in the event loop.
const send = (msg) => {
  const body = encoder.encode(JSON.stringify(msg));
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  let off = 0;
  while (off < frame.length) off += stdout.writeSync(frame.subarray(off));
};
let buffer = new Uint8Array(0);
const readExact = async (n) => {
  while (buffer.length < n) {
    const chunk = new Uint8Array(Math.max(65536, n - buffer.length));
    const got = await stdin.read(chunk);
    if (got === null) return null;
    const joined = new Uint8Array(buffer.length + got);
    joined.set(buffer);
    joined.set(chunk.subarray(0, got), buffer.length);
    buffer = joined;
  }
  const out = buffer.subarray(0, n);
  buffer = buffer.subarray(n);
  return out;
};
const readFrame = async () => {
  const head = await readExact(4);
  if (head === null) return null;
  const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
  if (len > MAX_FRAME) throw new Error(`a frame of ${len} bytes is over the limit`);
  const body = await readExact(len);
  if (body === null) return null;
  return JSON.parse(decoder.decode(body));
};
const exit = (code) => Deno.exit(code);

// --- The isolates: a fresh one per execution, each started ahead of its job -------------------------
// One Worker is one V8 isolate. The next one boots while the host waits for its next job; one that ran
// an execution is never given another: it is stopped (its timers cleared, then terminated) once its
// execution ended, and when it does not confirm the stop (code still running in it: Deno's terminate
// cannot interrupt a busy isolate) the host takes no more jobs and exits.
const WORKER_URL = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
let execution = null;
let isolate = null;

class Isolate {
  constructor() {
    this.worker = new Worker(WORKER_URL, { type: "module", name: "sandbox" });
    this.execution = null;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.stopped = null;
    this.worker.addEventListener("message", (event) => {
      const m = event.data;
      if (this.execution === null) {
        if (m && m.t === "ready") this.resolveReady(null);
        else if (m && m.t === "fault") this.resolveReady(String(m.message));
        else if (m && m.t === "stopped" && this.stopped !== null) this.stopped();
        return;
      }
      this.execution.fromGuest(m);
    });
    this.worker.addEventListener("error", (event) => {
      event.preventDefault();
      const message = `the isolate failed: ${event.message}`;
      if (this.execution === null) this.resolveReady(message);
      else this.execution.end(thrown("InternalError", message));
    });
    this.worker.addEventListener("messageerror", (event) => {
      event.preventDefault();
      if (this.execution !== null) {
        this.execution.end(thrown("InternalError", "the isolate sent a message that cannot be read"));
      }
    });
  }

  post(message) {
    this.worker.postMessage(message);
  }

  // After its execution: clear what the guest left scheduled and confirm it is idle, then terminate.
  // Resolves whether it stopped within `ms`.
  stop(ms) {
    this.execution = null;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.stopped = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.post({ t: "stop" });
    }).then((idle) => {
      if (idle) this.worker.terminate();
      return idle;
    });
  }
}

const thrown = (name, message, stack = "") => ({ outcome: "threw", error: { name, message, stack } });
const limit = (kind, message) => ({ outcome: "limit_exceeded", limit: kind, message });
const LEVELS = new Set(["debug", "log", "info", "warn", "error"]);
const MAX_DISCOVERY_QUERY = 256;
const MAX_DISCOVERY_NAMES = 64;
const MAX_DISCOVERY_NAME = 256;
const checkDiscovery = (tool, args) => {
  if (tool === "search") {
    for (const key of ["query", "detail"]) {
      const v = args[key];
      const len = typeof v === "string" ? utf8Length(v) : 0;
      if (len > MAX_DISCOVERY_QUERY) {
        return `mcp.$search: the ${key} is ${len} bytes; at most ${MAX_DISCOVERY_QUERY} bytes are allowed`;
      }
    }
  } else if (Array.isArray(args.names)) {
    if (args.names.length > MAX_DISCOVERY_NAMES) {
      return `mcp.$describe: ${args.names.length} names were given; at most ${MAX_DISCOVERY_NAMES} are allowed`;
    }
    for (const n of args.names) {
      const len = typeof n === "string" ? utf8Length(n) : 0;
      if (len > MAX_DISCOVERY_NAME) {
        return `mcp.$describe: a name is ${len} bytes; at most ${MAX_DISCOVERY_NAME} bytes are allowed`;
      }
    }
  }
  return null;
};

// Whether every string in a parsed JSON value (keys too) is well-formed UTF-16: lone surrogates cannot
// cross into the executor (its JSON is UTF-8), so they are refused here as QuickJS's host refuses them.
const wellFormed = (value) => {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === "string") {
      if (!v.isWellFormed()) return false;
    } else if (v !== null && typeof v === "object") {
      for (const key of Object.keys(v)) {
        if (!key.isWellFormed()) return false;
        stack.push(v[key]);
      }
    }
  }
  return true;
};
const LONE_SURROGATES = "strings must not contain lone surrogates";

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

class Execution {
  constructor(id, job, isolate) {
    this.id = id;
    this.job = job;
    this.isolate = isolate;
    this.console = [];
    this.outputBytes = 0;
    this.toolCalls = 0;
    this.discoveryCalls = 0;
    // Calls sent to the executor: host call id -> [guest call number, server, tool, started].
    this.calls = new Map();
    this.nextCall = 0;
    this.paused = false;
    this.ended = false;
    this.started = performance.now();
    this.peakHeap = 0;
    this.messages = 0;
    this.cpuStart = cpuMs();
    this.catalog = new Map(job.catalog.map((s) => [s.name, new Set(s.tools.map((t) => t.name))]));
    this.wall = setTimeout(() => this.end(limit("wall_time", job.messages.wall_time)), job.wallMs);
    this.cpu = setInterval(() => {
      if (cpuMs() - this.cpuStart > job.cpuMs) this.end(limit("cpu_time", job.messages.cpu_time));
    }, 5);
  }

  event(event) {
    send({ Event: { id: this.id, event } });
  }

  // The limits on time, checked on every message too: a guest that floods this isolate with messages
  // must not keep its timers from running.
  overTime() {
    if (performance.now() - this.started > this.job.wallMs) {
      this.end(limit("wall_time", this.job.messages.wall_time));
      return true;
    }
    if (++this.messages % 64 === 0 && cpuMs() - this.cpuStart > this.job.cpuMs) {
      this.end(limit("cpu_time", this.job.messages.cpu_time));
      return true;
    }
    return false;
  }

  fromGuest(m) {
    if (this.ended || this.paused || m === null || typeof m !== "object" || this.overTime()) return;
    if (typeof m.heap === "number" && m.heap > this.peakHeap) this.peakHeap = m.heap;
    switch (m.t) {
      case "log":
        return this.log(m.level, m.text);
      case "call":
        return this.call(m.n, m.server, m.tool, m.json);
      case "done":
        return this.done(m.text);
      case "threw":
        return this.threw(m.error);
      case "fault":
        return this.end(thrown("InternalError", `the sandbox could not start: ${String(m.message)}`));
      default:
        return;
    }
  }

  log(level, text) {
    if (typeof text !== "string") return;
    this.outputBytes += utf8Length(text) + 1;
    if (this.outputBytes > this.job.outputBytes) return this.end(limit("output", this.job.messages.output));
    const line = { level: LEVELS.has(level) ? level : "log", message: text.toWellFormed() };
    this.console.push(line);
    this.event({ Console: line });
  }

  answer(n, result) {
    this.isolate.post({ t: "result", n, ...result });
  }

  call(n, server, tool, json) {
    if (typeof n !== "number" || typeof server !== "string" || typeof tool !== "string" || typeof json !== "string") {
      return this.end(thrown("InternalError", "the isolate sent a malformed tool call"));
    }
    let args;
    try {
      args = JSON.parse(json);
    } catch (e) {
      return this.answer(n, { ok: false, code: "invalid_arguments", message: `the arguments are not valid JSON (${e.message}); ${LONE_SURROGATES}` });
    }
    if (!wellFormed(args)) {
      return this.answer(n, { ok: false, code: "invalid_arguments", message: `the arguments are not valid JSON (a lone surrogate); ${LONE_SURROGATES}` });
    }
    const discovery = server === "$" && (tool === "search" || tool === "describe");
    if (discovery) {
      const problem = args !== null && typeof args === "object" ? checkDiscovery(tool, args) : null;
      if (problem !== null) return this.answer(n, { ok: false, code: "invalid_arguments", message: problem });
      if (this.discoveryCalls >= this.job.discoveryCalls) {
        return this.end(limit("discovery_calls", this.job.messages.discovery_calls));
      }
      this.discoveryCalls++;
    } else {
      const tools = this.catalog.get(server);
      if (tools === undefined || !tools.has(tool)) {
        return this.answer(n, { ok: false, code: "denied", message: `unknown tool ${server}.${tool}` });
      }
      if (this.toolCalls >= this.job.toolCalls) return this.end(limit("tool_calls", this.job.messages.tool_calls));
      this.toolCalls++;
    }
    const call = this.nextCall++;
    this.calls.set(call, [n, server, tool, performance.now()]);
    this.event({ ToolCallStarted: { server, tool } });
    send({ ToolCall: { id: this.id, call, server, tool, arguments: args } });
  }

  toolResult(call, result) {
    const entry = this.calls.get(call);
    if (entry === undefined || this.ended) return;
    this.calls.delete(call);
    const [n, server, tool, started] = entry;
    const record = { server, tool, durationMs: performance.now() - started, status: "Ok" in result ? "ok" : "error" };
    if (!("Ok" in result)) {
      record.errorCode = result.Err.code;
      record.error = result.Err.message;
    }
    this.event({ ToolCallFinished: record });
    if ("Ok" in result) {
      if (!this.paused) this.answer(n, { ok: true, text: JSON.stringify(result.Ok ?? null) });
    } else if (result.Err.code === "replay_diverged") {
      return this.end(thrown("ReplayDiverged", result.Err.message));
    } else if (result.Err.code === "approval_required") {
      // Never settled in the isolate: its code cannot catch it, and nothing more of it is forwarded.
      this.paused = true;
    } else if (!this.paused) {
      this.answer(n, { ok: false, code: result.Err.code, message: result.Err.message });
    }
    if (this.paused && this.calls.size === 0) {
      // The executor fills in the approval the binding proxy recorded.
      this.end({ outcome: "approval_required", approval: { id: "", policy: "", requester: "", createdAt: "", expiresAt: "", calls: [] } });
    }
  }

  done(text) {
    if (typeof text !== "string") return this.end(thrown("InternalError", "the isolate sent a malformed result"));
    if (this.outputBytes + utf8Length(text) > this.job.outputBytes) {
      return this.end(limit("output", this.job.messages.output));
    }
    let result;
    try {
      result = JSON.parse(text);
    } catch (e) {
      return this.end(thrown("TypeError", `the result is not valid JSON (${e.message}); ${LONE_SURROGATES}`));
    }
    if (!wellFormed(result)) {
      return this.end(thrown("TypeError", `the result is not valid JSON (a lone surrogate); ${LONE_SURROGATES}`));
    }
    this.end({ outcome: "completed", result });
  }

  threw(error) {
    if (!Array.isArray(error)) return this.end(thrown("InternalError", "the isolate sent a malformed error"));
    // The executor cuts the error to what the output limit leaves (with a marker); this cut only keeps
    // an error built to be huge from crossing the channel whole.
    const room = Math.max(0, this.job.outputBytes - this.outputBytes) + 16;
    const [name, message, stack] = error.slice(0, 3).map((v) => String(v ?? "").slice(0, room).toWellFormed());
    this.end(thrown(name, message, stack));
  }

  end(status) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.wall);
    clearInterval(this.cpu);
    const outcome = {
      ...status,
      console: this.console,
      toolCalls: [],
      metrics: {
        cpuMs: Math.max(0, cpuMs() - this.cpuStart),
        wallMs: performance.now() - this.started,
        peakHeapBytes: Math.floor(this.peakHeap),
      },
    };
    // After a limit, a pause or a failure the host goes (the executor retires it too); after an
    // ordinary end it serves the caller's next execution in a new isolate, if the old one stops.
    const reusable = status.outcome === "completed" || (status.outcome === "threw" && status.error.name !== "InternalError" && status.error.name !== "ReplayDiverged");
    try {
      send({ Done: { id: this.id, outcome } });
    } catch (_) {
      exit(0);
    }
    finished(reusable);
  }
}

let served = 0;
// The execution ended: the next isolate boots now, or the host exits.
const finished = (reusable) => {
  const old = isolate;
  execution = null;
  served++;
  if (!reusable || served >= MAX_EXECUTIONS) return exit(0);
  old.stop(100).then((idle) => {
    if (!idle) exit(0);
  });
  isolate = new Isolate();
};

const main = async () => {
  isolate = new Isolate();
  const first = await isolate.ready;
  if (first !== null) {
    // Nothing runs in a host whose sandbox cannot be set up: the executor sees it fail to start.
    console.error(`mcp-guard v8-host: the V8 sandbox could not start: ${first}`);
    return exit(70);
  }
  send({ Ready: { confinement: CONFINEMENT.summary, seccomp: CONFINEMENT.seccomp } });
  for (;;) {
    let frame;
    try {
      frame = await readFrame();
    } catch (_) {
      return exit(3);
    }
    if (frame === null) return exit(0);
    if (frame.Script !== undefined) {
      if (execution !== null) return exit(3); // one execution at a time
      const { id, job } = frame.Script;
      const current = isolate;
      execution = new Execution(id, job, current);
      const fault = await current.ready;
      if (execution === null || execution.id !== id) continue; // ended meanwhile (a limit)
      if (fault !== null) {
        execution.end(thrown("InternalError", `the V8 sandbox could not start: ${fault}`));
        continue;
      }
      current.execution = execution;
      current.post({ t: "job", job: { module: job.module, catalog: job.catalog, seed: job.seed, clockMs: job.clockMs } });
    } else if (frame.ToolResult !== undefined) {
      const { id, call, result } = frame.ToolResult;
      if (execution !== null && id === execution.id) execution.toolResult(call, result);
    } else {
      return exit(3);
    }
  }
};
main().catch(() => exit(3));
