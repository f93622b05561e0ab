// Runs the benign corpus on Node with stub `mcp` tools that mirror `benign_host()` in `../benign.rs`,
// and checks that every program returns its `// @expect` value there: the expectations describe what a
// mainstream runtime does. `.ts` programs need the `typescript` package (set NODE_PATH to where it is
// installed); without it they are skipped.
//
//   node executor/tests/benign/node_check.mjs [name-filter]
import { readFileSync, readdirSync } from "node:fs";
import vm from "node:vm";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

const quiet = () => {};
console.log = console.info = console.warn = console.debug = quiet;
const report = (...a) => process.stdout.write(a.join(" ") + "\n");

const dir = dirname(fileURLToPath(import.meta.url));
const fx = JSON.parse(readFileSync(join(dir, "fixtures.json"), "utf8"));
let ts = null;
try {
  ts = createRequire(import.meta.url)("typescript");
} catch {
  console.warn("typescript not found: .ts programs are skipped");
}

class McpToolError extends Error {
  constructor(message, server, tool, code) {
    super(message);
    this.name = "McpToolError";
    this.server = server;
    this.tool = tool;
    this.code = code;
  }
}
globalThis.McpToolError = McpToolError;

const clone = (v) => JSON.parse(JSON.stringify(v));
const tools = {
  github: {
    list_issues: ({ state = "open", label } = {}) =>
      fx.issues.filter((i) => state === "all" || i.state === state).filter((i) => !label || i.labels.includes(label)),
    get_issue: ({ number }) => {
      const i = fx.issues.find((i) => i.number === number);
      if (!i) throw `issue #${JSON.stringify(number ?? null)} not found`;
      return i;
    },
    get_user: ({ login }) => {
      const u = fx.users.find((u) => u.login === login);
      if (!u) throw `user '${login ?? ""}' not found`;
      return u;
    },
    list_pull_requests: ({ state } = {}) => fx.pulls.filter((p) => state === undefined || p.state === state),
    create_comment: ({ number, body }) => {
      if (!body) throw "body must not be empty";
      const i = fx.issues.find((i) => i.number === number);
      if (!i) throw `issue #${JSON.stringify(number ?? null)} not found`;
      const id = 9000 + number;
      return { id, issue: number, body, url: `https://github.com/acme/app/issues/${number}#issuecomment-${id}` };
    },
  },
  weather: {
    get_current: ({ city }) => {
      const w = fx.weather.find((w) => w.city === city);
      if (!w) throw `unknown city '${city ?? ""}'`;
      const { forecast, ...rest } = w;
      return rest;
    },
    get_forecast: ({ city, days = 3 }) => {
      const w = fx.weather.find((w) => w.city === city);
      if (!w) throw `unknown city '${city ?? ""}'`;
      return { city, unit: "C", days: w.forecast.slice(0, days) };
    },
  },
  time: {
    get_current_time: ({ timezone = "UTC" } = {}) => {
      const t = fx.times.find((t) => t.timezone === timezone);
      if (!t) throw `unknown timezone '${timezone}'`;
      return t;
    },
  },
  shop: {
    list_orders: ({ status } = {}) => fx.orders.filter((o) => status === undefined || o.status === status),
  },
  slack: {
    post_message: ({ channel, text }) => {
      if (!String(channel ?? "").startsWith("#")) throw "channel_not_found";
      return { ok: true, channel, ts: "1710513000.000100", text: text ?? null };
    },
  },
  docs: { search: ({ query }) => ({ query: query ?? null, results: fx.docs }) },
  config: { get_value: ({ key }) => ({ key: key ?? "", value: fx.config[key] ?? null }) },
};

const mcp = {};
for (const [server, ts_] of Object.entries(tools)) {
  mcp[server] = {};
  for (const [tool, f] of Object.entries(ts_)) {
    mcp[server][tool] = async (args = {}) => {
      await null;
      try {
        return clone(f(clone(args)));
      } catch (message) {
        throw new McpToolError(String(message), server, tool, "tool_error");
      }
    };
  }
}

function parse(file, text) {
  const programs = [];
  let p = null;
  for (const line of text.split("\n")) {
    const m = /^\s*\/\/ @(\w+)\s?(.*)$/.exec(line);
    if (m && m[1] === "name") {
      p = { file, name: m[2].trim(), code: "", expect: undefined };
      programs.push(p);
    } else if (m) {
      if (m[1] === "expect") p.expect = JSON.parse(m[2]);
      // `@node <major>`: the program needs a newer Node than this one to run.
      if (m[1] === "node") p.node = Number(m[2]);
    } else if (p) {
      p.code += line + "\n";
    }
  }
  return programs;
}

const filter = process.argv[2] ?? "";
let ok = 0;
let bad = 0;
let skipped = 0;
for (const file of readdirSync(dir).filter((f) => /\.(js|ts)$/.test(f)).sort()) {
  for (const p of parse(file, readFileSync(join(dir, file), "utf8"))) {
    if (!p.name.includes(filter)) continue;
    if ((file.endsWith(".ts") && !ts) || (p.node && p.node > Number(process.versions.node.split(".")[0]))) {
      skipped++;
      continue;
    }
    const code = p.code.replace(/^(\s*\/\/.*\n)+/, "").trim();
    const tsc = (src) =>
      file.endsWith(".ts")
        ? ts.transpileModule(src, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None } })
            .outputText
        : src;
    // The function form when the whole program parses as one async function expression.
    let src = null;
    if (/^async\b/.test(code)) {
      try {
        const candidate = tsc(`(${code.replace(/;\s*$/, "")}\n)`);
        new vm.Script(candidate);
        src = candidate;
      } catch {
        src = null;
      }
    }
    src ??= tsc(`(async function (mcp) {\n${code}\n})`);
    let got;
    try {
      const fn = (0, eval)(src);
      const value = await fn(mcp);
      got = value === undefined ? null : clone(value);
    } catch (e) {
      got = { __threw: String(e && e.stack ? e.stack : e) };
    }
    if (isDeepStrictEqual(got, p.expect)) {
      ok++;
    } else {
      bad++;
      report(`MISMATCH ${file}/${p.name}\n  expect ${JSON.stringify(p.expect)}\n  node   ${JSON.stringify(got)}`);
    }
  }
}
report(`node: ${ok} ok, ${bad} mismatched, ${skipped} skipped`);
process.exit(bad ? 1 : 0);
