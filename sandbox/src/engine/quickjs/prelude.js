// The sandbox's environment, evaluated in every fresh context before the submitted code. Its completion
// value is a setup function; the host calls it with the host functions (which never become reachable
// from the global object) and the tool catalog, and gets back `start` and `describe`.
//
// Everything the submitted code may later tamper with (JSON, Object, Reflect, Promise, Error, ...) is
// captured here first. Tampering can only break the tampering execution itself: the host validates all
// that crosses back (strings it parses itself), and nothing outlives the execution.
"use strict";
(function setup(host, catalog) {
  const G = globalThis;
  const { log, call, now, setTimer, clearTimer } = host;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const freeze = Object.freeze;
  const create = Object.create;
  const defineProperty = Object.defineProperty;
  const getPrototypeOf = Object.getPrototypeOf;
  const keys = Object.keys;
  const isArray = Array.isArray;
  const join = (a, sep) => Array.prototype.join.call(a, sep);
  const RealDate = Date;
  const RealError = Error;
  const RealTypeError = TypeError;
  const RealEvalError = EvalError;
  const RealProxy = Proxy;
  const StringOf = String;
  const wellFormed = String.prototype.toWellFormed;
  const toWellFormed = (s) => wellFormed.call(s);

  // 1. Nothing that generates code or shares memory. The engine's C-level eval is already absent from
  //    this context, so these calls would fail anyway; removing them gives a clear error and leaves no
  //    constructor chain to follow.
  for (const name of ["eval", "SharedArrayBuffer", "Atomics", "WebAssembly"]) {
    delete G[name];
  }
  const blocked = (kind) => {
    const f = function () {
      throw new RealEvalError(`${kind} is disabled in the sandbox: code generation from strings is not allowed`);
    };
    return f;
  };
  const FunctionPrototype = getPrototypeOf(function () {});
  const kinds = [
    ["Function", FunctionPrototype],
    ["AsyncFunction", getPrototypeOf(async function () {})],
    ["GeneratorFunction", getPrototypeOf(function* () {})],
    ["AsyncGeneratorFunction", getPrototypeOf(async function* () {})],
  ];
  for (const [kind, proto] of kinds) {
    const stub = blocked(kind);
    defineProperty(stub, "prototype", { value: proto, writable: false, enumerable: false, configurable: false });
    defineProperty(proto, "constructor", { value: stub, writable: false, enumerable: false, configurable: false });
    if (kind === "Function") {
      defineProperty(G, "Function", { value: stub, writable: false, enumerable: false, configurable: false });
    }
  }
  // V8-style stack hooks would let code see internal frames; stacks are formatted by the host instead.
  defineProperty(RealError, "prepareStackTrace", { value: undefined, writable: false, configurable: false });

  // 2. Frozen clocks: time moves only while the code waits for a tool call or a timer.
  const FrozenDate = function Date(...args) {
    if (new.target === undefined) return new RealDate(now()).toString();
    return args.length === 0 ? new RealDate(now()) : new RealDate(...args);
  };
  defineProperty(FrozenDate, "prototype", { value: RealDate.prototype, writable: false });
  FrozenDate.now = () => now();
  FrozenDate.parse = RealDate.parse;
  FrozenDate.UTC = RealDate.UTC;
  defineProperty(RealDate.prototype, "constructor", { value: FrozenDate, writable: false, configurable: false });
  defineProperty(G, "Date", { value: FrozenDate, writable: false, enumerable: false, configurable: false });
  const origin = now();
  const performance = freeze({ now: () => now() - origin, timeOrigin: origin });
  defineProperty(G, "performance", { value: performance, writable: false, enumerable: false, configurable: false });

  // 2b. Math.random from a per-execution seed (the host's, native): a resumed execution draws the same
  //     numbers as its first run, so its code takes the same path. Not for secrets (neither is the
  //     engine's). As writable as the engine's own: code that replaces it changes only its own
  //     execution, and its replacement is as deterministic as the code itself.
  defineProperty(Math, "random", { value: host.random, writable: true, enumerable: false, configurable: true });

  // 3. Console: formatted here, counted against the output limit by the host.
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof RealError) return `${v.name}: ${v.message}`;
    try {
      const s = stringify(v);
      if (s !== undefined) return s;
    } catch (_) {
      // fall through: cycles, BigInt, throwing getters
    }
    try {
      return StringOf(v);
    } catch (_) {
      return "[unprintable]";
    }
  };
  // console.group indents every line that follows, as Node does.
  let indent = "";
  const emit = (level, text) => {
    const lines = indent === "" ? text : join(text.split("\n").map((l) => indent + l), "\n");
    // Lone surrogates cannot cross into the host as UTF-8; show them as U+FFFD.
    log(level, toWellFormed(lines));
  };
  const format = (args) => {
    const parts = [];
    for (const a of args) parts.push(show(a));
    return join(parts, " ");
  };
  const logger = (level) => (...args) => emit(level, format(args));
  // The other console methods live in web.js and are loaded on first use, like the web built-ins.
  const consoleSupport = { emit, format, show, now, group: (delta) => (indent = delta > 0 ? `${indent}  ` : indent.slice(0, -2)) };
  const later = (name) => (...args) => web().console[name](...args);
  const console = freeze({
    debug: logger("debug"),
    log: logger("log"),
    info: logger("info"),
    warn: logger("warn"),
    error: logger("error"),
    trace: later("trace"),
    dir: later("dir"),
    dirxml: later("dirxml"),
    assert: later("assert"),
    count: later("count"),
    countReset: later("countReset"),
    time: later("time"),
    timeLog: later("timeLog"),
    timeEnd: later("timeEnd"),
    group: later("group"),
    groupCollapsed: later("groupCollapsed"),
    groupEnd: later("groupEnd"),
    table: later("table"),
  });
  defineProperty(G, "console", { value: console, writable: false, enumerable: false, configurable: false });

  // 3b. Web built-ins (web.js): loaded on the first use of any of them, so that code that uses none
  //     pays nothing for them.
  let webApi;
  const web = () => webApi ?? (webApi = host.web()({ url: host.url, setTimer }, consoleSupport));
  for (const name of [
    "DOMException", "atob", "btoa", "TextEncoder", "TextDecoder", "URL", "URLSearchParams",
    "structuredClone", "crypto", "Event", "EventTarget", "AbortController", "AbortSignal",
  ]) {
    defineProperty(G, name, { get: () => web()[name], enumerable: false, configurable: false });
  }

  // 3c. Intl (intl.js, over ICU4X in the host): loaded on the first use of `Intl` or of a locale-aware
  //     method of Date, Number or String, so that code that uses none pays nothing for it.
  let intlApi;
  const intl = () => intlApi ?? (intlApi = host.intlModule()(host.intl, now));
  defineProperty(G, "Intl", { get: () => intl().Intl, enumerable: false, configurable: false });
  const localeMethods = {
    toLocaleString(locales, options) {
      return intl().dateToLocaleString(this, locales, options);
    },
    toLocaleDateString(locales, options) {
      return intl().dateToLocaleDateString(this, locales, options);
    },
    toLocaleTimeString(locales, options) {
      return intl().dateToLocaleTimeString(this, locales, options);
    },
  };
  const numberToLocaleString = {
    toLocaleString(locales, options) {
      return intl().numberToLocaleString(this, locales, options);
    },
  };
  const stringLocaleCompare = {
    localeCompare(that, locales, options) {
      if (this === undefined || this === null) {
        throw new RealTypeError("String.prototype.localeCompare called on null or undefined");
      }
      return intl().localeCompare(this, that, locales, options);
    },
  };
  for (const [proto, methods] of [
    [RealDate.prototype, localeMethods],
    [Number.prototype, numberToLocaleString],
    [String.prototype, stringLocaleCompare],
  ]) {
    for (const name of keys(methods)) {
      defineProperty(proto, name, { value: methods[name], writable: true, enumerable: false, configurable: true });
    }
  }

  // 4. Timers: numeric delays only; a string callback would be code generation.
  const timer = (repeat) => (fn, ms, ...args) => {
    if (typeof fn !== "function") {
      throw new RealTypeError("timer callback must be a function: strings are not evaluated in the sandbox");
    }
    const delay = Number(ms);
    return setTimer(() => fn(...args), delay > 0 ? delay : 0, repeat);
  };
  const clear = (id) => {
    if (typeof id === "number") clearTimer(id);
  };
  for (const [name, value] of [
    ["setTimeout", timer(false)],
    ["setInterval", timer(true)],
    ["clearTimeout", clear],
    ["clearInterval", clear],
  ]) {
    defineProperty(G, name, { value, writable: false, enumerable: false, configurable: false });
  }

  // 5. Bindings: mcp.<server>.<tool>(args) -> Promise. Unknown names throw inside the sandbox.
  const McpToolError = class McpToolError extends RealError {
    constructor(message, server, tool, code) {
      super(message);
      this.name = "McpToolError";
      this.server = server;
      this.tool = tool;
      this.code = code;
    }
  };
  // The binding objects are read-only through every trap that could change them, but their targets are
  // not frozen: a frozen target's properties are non-configurable, and then code that wraps `mcp.time` in
  // a Proxy of its own (to log calls, say) breaks the Proxy invariants ("inconsistent get"). The targets
  // are reachable only through these proxies.
  const readOnly = () => {
    throw new RealTypeError("the mcp bindings are read-only");
  };
  const strict = (target, what, available) =>
    new RealProxy(target, {
      get(t, prop) {
        if (typeof prop !== "string" || prop in t) return t[prop];
        // Probes made by await, JSON and console must see "absent", not an error.
        if (prop === "then" || prop === "toJSON" || prop === "inspect") return undefined;
        throw new RealTypeError(`${what(prop)}; available: ${join(available, ", ") || "none"}`);
      },
      set: readOnly,
      defineProperty: readOnly,
      deleteProperty: readOnly,
      preventExtensions: readOnly,
      setPrototypeOf: readOnly,
    });
  const servers = create(null);
  for (const server of catalog) {
    const tools = create(null);
    for (const tool of server.tools) {
      const serverName = server.name;
      const toolName = tool.name;
      const label = `mcp.${server.ident}.${tool.ident}`;
      tools[tool.ident] = async function (args) {
        if (args === undefined) args = {};
        if (args === null || typeof args !== "object" || isArray(args)) {
          throw new RealTypeError(`${label}: arguments must be an object`);
        }
        const json = stringify(args);
        let payload;
        try {
          payload = await call(serverName, toolName, json);
        } catch (reason) {
          throw new McpToolError(StringOf(reason[1]), serverName, toolName, StringOf(reason[0]));
        }
        return payload === undefined ? undefined : parse(payload);
      };
    }
    servers[server.ident] = strict(
      tools,
      (prop) => `unknown tool '${prop}' on MCP server '${server.name}'`,
      keys(tools),
    );
  }
  const serverNames = keys(servers);
  // Discovery from running code: mcp.$search(query, detail) and mcp.$describe(names), answered by the
  // host's reserved server "$" (the API server's tool directory).
  const discover = async (tool, args) => {
    let payload;
    try {
      payload = await call("$", tool, stringify(args));
    } catch (reason) {
      throw new McpToolError(StringOf(reason[1]), "$", tool, StringOf(reason[0]));
    }
    return parse(payload);
  };
  servers.$search = async (query, detail) =>
    discover("search", {
      query: query === undefined ? "" : StringOf(query),
      detail: detail === undefined ? "summaries" : StringOf(detail),
    });
  servers.$describe = async (names) =>
    discover("describe", {
      names: isArray(names) ? names.map((n) => StringOf(n)) : names === undefined ? [] : [StringOf(names)],
    });
  const mcp = strict(servers, (prop) => `unknown MCP server '${prop}'`, serverNames);
  defineProperty(G, "mcp", { value: mcp, writable: false, enumerable: false, configurable: false });
  defineProperty(G, "McpToolError", { value: McpToolError, writable: false, enumerable: false, configurable: false });

  // 6. Result and error extraction, used by the host after the code has run.
  const notJson = (what) => {
    throw new RealTypeError(`the result is not JSON-serialisable: ${what}`);
  };
  const serialize = (value) => {
    if (value === undefined) return "null";
    let text;
    try {
      text = stringify(value, function (key, v) {
        const t = typeof v;
        const where = key === "" ? "the returned value" : `the value at key "${key}"`;
        if (t === "function") notJson(`${where} is a function`);
        if (t === "symbol") notJson(`${where} is a symbol`);
        if (t === "bigint") notJson(`${where} is a BigInt (convert it with String() or Number())`);
        return v;
      });
    } catch (e) {
      if (e instanceof RealTypeError && typeof e.message === "string" && e.message.startsWith("the result is")) {
        throw e;
      }
      notJson(e instanceof RealError ? e.message : StringOf(e));
    }
    return text === undefined ? "null" : text;
  };
  const start = async (fn) => serialize(await fn(mcp));
  const text = (v) => {
    try {
      return StringOf(v);
    } catch (_) {
      return "[unprintable]";
    }
  };
  const describe = (e) => {
    try {
      if (e instanceof RealError) return [text(e.name), text(e.message), text(e.stack)];
      return ["NonError", show(e), ""];
    } catch (_) {
      return ["Error", "[unprintable thrown value]", ""];
    }
  };
  return { start, describe };
})
