// `make bench-peers`: the same snippets through MCP Guard and through the sandboxes people would use
// instead, measured the same way by this one driver, printed as one table (README.md, "Peers").
//
// Every row makes a fresh sandbox per execution. For each row and snippet: p50, p99 and executions per
// second at concurrency 1 and 16, each cell for PEERS_SECONDS (default 5) after a short warm-up; and
// once per row, the memory one execution in flight costs (see measureMemory). Latency is what the
// caller sees: from handing the code over to holding the result, which is checked.
//
// Environment: PEERS_SECONDS (seconds per cell, default 5), PEERS_MEMORY_N (executions in flight for
// the memory figure, default 16), PEERS_ONLY (comma-separated row ids, e.g. "isolated-vm,node-vm"),
// MCP_GUARD_BIN and MCP_TEST_SERVER_BIN (the binaries; the Makefile builds them with the `local`
// profile), MCP_GUARD_PROFILE (printed), PEERS_DIR (where scripts/setup-peers.sh installed the peers).
//
// Run with the Node.js 22 that scripts/setup-peers.sh installs, with --no-node-snapshot (isolated-vm
// needs it) and --expose-gc (the in-process peers' memory baseline is taken after a full GC).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const CACHE = process.env.MCP_GUARD_CACHE || path.join(os.homedir(), ".cache/mcp-guard");
const PEERS_DIR = process.env.PEERS_DIR || path.join(CACHE, "peers");
const require = createRequire(path.join(PEERS_DIR, "package.json"));
const SECONDS = Number(process.env.PEERS_SECONDS || 5);
const MEMORY_N = Number(process.env.PEERS_MEMORY_N || 16);
const ONLY = process.env.PEERS_ONLY ? process.env.PEERS_ONLY.split(",").map((s) => s.trim()) : null;
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const IS_ROW = process.argv.includes("--row");
const TMP = process.env.PEERS_TMP || fs.mkdtempSync(path.join(os.tmpdir(), "mcp-guard-bench-peers-"));
// The driver runs copies of the binaries under test, taken when it starts: the cargo target directory may
// be shared, and a build that finishes during the run must not change what is measured. Row processes
// get the copies' paths from the driver.
function snapshot(bin) {
  if (IS_ROW || !fs.existsSync(bin)) return bin;
  const copy = path.join(TMP, "bin", path.basename(bin));
  fs.mkdirSync(path.dirname(copy), { recursive: true });
  fs.copyFileSync(bin, copy);
  fs.chmodSync(copy, 0o755);
  return copy;
}
const MCP_GUARD_SOURCE = process.env.MCP_GUARD_BIN || path.join(TARGET, "local/mcp-guard");
const MCP_GUARD_BIN = snapshot(MCP_GUARD_SOURCE);
const TEST_SERVER_BIN = snapshot(process.env.MCP_TEST_SERVER_BIN || path.join(TARGET, "local/mcp-test-server"));
const DENO_BIN = path.join(PEERS_DIR, "node_modules/.bin/deno");
const CONCURRENCY = [1, 16];
const EXECUTION_TIMEOUT_MS = 30_000;
const HOLD_MS = 5_000; // how long the memory snippet's tool call keeps each execution in flight

// ---------------------------------------------------------------------------------------------------
// The snippets: the same source in every row, an async function body as MCP Guard takes it.

const COMPUTE = `const a = [];
let x = 1;
for (let i = 0; i < 100000; i++) { x = (x * 48271) % 2147483647; a.push(x); }
a.sort((p, q) => p - q);
return a[50000];`;
const SNIPPETS = [
  { name: "trivial", code: "return 1 + 1", expect: "2" },
  { name: "one tool call", code: 'return await mcp.upstream.echo({ text: "hi" });', expect: '"hi"' },
  { name: "sort 100k", code: COMPUTE, expect: JSON.stringify(new Function(COMPUTE)()) },
];
const MEMORY_SNIPPET = `await mcp.upstream.slow({ ms: ${HOLD_MS} }); return 1;`;
const MEMORY_WARMUP = "await mcp.upstream.slow({ ms: 1 }); return 1;";

// What each peer runs: the snippet inside the same `mcp` bindings MCP Guard gives, built on one host
// primitive `__host(tool, argsJson) -> Promise<resultJson>` that each peer provides in its own way. The
// program evaluates to a promise of the result as JSON.
const program = (code) => `(async () => {
  const call = async (tool, args) => JSON.parse(await __host(tool, JSON.stringify(args ?? {})));
  const mcp = { upstream: { echo: (args) => call("echo", args), slow: (args) => call("slow", args) } };
  return JSON.stringify(await (async (mcp) => {\n${code}\n})(mcp));
})()`;

// ---------------------------------------------------------------------------------------------------
// The shared upstream: the repository's test MCP server (streamable HTTP on loopback), and the peers'
// host function, a minimal MCP client over one session and keep-alive connections (node:http), so
// that every row's tool call is the same HTTP round trip to the same server.

class McpClient {
  constructor(url) {
    this.url = new URL(url);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.nextId = 1;
  }
  async connect() {
    await this.rpc("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "bench-peers", version: "1" },
    });
    await this.post({ jsonrpc: "2.0", method: "notifications/initialized" });
  }
  async rpc(method, params) {
    const id = this.nextId++;
    const text = await this.post({ jsonrpc: "2.0", id, method, params });
    // JSON, or server-sent events whose `data:` lines hold JSON-RPC messages.
    const messages = text.trimStart().startsWith("{")
      ? [JSON.parse(text)]
      : text
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .filter(Boolean)
          .map((l) => JSON.parse(l));
    const reply = messages.find((m) => m.id === id);
    if (!reply) throw new Error(`no reply to ${method}`);
    if (reply.error) throw new Error(reply.error.message);
    return reply.result;
  }
  post(body) {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    if (this.session) Object.assign(headers, { "mcp-session-id": this.session, "mcp-protocol-version": "2025-06-18" });
    return new Promise((resolve, reject) => {
      const req = http.request(this.url, { method: "POST", agent: this.agent, headers }, (res) => {
        this.session ??= res.headers["mcp-session-id"];
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => (res.statusCode < 300 ? resolve(text) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  }
  // A tool's result as MCP Guard gives it to code: structured content, else one text (JSON if it parses).
  async callTool(name, args) {
    const result = await this.rpc("tools/call", { name, arguments: args });
    if (result.isError) throw new Error(result.content?.[0]?.text ?? "tool error");
    if (result.structuredContent !== undefined) return result.structuredContent;
    const text = result.content?.[0]?.text ?? "";
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
}

let upstream; // McpClient
const toolStarts = { count: 0 }; // tool calls the peers' host function has started (for the memory figure)
async function hostCall(tool, argsJson) {
  toolStarts.count++;
  return JSON.stringify(await upstream.callTool(tool, JSON.parse(argsJson)));
}

// ---------------------------------------------------------------------------------------------------
// Processes, ports and memory.

// Long-lived processes this driver started, killed if it exits early.
const spawned = new Set();
process.on("exit", () => spawned.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

function startProcess(bin, args, { logName, env } = {}) {
  const log = fs.openSync(path.join(TMP, `${logName}.log`), "a");
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", log], env: env ?? process.env });
  fs.closeSync(log);
  spawned.add(child);
  return child;
}

async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// PSS (proportional set size: shared pages divided among the processes sharing them), in bytes.
function pss(pid) {
  try {
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)[1]) * 1024;
  } catch {
    return 0; // the process has exited
  }
}

// A process and all its descendants, from /proc.
function processTree(root) {
  const children = new Map();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {}
  }
  const tree = [];
  const walk = (pid) => {
    tree.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return tree;
}
const treePss = (root) => processTree(root).reduce((sum, pid) => sum + pss(pid), 0);

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${EXECUTION_TIMEOUT_MS} ms`)), EXECUTION_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------
// The peers. Each has an id, a label, what it isolates, and start(), which returns
// { run(code) -> Promise<resultJson>, memory() -> PSS in bytes of the row's processes, stop() } (MCP
// Guard's also runStreaming() and clientFloor()), or throws with the reason the row cannot run.

// The isolate-host defaults of the binary under test, as its `serve --help` states them.
function serveDefaults() {
  let help = "";
  try {
    help = execFileSync(MCP_GUARD_BIN, ["serve", "--help"], { encoding: "utf8" });
  } catch {}
  const of = (flag) => new RegExp(`--${flag} <[^>]+>[\\s\\S]*?\\[default: ([^\\]]+)\\]`).exec(help)?.[1] ?? "?";
  return ["warm-hosts", "host-reuse", "host-concurrency"]
    .filter((flag) => help.includes(`--${flag} `))
    .map((flag) => `--${flag} ${of(flag)}`)
    .join(", ");
}

function mcpGuardPeer(id, label, isolates, extraArgs) {
  return {
    id,
    label,
    isolates,
    async start() {
      if (!fs.existsSync(MCP_GUARD_BIN)) throw new Error(`${MCP_GUARD_BIN} not built`);
      const grpc = require("@grpc/grpc-js");
      const loader = require("@grpc/proto-loader");
      const definition = loader.loadSync(path.join(REPO, "proto/mcpguard/v1/executor.proto"), { oneofs: true });
      const { Executor } = grpc.loadPackageDefinition(definition).mcpguard.v1;
      const [grpcPort, mcpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
      const dir = fs.mkdtempSync(path.join(TMP, `${id}-`));
      const token = "bench-peers-token-0123456789abcdef";
      fs.writeFileSync(path.join(dir, "tokens"), `${token} bench\n`);
      fs.writeFileSync(
        path.join(dir, "config.yaml"),
        [
          "policy: bench-peers",
          "servers:",
          "  - name: upstream",
          `    url: ${upstream.url.href}`,
          "    allowPrivateEndpoint: true   # the upstream is on loopback",
          "binding:",
          `  audit: { path: ${path.join(dir, "audit.jsonl")} }`,
          "",
        ].join("\n"),
      );
      const child = startProcess(
        MCP_GUARD_BIN,
        [
          "serve",
          "--config", path.join(dir, "config.yaml"),
          "--auth-tokens", path.join(dir, "tokens"),
          "--grpc-listen", `127.0.0.1:${grpcPort}`,
          "--mcp-listen", `127.0.0.1:${mcpPort}`,
          "--metrics-listen", `127.0.0.1:${metricsPort}`,
          ...extraArgs,
        ],
        { logName: id },
      );
      // Ready when the binding proxy is connected to the upstream.
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (child.exitCode !== null) {
          const log = fs.readFileSync(path.join(TMP, `${id}.log`), "utf8").trim().split("\n").pop();
          throw new Error(`mcp-guard serve exited (${child.exitCode}): ${log}`);
        }
        const ok = await new Promise((resolve) => {
          http.get(`http://127.0.0.1:${metricsPort}/readyz`, (res) => (res.resume(), resolve(res.statusCode === 200))).on("error", () => resolve(false));
        });
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`mcp-guard serve not ready in 60 s; see ${TMP}/${id}.log`);
        await sleep(100);
      }
      const client = new Executor(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      const outcome = (o) => {
        if (o?.status === "completedJson") return o.completedJson;
        throw new Error(`not completed: ${JSON.stringify(o)}`);
      };
      return {
        run: (code) =>
          new Promise((resolve, reject) => {
            client.Execute({ code }, metadata, (err, response) => {
              try {
                if (err) throw err;
                resolve(outcome(response.outcome));
              } catch (e) {
                reject(e);
              }
            });
          }),
        // ExecuteStream tells when the tool call has started, which the memory figure waits for.
        runStreaming: (code, onToolStart) =>
          new Promise((resolve, reject) => {
            const call = client.ExecuteStream({ code }, metadata);
            call.on("data", (event) => {
              if (event.event === "toolCallStarted") onToolStart();
              if (event.event === "outcome") {
                try {
                  resolve(outcome(event.outcome));
                } catch (e) {
                  reject(e);
                }
              }
            });
            call.on("error", reject);
          }),
        memory: () => treePss(child.pid),
        // The client's own cost: a gRPC health check (runs nothing, a 2-byte answer) on the same channel.
        clientFloor: () =>
          new Promise((resolve, reject) =>
            client.makeUnaryRequest("/grpc.health.v1.Health/Check", (b) => b, (b) => b, Buffer.alloc(0), metadata, (err) =>
              err ? reject(err) : resolve("{}"),
            ),
          ),
        stop: async () => {
          client.close();
          await stopProcess(child);
        },
      };
    },
  };
}

// Deno: run by `deno run` with no --allow-* flag and --no-prompt, so every permission is denied.
const DENO_ARGS = ["run", "--no-prompt", "--no-config", "--no-lock", "--quiet"];
const denoEnv = () => ({ DENO_DIR: path.join(TMP, "deno-dir"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" });

const denoSubprocessPeer = {
  id: "deno-subprocess",
  label: "Deno, a subprocess per execution",
  isolates: "a process (V8 + Deno permissions: none granted)",
  async start() {
    if (!fs.existsSync(DENO_BIN)) throw new Error("deno not installed (scripts/setup-peers.sh)");
    // One script per snippet; tool calls go to the driver (the host) as JSON lines on stdout, answers
    // come back on stdin: the process itself has no network permission.
    const scripts = new Map();
    const scriptFor = (code) => {
      if (!scripts.has(code)) {
        const file = path.join(TMP, `deno-snippet-${scripts.size}.js`);
        fs.writeFileSync(
          file,
          `const encoder = new TextEncoder();
const write = (m) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(m) + "\\n"));
const waiting = new Map();
let nextId = 0;
(async () => {
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf("\\n")) >= 0) {
      const m = JSON.parse(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
      const w = waiting.get(m.cid);
      waiting.delete(m.cid);
      "error" in m ? w.reject(new Error(m.error)) : w.resolve(m.value);
    }
  }
})();
const __host = (tool, args) => new Promise((resolve, reject) => {
  const cid = nextId++;
  waiting.set(cid, { resolve, reject });
  write({ call: { cid, tool, args } });
});
try { write({ done: await ${program(code)} }); } catch (e) { write({ error: String(e?.stack ?? e) }); }
Deno.exit(0);
`,
        );
        scripts.set(code, file);
      }
      return scripts.get(code);
    };
    const children = new Set();
    const run = (code) =>
      new Promise((resolve, reject) => {
        const child = spawn(DENO_BIN, [...DENO_ARGS, scriptFor(code)], { env: denoEnv(), stdio: ["pipe", "pipe", "pipe"] });
        children.add(child);
        let result;
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        readline.createInterface({ input: child.stdout }).on("line", (line) => {
          const m = JSON.parse(line);
          if (m.call) {
            hostCall(m.call.tool, m.call.args).then(
              (value) => child.stdin.write(JSON.stringify({ cid: m.call.cid, value }) + "\n"),
              (e) => child.stdin.write(JSON.stringify({ cid: m.call.cid, error: e.message }) + "\n"),
            );
          } else result = m;
        });
        child.on("error", reject);
        child.on("close", (status) => {
          children.delete(child);
          if (result && "done" in result) resolve(result.done);
          else reject(new Error(result?.error ?? `deno exited ${status}: ${stderr}`));
        });
      });
    return {
      run,
      memory: () => [...children].reduce((sum, c) => sum + treePss(c.pid), 0),
      stop: async () => {},
    };
  },
};

const denoWorkerPeer = {
  id: "deno-worker",
  label: "Deno, a Worker per execution",
  isolates: "a V8 isolate on its own thread, in one deno process (permissions: none granted)",
  async start() {
    if (!fs.existsSync(DENO_BIN)) throw new Error("deno not installed (scripts/setup-peers.sh)");
    const child = spawn(DENO_BIN, [...DENO_ARGS, path.join(HERE, "deno-workers.js")], {
      env: denoEnv(),
      stdio: ["pipe", "pipe", fs.openSync(path.join(TMP, "deno-worker.log"), "a")],
    });
    spawned.add(child);
    const pending = new Map();
    let nextId = 0;
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const m = JSON.parse(line);
      const p = pending.get(m.id);
      if (m.call) {
        const reply = (r) => child.stdin.write(JSON.stringify({ id: m.id, reply: { cid: m.call.cid, ...r } }) + "\n");
        hostCall(m.call.tool, m.call.args).then((value) => reply({ value }), (e) => reply({ error: e.message }));
        return;
      }
      pending.delete(m.id);
      "done" in m ? p.resolve(m.done) : p.reject(new Error(m.error));
    });
    // The Worker's module: the program, with __host relayed through this process to the driver.
    const source = (code) => `const waiting = new Map();
let nextId = 0;
self.onmessage = (e) => {
  const m = e.data;
  const w = waiting.get(m.cid);
  waiting.delete(m.cid);
  "error" in m ? w.reject(new Error(m.error)) : w.resolve(m.value);
};
const __host = (tool, args) => new Promise((resolve, reject) => {
  const cid = nextId++;
  waiting.set(cid, { resolve, reject });
  self.postMessage({ call: { cid, tool, args } });
});
try { self.postMessage({ done: await ${program(code)} }); } catch (e) { self.postMessage({ error: String(e?.stack ?? e) }); }
`;
    const run = (code) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        child.stdin.write(JSON.stringify({ id, source: source(code) }) + "\n");
      });
    await withTimeout(run("return 1"), "deno worker host");
    return { run, memory: () => treePss(child.pid), stop: () => (child.stdin.end(), stopProcess(child)) };
  },
};

const isolatedVmPeer = {
  id: "isolated-vm",
  label: "isolated-vm, an isolate per execution",
  isolates: "a V8 isolate (own heap, 64 MB limit) in the driver's process",
  async start() {
    const ivm = require("isolated-vm");
    const host = new ivm.Reference(hostCall);
    return {
      async run(code) {
        const isolate = new ivm.Isolate({ memoryLimit: 64 });
        try {
          const context = await isolate.createContext();
          // __host calls the host function across isolates; its promise is proxied back.
          await context.evalClosure(
            "globalThis.__host = (tool, args) => $0.apply(undefined, [tool, args], { arguments: { copy: true }, result: { promise: true, copy: true } });",
            [host],
          );
          return await context.eval(program(code), { promise: true, copy: true, timeout: 5000 });
        } finally {
          isolate.dispose();
        }
      },
      memory: () => (global.gc(), pss(process.pid)),
      stop: async () => {},
    };
  },
};

const quickjsPeer = {
  id: "quickjs-wasm",
  label: "quickjs-emscripten, a runtime per execution",
  isolates: "a QuickJS runtime (64 MiB, 1 MiB stack) inside one WebAssembly instance, in the driver's process",
  async start() {
    const { getQuickJS, shouldInterruptAfterDeadline } = require("quickjs-emscripten");
    const QuickJS = await getQuickJS();
    const failure = (ctx, handle) => {
      const e = ctx.dump(handle);
      handle.dispose();
      return new Error(typeof e === "object" ? `${e.name}: ${e.message}` : String(e));
    };
    return {
      async run(code) {
        const runtime = QuickJS.newRuntime();
        runtime.setMemoryLimit(64 << 20);
        runtime.setMaxStackSize(1 << 20);
        runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + 5000));
        const ctx = runtime.newContext();
        try {
          // __host returns a QuickJS promise settled when the host call settles; its jobs then run.
          const fn = ctx.newFunction("__host", (toolHandle, argsHandle) => {
            const deferred = ctx.newPromise();
            hostCall(ctx.getString(toolHandle), ctx.getString(argsHandle)).then(
              (value) => ctx.alive && ctx.newString(value).consume((h) => deferred.resolve(h)),
              (e) => ctx.alive && ctx.newError(e.message).consume((h) => deferred.reject(h)),
            );
            deferred.settled.then(() => runtime.alive && runtime.executePendingJobs());
            return deferred.handle;
          });
          ctx.setProp(ctx.global, "__host", fn);
          fn.dispose();
          const evaluated = ctx.evalCode(program(code));
          if (evaluated.error) throw failure(ctx, evaluated.error);
          const settled = ctx.resolvePromise(evaluated.value);
          evaluated.value.dispose();
          runtime.executePendingJobs();
          const result = await settled;
          if (result.error) throw failure(ctx, result.error);
          return result.value.consume((h) => ctx.getString(h));
        } finally {
          ctx.dispose();
          runtime.dispose();
        }
      },
      memory: () => (global.gc(), pss(process.pid)),
      stop: async () => {},
    };
  },
};

const nodeVmPeer = {
  id: "node-vm",
  label: "Node vm.runInNewContext (no security boundary)",
  isolates: "nothing: a new global object in the driver's own isolate (the floor)",
  async start() {
    return {
      run: (code) => vm.runInNewContext(program(code), { __host: hostCall }, { timeout: 5000 }),
      memory: () => (global.gc(), pss(process.pid)),
      stop: async () => {},
    };
  },
};

const SERVE_DEFAULTS = serveDefaults();
const PEERS = [
  mcpGuardPeer(
    "mcp-guard",
    "MCP Guard, isolate hosts (serve's defaults)",
    "a QuickJS runtime per execution, in a confined isolate-host process (seccomp allow list, Landlock, " +
      `rlimits) that serves one caller only; the binary's defaults: ${SERVE_DEFAULTS}`,
    [],
  ),
  mcpGuardPeer(
    "mcp-guard-reuse-1",
    "MCP Guard, isolate hosts, --host-reuse 1",
    "a QuickJS runtime in a fresh confined isolate-host process per execution",
    ["--host-reuse", "1", ...(SERVE_DEFAULTS.includes("--host-concurrency") ? ["--host-concurrency", "1"] : [])],
  ),
  mcpGuardPeer(
    "mcp-guard-thread",
    "MCP Guard, --isolation thread",
    "a QuickJS runtime per execution on a confined thread (Landlock, seccomp) of the executor process",
    ["--isolation", "thread"],
  ),
  denoSubprocessPeer,
  denoWorkerPeer,
  isolatedVmPeer,
  quickjsPeer,
  nodeVmPeer,
];

// ---------------------------------------------------------------------------------------------------
// Measurement.

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))] : NaN);

async function checkedRun(instance, snippet) {
  const result = await withTimeout(instance.run(snippet.code), snippet.name);
  if (result !== snippet.expect) throw new Error(`${snippet.name}: got ${result}, expected ${snippet.expect}`);
}

// `concurrency` loops, each running the snippet back to back, for SECONDS (after one warm-up execution
// per loop); latency of every execution, executions per second over the whole cell.
async function measureCell(instance, snippet, concurrency, seconds = SECONDS) {
  await Promise.all(Array.from({ length: concurrency }, () => checkedRun(instance, snippet)));
  const latencies = [];
  const errors = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        try {
          await checkedRun(instance, snippet);
          latencies.push(performance.now() - t);
        } catch (e) {
          errors.push(e.message);
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    perSec: latencies.length / elapsed,
    n: latencies.length,
    errors,
  };
}

// Memory per execution in flight: total PSS of the peer's processes with MEMORY_N executions parked in
// a 5 s tool call (measured once all of them have started it), minus the same processes just before,
// divided by MEMORY_N. For in-process peers the process is this row's (after a full GC both times).
// A row whose executions do not all get in flight, or do not all complete, gets the reason instead.
async function measureMemory(instance) {
  const before = instance.memory();
  let started = 0;
  const onToolStart = () => started++;
  const baseline = toolStarts.count;
  const inFlight = () => (instance.runStreaming ? started : toolStarts.count - baseline);
  const runs = Array.from({ length: MEMORY_N }, () =>
    withTimeout(instance.runStreaming ? instance.runStreaming(MEMORY_SNIPPET, onToolStart) : instance.run(MEMORY_SNIPPET), "memory"),
  );
  const deadline = Date.now() + HOLD_MS - 500;
  while (inFlight() < MEMORY_N && Date.now() < deadline) await sleep(10);
  const reached = inFlight();
  const during = instance.memory();
  const failed = (await Promise.allSettled(runs)).filter((r) => r.status === "rejected");
  if (reached < MEMORY_N) return { error: `only ${reached} of ${MEMORY_N} in flight at once` };
  if (failed.length) return { error: `${failed.length} of ${MEMORY_N} failed: ${failed[0].reason.message}` };
  return { perExecution: (during - before) / MEMORY_N, before, during };
}

// ---------------------------------------------------------------------------------------------------
// Output.

function machine() {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown CPU";
  const gib = (os.totalmem() / 2 ** 30).toFixed(1);
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${model}, ${os.availableParallelism()} cores, ${gib} GiB, Linux ${os.release()} (load average at start: ${load})`;
}

const fmtMs = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) : "-");
const fmtRate = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(1) : v.toFixed(0)) : "-");
const fmtMiB = (m) => {
  if (m.error) return m.error.slice(0, 100).replaceAll("|", "/");
  const mib = m.perExecution / 2 ** 20;
  return Math.abs(mib) < 0.1 ? mib.toFixed(3) : mib.toFixed(2);
};

function version(pkg) {
  try {
    return require(`${pkg}/package.json`).version;
  } catch {
    return "not installed";
  }
}

// One row, in a process of its own (so that no row inherits another's heap, threads or JIT state):
// start the peer, take the memory figure, check every snippet, then measure every cell. Prints the
// row as one JSON line on stdout; progress goes to stderr.
async function runRow(peer) {
  upstream = new McpClient(process.env.PEERS_UPSTREAM);
  await upstream.connect();
  process.stderr.write(`==> ${peer.label}\n`);
  let instance;
  try {
    instance = await peer.start();
    // Memory first, from the state start() and one warm-up execution left: a heap that earlier
    // executions grew (WebAssembly memory never shrinks) would hide what the executions in flight cost.
    await withTimeout(instance.run(MEMORY_WARMUP), "warm-up");
    const memory = await measureMemory(instance);
    process.stderr.write(`    memory: ${memory.error ?? `${fmtMiB(memory)} MiB per execution in flight`}\n`);
    for (const s of SNIPPETS) await checkedRun(instance, s);
    const cells = [];
    for (const snippet of SNIPPETS) {
      for (const c of CONCURRENCY) {
        const cell = await measureCell(instance, snippet, c);
        const errors = cell.errors.length ? `, ${cell.errors.length} errors, first: ${cell.errors[0]}` : "";
        process.stderr.write(
          `    ${snippet.name}, c=${c}: p50 ${fmtMs(cell.p50)} ms, p99 ${fmtMs(cell.p99)} ms, ${fmtRate(cell.perSec)}/s (${cell.n} runs${errors})\n`,
        );
        cells.push({ snippet: snippet.name, concurrency: c, ...cell, errors: cell.errors.length });
      }
    }
    let clientFloor;
    if (instance.clientFloor) {
      const floor = await measureCell({ run: instance.clientFloor }, { name: "health check", code: "", expect: "{}" }, 1, 1);
      clientFloor = floor.p50;
      process.stderr.write(`    gRPC client floor (health check round trip): p50 ${fmtMs(clientFloor)} ms\n`);
    }
    console.log(JSON.stringify({ memory, cells, clientFloor }));
  } catch (e) {
    process.stderr.write(`    cannot run: ${e.stack ?? e}\n`);
    console.log(JSON.stringify({ skipped: e.message.split("\n")[0] }));
  } finally {
    await instance?.stop();
  }
}

async function main() {
  console.log(`machine: ${machine()}`);
  const denoVersion = fs.existsSync(DENO_BIN)
    ? await new Promise((r) => spawn(DENO_BIN, ["--version"]).stdout.on("data", (d) => r(String(d).split("\n")[0])))
    : "deno not installed";
  console.log(
    `mcp-guard: ${MCP_GUARD_SOURCE} (cargo profile ${process.env.MCP_GUARD_PROFILE || "local"}); node ${process.version}; ` +
      `${denoVersion}; isolated-vm ${version("isolated-vm")}; quickjs-emscripten ${version("quickjs-emscripten")}`,
  );
  console.log(`${SECONDS} s per cell, concurrency ${CONCURRENCY.join(" and ")}; memory with ${MEMORY_N} executions in flight`);

  if (!fs.existsSync(TEST_SERVER_BIN)) throw new Error(`${TEST_SERVER_BIN} not built`);
  const server = startProcess(TEST_SERVER_BIN, ["http", "--listen", "127.0.0.1:0"], { logName: "upstream" });
  const url = await new Promise((resolve, reject) => {
    readline.createInterface({ input: server.stdout }).once("line", (line) => resolve(line.replace("listening on ", "")));
    server.once("exit", (code) => reject(new Error(`mcp-test-server exited (${code})`)));
  });
  console.log(`upstream: mcp-test-server at ${url} (tools echo, slow), shared by every row`);
  console.log();

  const rows = [];
  for (const peer of PEERS) {
    if (ONLY && !ONLY.includes(peer.id)) continue;
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--row", peer.id], {
      env: { ...process.env, PEERS_UPSTREAM: url, PEERS_TMP: TMP, MCP_GUARD_BIN, MCP_TEST_SERVER_BIN: TEST_SERVER_BIN },
      stdio: ["ignore", "pipe", "inherit"],
    });
    spawned.add(child);
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    const status = await new Promise((resolve) => child.on("close", resolve));
    const last = output.trim().split("\n").pop();
    let row;
    try {
      row = JSON.parse(last);
    } catch {
      row = { skipped: `the row's process exited ${status} without a result` };
    }
    rows.push({ peer, ...row });
  }
  await stopProcess(server);

  console.log(
    "| sandbox (fresh per execution) | snippet | p50 ms c=1 | p99 ms c=1 | exec/s c=1 | p50 ms c=16 | p99 ms c=16 | exec/s c=16 | MiB per execution in flight |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    if (row.skipped) {
      console.log(`| ${row.peer.label} | not run: ${row.skipped.replaceAll("|", "/")} | | | | | | | |`);
      continue;
    }
    SNIPPETS.forEach((snippet, i) => {
      const figures = CONCURRENCY.flatMap((c) => {
        const cell = row.cells.find((x) => x.snippet === snippet.name && x.concurrency === c);
        if (cell.n === 0) return ["-", "-", `${cell.errors} errors`];
        return [fmtMs(cell.p50), fmtMs(cell.p99), fmtRate(cell.perSec) + (cell.errors ? ` (${cell.errors} errors)` : "")];
      });
      console.log(`| ${i === 0 ? row.peer.label : ""} | ${snippet.name} | ${figures.join(" | ")} | ${i === 0 ? fmtMiB(row.memory) : ""} |`);
    });
  }
  console.log();
  console.log("What each row isolates:");
  for (const row of rows) console.log(`- ${row.peer.label}: ${row.peer.isolates}`);
  console.log();
  const floors = rows.filter((r) => r.clientFloor !== undefined);
  if (floors.length) {
    console.log(
      `The MCP Guard rows include the driver's gRPC client (@grpc/grpc-js, on the same cores): a health-check round ` +
        `trip, which runs nothing, takes p50 ${floors.map((r) => `${fmtMs(r.clientFloor)} ms`).join(" / ")} (in row order).`,
    );
  }
  console.log(
    "The tool call: MCP Guard's code calls mcp.upstream.echo through its binding proxy to the upstream; every other " +
      "row's host function is the driver's MCP client making the same HTTP call to the same upstream (Deno relays it " +
      "to the driver over stdio). Memory: PSS of the row's processes (serve with its binding proxy and isolate hosts; " +
      "the deno processes; the driver's row process for in-process rows) with the executions parked in a 5 s tool " +
      "call, minus the same just before, per execution.",
  );
  if (rows.some((r) => r.skipped)) console.log(`\nLogs of the run kept in ${TMP}`);
  else fs.rmSync(TMP, { recursive: true, force: true });
}

const rowArg = process.argv.indexOf("--row");
const entry = IS_ROW ? runRow(PEERS.find((p) => p.id === process.argv[rowArg + 1])) : main();
entry.then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    console.error(`logs kept in ${TMP}`);
    process.exit(1);
  },
);
