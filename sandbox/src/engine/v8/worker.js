// The guest side of a V8 isolate host: the bootstrap of the Worker (a fresh V8 isolate) that runs one
// execution. It is started before the job arrives, so that the isolate's start is off the critical
// path, and it runs exactly one job; the process ends after it.
//
// Nothing here is trusted by the host script (host.js) once guest code has run: everything the guest
// could send through the channel below (tool calls, console lines, the result) is checked and counted
// there. This file only makes the guest's environment the same as QuickJS's: the Deno runtime's own
// globals (Deno, fetch, WebSocket, Worker, navigator, process, ...) are removed, then the sandbox's
// prelude (the same `prelude.js` QuickJS runs) installs the frozen clocks, the seeded Math.random, the
// console, the timers and the `mcp` bindings.
"use strict";
const G = globalThis;
const PRELUDE = __PRELUDE__;
const WEB = __WEB__;
// Capture what the bootstrap needs before anything is removed.
const post = G.postMessage.bind(G);
const listen = G.addEventListener.bind(G);
const nativeSetTimeout = G.setTimeout;
const nativeClearTimeout = G.clearTimeout;
const nativeSetInterval = G.setInterval;
const nativeClearInterval = G.clearInterval;
const NativeURL = G.URL;
const NativeURLSearchParams = G.URLSearchParams;
const NativeIntl = G.Intl;
const NativeBlob = G.Blob;
const createObjectURL = G.URL.createObjectURL;
const revokeObjectURL = G.URL.revokeObjectURL;
const monotonic = G.performance.now.bind(G.performance);
const RealDate = G.Date;
const dateNow = RealDate.now;
const getOwnPropertyNames = Object.getOwnPropertyNames;
const getOwnPropertySymbols = Object.getOwnPropertySymbols;
const getPrototypeOf = Object.getPrototypeOf;
const StringOf = String;
// Guest code may replace built-ins of its own realm (Promise.prototype.then = null, a new Map.prototype.get):
// what the bootstrap uses after the guest started is captured here and called with `apply`.
const RealPromise = Promise;
const apply = Reflect.apply;
const promiseThen = Promise.prototype.then;
const split = String.prototype.split;
const join = Array.prototype.join;
const create = Object.create;
const NumberOf = Number;
const floor = Math.floor;
const max = Math.max;
const dateLocale = RealDate.prototype.toLocaleString;
const dateLocaleDate = RealDate.prototype.toLocaleDateString;
const dateLocaleTime = RealDate.prototype.toLocaleTimeString;
const numberLocale = Number.prototype.toLocaleString;
const localeCompare = String.prototype.localeCompare;
// This isolate's heap use (for the outcome's `peakHeapBytes`; a metric, not a limit).
const memoryUsage = G.Deno.memoryUsage;
let peakHeap = 0;
const sampleHeap = () => {
  try {
    const used = memoryUsage().heapUsed;
    if (used > peakHeap) peakHeap = used;
  } catch (_) {
    // a metric only
  }
};

// The globals a QuickJS sandbox has before its prelude runs: the language's built-ins. Everything else
// the Deno runtime put on the global object or its prototype chain is removed.
const KEEP = new Set([
  "globalThis", "Object", "Function", "Array", "Number", "parseFloat", "parseInt", "Infinity", "NaN",
  "undefined", "Boolean", "String", "Symbol", "Date", "Promise", "RegExp", "Error", "AggregateError",
  "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError", "JSON", "Math",
  "Intl", "ArrayBuffer", "Atomics", "Uint8Array", "Int8Array", "Uint16Array", "Int16Array", "Uint32Array",
  "Int32Array", "Float32Array", "Float64Array", "Uint8ClampedArray", "BigUint64Array", "BigInt64Array",
  "Float16Array", "DataView", "Map", "BigInt", "Set", "WeakMap", "WeakSet", "Proxy", "Reflect",
  "FinalizationRegistry", "WeakRef", "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent",
  "escape", "unescape", "eval", "isFinite", "isNaN", "Iterator", "SharedArrayBuffer", "WebAssembly",
  "DisposableStack", "AsyncDisposableStack", "SuppressedError",
  "queueMicrotask", "constructor", "__proto__", "toString", "hasOwnProperty", "isPrototypeOf",
  "propertyIsEnumerable", "toLocaleString", "valueOf", "__defineGetter__", "__defineSetter__",
  "__lookupGetter__", "__lookupSetter__",
]);
const removed = [];
// Everything of Deno's goes from the scope (see KEEP); on any surprise the isolate reports a fault and
// runs nothing.
const harden = () => {
  const strip = (target) => {
    for (const key of [...getOwnPropertyNames(target), ...getOwnPropertySymbols(target)]) {
      if (typeof key === "string" && KEEP.has(key)) continue;
      // Symbol-keyed properties of the scope's prototypes go; the global object's two stay (checked
      // below): Deno's WebIDL brand (its `postMessage`, which this bootstrap keeps, checks it) and the
      // global object's event-target data (the listeners through which this bootstrap gets messages).
      if (typeof key === "symbol" && target === G) continue;
      if (!Reflect.deleteProperty(target, key)) {
        throw new Error(`the V8 sandbox cannot remove ${StringOf(key)} from the global scope`);
      }
      removed.push(StringOf(key));
    }
  };
  // The global object and every prototype on its chain up to (not including) Object.prototype.
  let scope = G;
  while (scope !== null && scope !== Object.prototype) {
    const next = getPrototypeOf(scope);
    strip(scope);
    scope = next;
  }
  // What remains must be only the language's own; checked, not assumed (before `dispatchEvent` below).
  for (const key of getOwnPropertyNames(G)) {
    if (!KEEP.has(key)) throw new Error(`the V8 sandbox left ${key} on the global object`);
  }
  // What the guest can reach through them: a symbol, and this bootstrap's own message listeners, which
  // only settle the guest's own calls (a guest that calls or removes them deceives or stalls itself;
  // the host script checks everything it sends).
  for (const key of getOwnPropertySymbols(G)) {
    const value = G[key];
    const brand = key.description === "[[webidl.brand]]" && value === key;
    const listeners = key.description === undefined && value !== null && typeof value === "object" &&
      getOwnPropertyNames(value).includes("listeners");
    if (!brand && !listeners) {
      throw new Error(`the V8 sandbox left ${StringOf(key)} on the global object`);
    }
  }
  // Deno reports a promise rejection nobody handled by dispatching an event on the global object, and
  // ends the isolate when no listener prevents it. QuickJS lets such rejections go (the execution's own
  // promise is what counts), and so does this: the one name on the global object the language does not
  // define, a function that only marks the event handled.
  Object.defineProperty(G, "dispatchEvent", {
    value: function dispatchEvent(event) {
      try {
        event.preventDefault();
      } catch (_) {
        // not an event
      }
      return false;
    },
    writable: false,
    enumerable: false,
    configurable: false,
  });
};
let fault = null;
try {
  harden();
} catch (e) {
  fault = StringOf(e && e.message);
}

// The seeded Math.random: xorshift64*, seeded through splitmix64, the same generator (and so the same
// draws for a seed) as the QuickJS host's native one.
const M64 = (1n << 64n) - 1n;
const u64 = (x) => x & M64;
const imul = Math.imul;
const splitmix64 = (seed) => {
  let z = u64(seed + 0x9e3779b97f4a7c15n);
  z = u64((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = u64((z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
};
const TWO53 = 2 ** 53;
// The high 32 bits of the product of two unsigned 32-bit integers (exact: 16-bit halves).
const mulhi = (a, b) => {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const t0 = a0 * b0;
  const t1 = a1 * b0 + (t0 >>> 16);
  const t2 = a0 * b1 + (t1 % 65536);
  return (a1 * b1 + floor(t1 / 65536) + floor(t2 / 65536)) >>> 0;
};
const seeded = (seed) => {
  let x = splitmix64(seed);
  if (x === 0n) x = 1n;
  // The state as two 32-bit halves: the same arithmetic as the 64-bit version, without BigInts.
  let hi = NumberOf(x >> 32n) >>> 0;
  let lo = NumberOf(x & 0xffffffffn) >>> 0;
  const MHI = 0x2545f491;
  const MLO = 0x4f6cdd1d;
  const random = function random() {
    // x ^= x >> 12
    lo = (lo ^ ((lo >>> 12) | (hi << 20))) >>> 0;
    hi = (hi ^ (hi >>> 12)) >>> 0;
    // x ^= x << 25
    hi = (hi ^ ((hi << 25) | (lo >>> 7))) >>> 0;
    lo = (lo ^ (lo << 25)) >>> 0;
    // x ^= x >> 27
    lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0;
    hi = (hi ^ (hi >>> 27)) >>> 0;
    // (x * M) >> 11, as a 53-bit integer
    const outLo = imul(lo, MLO) >>> 0;
    const outHi = (mulhi(lo, MLO) + imul(lo, MHI) + imul(hi, MLO)) >>> 0;
    return (outHi * 2097152 + (outLo >>> 11)) / TWO53;
  };
  return random;
};

let started = false;
const run = async (job) => {
  // The clock the guest sees: frozen while its code runs, moved on when a tool result or a timer
  // arrives (a new task of this isolate).
  const origin = job.clockMs > 0 ? job.clockMs : dateNow();
  const t0 = monotonic();
  let clock = origin;
  const tick = () => {
    clock = origin + floor(monotonic() - t0);
    sampleHeap();
  };
  // Tool calls: sent to the host script, answered by message.
  let nextCall = 0;
  const waiting = create(null);
  let inFlight = 0;
  let timers = 0;
  const settledCheck = () => {
    nativeSetTimeout(() => {
      if (!finished && inFlight === 0 && timers === 0) {
        finish({
          t: "threw",
          error: ["Error", "the code's promise can never settle: it awaits something that no tool call or timer will resolve", ""],
        });
      }
    }, 0);
  };
  listen("message", (event) => {
    const m = event.data;
    if (m === null || typeof m !== "object" || m.t !== "result") return;
    if (typeof m.n !== "number") return;
    const pending = waiting[m.n];
    if (pending === undefined) return;
    delete waiting[m.n];
    inFlight--;
    tick();
    if (m.ok) pending[0](m.text);
    else pending[1]([m.code, m.message]);
    settledCheck();
  });
  const call = (server, tool, json) =>
    new RealPromise((resolve, reject) => {
      const n = nextCall++;
      waiting[n] = [resolve, reject];
      inFlight++;
      post({ t: "call", n, server, tool, json });
    });
  stop = () => {
    finished = true;
    for (const id of Reflect.ownKeys(live)) {
      const t = live[id];
      if (t[1]) nativeClearInterval(t[0]);
      else nativeClearTimeout(t[0]);
    }
  };
  const MAX_TIMERS = 10000;
  const live = create(null);
  let liveCount = 0;
  let nextTimer = 0;
  const host = {
    log: (level, text) => post({ t: "log", level, text }),
    call,
    now: () => clock,
    random: seeded(BigInt(job.seed)),
    setTimer: (fn, delay, repeat) => {
      if (liveCount >= MAX_TIMERS) throw new RangeError("too many pending timers in this execution");
      const id = ++nextTimer;
      const fire = () => {
        tick();
        if (!repeat) {
          delete live[id];
          liveCount--;
          timers--;
        }
        try {
          fn();
        } catch (e) {
          finish({ t: "threw", error: describe(e) });
          return;
        }
        settledCheck();
      };
      timers++;
      const handle = repeat
        ? nativeSetInterval(fire, max(delay, 1))
        : nativeSetTimeout(fire, delay);
      live[id] = [handle, repeat];
      liveCount++;
      return id;
    },
    clearTimer: (id) => {
      const t = live[id];
      if (t === undefined) return;
      delete live[id];
      liveCount--;
      timers--;
      if (t[1]) nativeClearInterval(t[0]);
      else nativeClearTimeout(t[0]);
    },
    // The web built-ins of web.js (the same as QuickJS's), with V8's own WHATWG URL, whose parse errors
    // read as Node's (`TypeError: Invalid URL`, code ERR_INVALID_URL).
    web: () => (deps, consoleSupport) => {
      const api = WEB({ url: () => { throw new TypeError("URL is native here"); }, setTimer: deps.setTimer }, consoleSupport);
      const invalid = (input) => {
        const error = new TypeError("Invalid URL");
        error.code = "ERR_INVALID_URL";
        error.input = StringOf(input);
        return error;
      };
      const URL = class URL extends NativeURL {
        constructor(...args) {
          try {
            super(...args);
          } catch (e) {
            if (!(e instanceof TypeError)) throw e;
            throw invalid(args[0]);
          }
        }
      };
      // No object URLs: there is no Blob in the sandbox, and a blob: URL could be imported.
      for (const name of ["createObjectURL", "revokeObjectURL"]) {
        Object.defineProperty(URL, name, { value: undefined, writable: false, enumerable: false, configurable: false });
      }
      const href = Object.getOwnPropertyDescriptor(NativeURL.prototype, "href");
      Object.defineProperty(URL.prototype, "href", {
        get() {
          return apply(href.get, this, []);
        },
        set(value) {
          try {
            apply(href.set, this, [value]);
          } catch (e) {
            if (!(e instanceof TypeError)) throw e;
            throw invalid(value);
          }
        },
        enumerable: true,
        configurable: true,
      });
      return { ...api, URL, URLSearchParams: NativeURLSearchParams };
    },
    url: undefined,
    // V8's own Intl (full ICU), under the prelude's frozen clock.
    intlModule: () => () => ({
      Intl: NativeIntl,
      dateToLocaleString: (d, l, o) => dateLocale.call(d, l, o),
      dateToLocaleDateString: (d, l, o) => dateLocaleDate.call(d, l, o),
      dateToLocaleTimeString: (d, l, o) => dateLocaleTime.call(d, l, o),
      numberToLocaleString: (n, l, o) => numberLocale.call(n, l, o),
      localeCompare: (s, t, l, o) => localeCompare.call(s, t, l, o),
    }),
    intl: undefined,
  };
  let finished = false;
  const finish = (message) => {
    if (finished) return;
    finished = true;
    sampleHeap();
    message.heap = peakHeap;
    post(message);
  };
  const api = PRELUDE(host, job.catalog);
  const describe = (e) => {
    const parts = api.describe(e);
    // Frames of the submitted code name it `sandbox.js`, as in QuickJS.
    parts[2] = apply(join, apply(split, parts[2], [url]), ["sandbox.js"]);
    return parts;
  };
  const url = createObjectURL(new NativeBlob([job.module], { type: "text/javascript" }));
  let fn;
  try {
    fn = (await import(url)).default;
  } catch (e) {
    finish({ t: "threw", error: describe(e) });
    return;
  } finally {
    revokeObjectURL(url);
  }
  tick();
  settledCheck();
  apply(promiseThen, api.start(fn), [
    (text) => finish({ t: "done", text }),
    (e) => finish({ t: "threw", error: describe(e) }),
  ]);
};

// Stop: clear every timer the guest left, and say so from this isolate's event loop (an isolate whose
// code still runs never answers, and its host exits).
let stop = () => {};
listen("message", (event) => {
  const m = event.data;
  if (m !== null && typeof m === "object" && m.t === "stop") {
    stop();
    post({ t: "stopped" });
    return;
  }
  if (started || m === null || typeof m !== "object" || m.t !== "job") return;
  started = true;
  run(m.job).catch((e) => post({ t: "fault", message: StringOf(e && e.message) }));
});
post(fault === null ? { t: "ready", removed: removed.length } : { t: "fault", message: fault });
