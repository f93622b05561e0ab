// Web built-ins of the sandbox against Node: each case runs as the body of an async function, in the
// sandbox (executor/tests/web_builtins.rs) and on Node (node_expect.mjs, which writes expected.json).
// A case's outcome is its returned value or its thrown error's name and message, and its console lines.

// @name url-parse-components
const u = new URL("https://user:pw@Example.COM:8443/a/../b/./c?x=1&y=%20#frag");
return [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];

// @name url-relative-resolution
return ["../up", "/root", "?q=1", "#h", "//other.example/p", "sibling"].map((r) => new URL(r, "https://ex.com/a/b/c?z=9#y").href);

// @name url-default-port-and-idna
return [new URL("https://ex.com:443/").href, new URL("http://ex.com:80/").port, new URL("https://bücher.example/").hostname];

// @name url-invalid-throws
try { new URL("not a url"); } catch (e) { return [e.name, e.message, e.code, e instanceof TypeError]; }

// @name url-invalid-base-throws
try { new URL("/a", "nope"); } catch (e) { return [e.name, e.message]; }

// @name url-can-parse
return [URL.canParse("https://a.b"), URL.canParse("a b"), URL.canParse("/x", "https://a.b"), URL.canParse("/x")];

// @name url-setters
const u = new URL("https://ex.com/p?a=1#h");
u.pathname = "/new path";
u.hash = "";
u.search = "b=2&c=3";
u.port = "8080";
u.hostname = "other.example";
u.protocol = "http";
u.username = "me";
return [u.href, u.search, u.port];

// @name url-setter-refused-silently
const u = new URL("https://ex.com/");
u.protocol = "mailto";
u.port = "notaport";
return u.href;

// @name url-href-setter-invalid-throws
const u = new URL("https://ex.com/");
try { u.href = "::"; } catch (e) { return [e.name, e.message]; }

// @name url-search-params-live
const u = new URL("https://ex.com/s?q=a+b&lang=en");
const p = u.searchParams;
p.set("lang", "de");
p.append("tag", "x y");
const before = u.search;
u.search = "?only=1";
return [before, u.href, p.get("only"), p.get("lang"), [...p.keys()]];

// @name url-search-params-delete-empties-query
const u = new URL("https://ex.com/s?q=1");
u.searchParams.delete("q");
return [u.href, u.search];

// @name url-json-and-string
const u = new URL("https://ex.com/a?b#c");
return [JSON.stringify({ u }), String(u), `${u}`, Object.prototype.toString.call(u)];

// @name url-encode-path-and-query
const u = new URL("https://ex.com/a b/ü?q=ü x&r=a&b");
return [u.pathname, u.search, u.href];

// @name url-file-and-data
return [new URL("file:///tmp/x.txt").pathname, new URL("data:text/plain,hi").pathname, new URL("mailto:a@b.c").origin];

// @name search-params-from-forms
const a = new URLSearchParams("?a=1&b=2&a=3");
const b = new URLSearchParams([["x", "1"], ["y", "2"]]);
const c = new URLSearchParams({ k: "v w", n: 5 });
return [a.getAll("a"), a.get("b"), a.get("zz"), b.toString(), c.toString(), a.size, a.has("a", "3"), a.has("a", "9")];

// @name search-params-mutate-and-sort
const p = new URLSearchParams("z=1&a=2&m=3&a=1");
p.sort();
const sorted = p.toString();
p.set("a", "only");
p.delete("m");
return [sorted, p.toString(), [...p], [...p.values()]];

// @name search-params-encoding
const p = new URLSearchParams();
p.append("q", "a+b c&d=e/ü~*-._!");
p.append("emoji", "😀");
return [p.toString(), new URLSearchParams(p.toString()).get("q"), new URLSearchParams("x=%zz&y=%41").get("x")];

// @name search-params-foreach
const out = [];
new URLSearchParams("a=1&b=2").forEach((v, k) => out.push(`${k}=${v}`));
return out;

// @name search-params-bad-pair-throws
try { new URLSearchParams([["a", "b", "c"]]); } catch (e) { return e.name; }

// @name text-encoder-basics
const e = new TextEncoder();
return [e.encoding, [...e.encode("aé€😀")], e.encode().length, [...e.encode("\ud800x")]];

// @name text-encoder-encode-into
const dest = new Uint8Array(5);
const r = new TextEncoder().encodeInto("a€b", dest);
const small = new Uint8Array(2);
const r2 = new TextEncoder().encodeInto("€", small);
return [r, [...dest], r2];

// @name text-decoder-basics
const d = new TextDecoder();
return [d.encoding, d.fatal, d.ignoreBOM, d.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69])), d.decode(new Uint8Array([0xe2, 0x82, 0xac]).buffer), d.decode()];

// @name text-decoder-replacement
const d = new TextDecoder();
const cases = [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0x61, 0x80, 0x62], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf]];
return cases.map((b) => [...d.decode(new Uint8Array(b))].map((c) => c.codePointAt(0)));

// @name text-decoder-fatal-throws
try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { return [e.name, e.message, e.code]; }

// @name text-decoder-ignore-bom-and-labels
return [new TextDecoder("UTF8", { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])).length, new TextDecoder(" unicode-1-1-utf-8 ").encoding];

// @name text-decoder-views
const buf = new Uint8Array([0, 0x68, 0x69, 0]).buffer;
return [new TextDecoder().decode(new Uint8Array(buf, 1, 2)), new TextDecoder().decode(new DataView(buf, 1, 2))];

// @name btoa-atob
return [btoa(""), btoa("f"), btoa("fo"), btoa("foo"), btoa("\xff\xfe"), atob("Zm9v"), atob(" Zm 9v\n"), atob("Zg"), atob("Zg=="), btoa(123), atob(btoa("\u00e9"))];

// @name btoa-rejects-wide-characters
try { btoa("€"); } catch (e) { return [e.name, e.message, e.code, e instanceof DOMException, e instanceof Error]; }

// @name atob-rejects-bad-input
const out = [];
for (const s of ["Zm9v=", "Z", "Zm9v*", "Zm=9v"]) {
  try { out.push(atob(s)); } catch (e) { out.push(`${e.name}: ${e.message}`); }
}
return out;

// @name structured-clone-types
const src = { d: new Date(86400000), r: /a.b/gi, m: new Map([["k", { v: 1 }]]), s: new Set([1, "two"]), a: [1, , 3], n: null, u: undefined, big: 10n, nested: { deep: [{ x: 1 }] } };
const c = structuredClone(src);
return [c.d instanceof Date && c.d.getTime(), c.r.source, c.r.flags, c.m.get("k").v, [...c.s], c.a.length, 1 in c.a, c.n, "u" in c, String(c.big), c.nested.deep[0].x, c.nested !== src.nested];

// @name structured-clone-cycles-and-sharing
const shared = { v: 1 };
const o = { a: shared, b: shared };
o.self = o;
const c = structuredClone(o);
return [c.self === c, c.a === c.b, c.a !== shared];

// @name structured-clone-typed-arrays
const bytes = new Uint8Array([1, 2, 3, 4]);
const view = new Uint16Array(bytes.buffer, 2, 1);
const c = structuredClone({ bytes, view });
c.bytes[0] = 9;
return [bytes[0], c.view.buffer === c.bytes.buffer, c.view[0] === view[0], c.bytes instanceof Uint8Array];

// @name structured-clone-errors-and-classes
class Point { constructor() { this.x = 1; } get y() { return 2; } }
const e = new RangeError("out", { cause: "why" });
const c = structuredClone({ p: new Point(), e, t: new TypeError("t") });
return [c.p instanceof Point, Object.keys(c.p), c.e.name, c.e.message, c.e instanceof RangeError, c.e.cause, c.t.name];

// @name structured-clone-refuses-functions
const out = [];
for (const v of [() => 1, { f() {} }, Symbol("s"), Promise.resolve(1), new WeakMap()]) {
  try { structuredClone(v); out.push("cloned"); } catch (e) { out.push(`${e.name} ${e.constructor === DOMException} ${e.code}`); }
}
return out;

// @name structured-clone-needs-an-argument
try { structuredClone(); } catch (e) { return e.name; }

// @name crypto-random-uuid
const ids = new Set();
for (let i = 0; i < 50; i++) ids.add(crypto.randomUUID());
return [ids.size, [...ids].every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))];

// @name crypto-get-random-values
const a = new Uint32Array(8);
const same = crypto.getRandomValues(a) === a;
const out = [same, a.some((x) => x !== 0)];
for (const bad of [new Float64Array(2), new Uint8Array(65537), [1, 2]]) {
  try { crypto.getRandomValues(bad); out.push("ok"); } catch (e) { out.push(e.name); }
}
out.push(crypto.getRandomValues(new Uint8Array(65536)).length);
return out;

// @name dom-exception
const e = new DOMException("m", "AbortError");
const d = new DOMException();
return [e.name, e.message, e.code, e instanceof Error, d.name, d.message, d.code, DOMException.ABORT_ERR, DOMException.DATA_CLONE_ERR, Object.prototype.toString.call(e)];

// @name abort-controller
const c = new AbortController();
const seen = [];
c.signal.addEventListener("abort", (ev) => seen.push(ev.type));
c.signal.onabort = () => seen.push("onabort");
const before = c.signal.aborted;
c.abort();
c.abort("again");
return [before, c.signal.aborted, c.signal.reason.name, c.signal.reason.message, seen];

// @name abort-controller-custom-reason
const c = new AbortController();
c.abort("stop");
try { c.signal.throwIfAborted(); } catch (e) { return [e, c.signal.reason]; }

// @name abort-signal-static
const a = AbortSignal.abort();
const t = AbortSignal.timeout(10);
await new Promise((r) => setTimeout(r, 30));
const any = AbortSignal.any([new AbortController().signal, a]);
return [a.aborted, a.reason.name, t.aborted, t.reason.name, t.reason.message, any.aborted];

// @name abort-signal-illegal-constructor
try { new AbortSignal(); } catch (e) { return [e.name, e.message]; }

// @name event-target
const t = new EventTarget();
const seen = [];
const h = (e) => seen.push([e.type, e.target === t]);
t.addEventListener("ping", h);
t.addEventListener("ping", h);
t.addEventListener("ping", () => seen.push("once"), { once: true });
t.dispatchEvent(new Event("ping"));
t.dispatchEvent(new Event("ping"));
t.removeEventListener("ping", h);
t.dispatchEvent(new Event("ping"));
const ev = new Event("x", { cancelable: true });
ev.preventDefault();
return [seen, ev.defaultPrevented, t.dispatchEvent(ev)];

// @name console-count-and-group
console.count();
console.count("x");
console.count();
console.countReset();
console.count();
console.group("outer");
console.log("a\nb");
console.group();
console.info("deep");
console.groupEnd();
console.groupEnd();
console.log("back");
return null;

// @name console-assert
console.assert(true, "never");
console.assert(false, "failed %s");
console.assert(false, { a: 1 });
console.assert(0);
return null;

// @name console-table-objects
console.table([{ name: "alice", n: 1 }, { name: "bob", extra: true }]);
return null;

// @name console-table-values-and-columns
console.table(["a", 2, null]);
console.table({ r1: { a: 1, b: 2 }, r2: { a: 3, b: 4 } }, ["b"]);
console.table("not tabular");
return null;

// @name console-dir-and-time
console.dir("plain");
console.time("t");
console.timeEnd("t");
return null;

// @name globals-exist
return ["URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "structuredClone", "crypto", "DOMException", "AbortController", "AbortSignal", "Event", "EventTarget"].map((n) => typeof globalThis[n]);
