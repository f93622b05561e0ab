// Web-platform built-ins that agent code reaches for: URL and URLSearchParams (WHATWG parsing in the
// host, with the `url` crate), TextEncoder/TextDecoder (UTF-8), atob/btoa, structuredClone, crypto
// (randomUUID, getRandomValues: not for secrets), DOMException, EventTarget/Event, AbortController and
// AbortSignal, and the layout of console.table. Node's behaviour is the reference.
//
// The completion value is a factory; the prelude calls it once, on the first use of any of these names
// or of a console method other than log/info/warn/error/debug, so executions that use none of them pay
// nothing. It gets the host's `url` function, the prelude's timers and its console output; everything
// else it uses is captured when it runs.
"use strict";
(function web(host, consoleSupport) {
  const G = globalThis;
  const { url: hostUrl, setTimer } = host;
  const StringOf = String;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const defineProperty = Object.defineProperty;
  const freeze = Object.freeze;
  const getPrototypeOf = Object.getPrototypeOf;
  const isArray = Array.isArray;
  const fromCharCode = String.fromCharCode;
  const RealTypeError = TypeError;
  const RealRangeError = RangeError;
  const RealError = Error;
  const wellFormed = String.prototype.toWellFormed;
  const toUSV = (v) => wellFormed.call(StringOf(v));
  const random = Math.random;
  const floor = Math.floor;
  const TypedArray = getPrototypeOf(Uint8Array);
  const typedArrayTag = (v) => {
    try {
      return Object.getOwnPropertyDescriptor(TypedArray.prototype, Symbol.toStringTag).get.call(v);
    } catch (_) {
      return undefined;
    }
  };
  const isArrayBuffer = (v) => {
    try {
      Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get.call(v);
      return true;
    } catch (_) {
      return false;
    }
  };

  // --- DOMException --------------------------------------------------------------------------------
  const codes = {
    IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
    NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
    SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
    TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21,
    QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
  };
  class DOMException extends RealError {
    #name;
    constructor(message = "", options = "Error") {
      super(StringOf(message));
      const name = options !== null && typeof options === "object" ? StringOf(options.name ?? "Error") : StringOf(options);
      this.#name = name;
      if (options !== null && typeof options === "object" && "cause" in options) {
        defineProperty(this, "cause", { value: options.cause, writable: true, configurable: true });
      }
    }
    get name() {
      return this.#name;
    }
    get code() {
      return codes[this.#name] ?? 0;
    }
    get [Symbol.toStringTag]() {
      return "DOMException";
    }
  }
  for (const [name, code] of Object.entries(codes)) {
    const constant = name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase().replace(/_ERROR$/, "_ERR");
    defineProperty(DOMException, constant, { value: code, enumerable: true });
  }

  // --- atob / btoa ---------------------------------------------------------------------------------
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const b64index = new Map();
  for (let i = 0; i < 64; i++) b64index.set(B64[i], i);
  const btoa = function btoa(data) {
    if (arguments.length === 0) throw new RealTypeError('The "data" argument must be specified');
    const s = StringOf(data);
    let out = "";
    for (let i = 0; i < s.length; i += 3) {
      const c = [s.charCodeAt(i), s.charCodeAt(i + 1), s.charCodeAt(i + 2)];
      for (let k = 0; k < 3 && i + k < s.length; k++) {
        if (c[k] > 0xff) throw new DOMException("Invalid character", "InvalidCharacterError");
      }
      const n = (c[0] << 16) | ((c[1] || 0) << 8) | (c[2] || 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
      out += i + 1 < s.length ? B64[(n >> 6) & 63] : "=";
      out += i + 2 < s.length ? B64[n & 63] : "=";
    }
    return out;
  };
  // The forgiving-base64 decode of the Infra standard, with Node's error messages.
  const WHITESPACE = "\t\n\f\r ";
  const atob = function atob(data) {
    if (arguments.length === 0) throw new RealTypeError('The "data" argument must be specified');
    const input = StringOf(data);
    const invalid = () => new DOMException("Invalid character", "InvalidCharacterError");
    let significant = 0;
    let equals = 0;
    for (const ch of input) {
      if (WHITESPACE.includes(ch)) continue;
      significant++;
      if (ch === "=") {
        equals++;
        if (equals > 2) throw invalid();
      } else if (!b64index.has(ch) || equals) {
        throw invalid();
      }
    }
    let remainder = significant % 4;
    if (!remainder) remainder = (significant - equals) % 4;
    else if (equals) throw invalid();
    if (remainder === 1) {
      throw new DOMException("The string to be decoded is not correctly encoded.", "InvalidCharacterError");
    }
    let out = "";
    let buffer = 0;
    let bits = 0;
    for (const ch of input) {
      const v = b64index.get(ch);
      if (v === undefined) continue;
      buffer = ((buffer << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += fromCharCode((buffer >> bits) & 0xff);
      }
    }
    return out;
  };

  // --- TextEncoder / TextDecoder (UTF-8) -----------------------------------------------------------
  const encodeUtf8 = (input) => {
    const s = toUSV(input);
    const bytes = [];
    for (const ch of s) {
      const cp = ch.codePointAt(0);
      if (cp < 0x80) bytes.push(cp);
      else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
      else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
      else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    }
    return new Uint8Array(bytes);
  };
  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return encodeUtf8(input);
    }
    encodeInto(source, destination) {
      if (typedArrayTag(destination) !== "Uint8Array") {
        throw new RealTypeError('The "dest" argument must be an instance of Uint8Array.');
      }
      let read = 0;
      let written = 0;
      for (const ch of toUSV(source)) {
        const bytes = encodeUtf8(ch);
        if (written + bytes.length > destination.length) break;
        destination.set(bytes, written);
        written += bytes.length;
        read += ch.length;
      }
      return { read, written };
    }
  }
  const bytesOf = (input) => {
    if (input === undefined) return new Uint8Array(0);
    if (isArrayBuffer(input)) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new RealTypeError(
      'The "input" argument must be an instance of ArrayBuffer or ArrayBufferView.' +
        ` Received ${input === null ? "null" : typeof input}`,
    );
  };
  // The WHATWG UTF-8 decoder: each maximal invalid subpart becomes one U+FFFD.
  const decodeUtf8 = (bytes, fatal) => {
    let out = "";
    let i = 0;
    const n = bytes.length;
    const bad = () => {
      if (fatal) {
        const e = new RealTypeError("The encoded data was not valid for encoding utf-8");
        e.code = "ERR_ENCODING_INVALID_ENCODED_DATA";
        throw e;
      }
      out += "\uFFFD";
    };
    while (i < n) {
      const b = bytes[i];
      if (b < 0x80) {
        out += fromCharCode(b);
        i++;
        continue;
      }
      let need;
      let cp;
      let lower = 0x80;
      let upper = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
        cp = b & 0x1f;
      } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        cp = b & 0xf;
        if (b === 0xe0) lower = 0xa0;
        if (b === 0xed) upper = 0x9f;
      } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        cp = b & 0x7;
        if (b === 0xf0) lower = 0x90;
        if (b === 0xf4) upper = 0x8f;
      } else {
        bad();
        i++;
        continue;
      }
      let j = 1;
      for (; j <= need; j++) {
        const c = bytes[i + j];
        if (i + j >= n || c < lower || c > upper) break;
        lower = 0x80;
        upper = 0xbf;
        cp = (cp << 6) | (c & 63);
      }
      if (j <= need) {
        bad();
        i += j;
        continue;
      }
      out += String.fromCodePoint(cp);
      i += need + 1;
    }
    return out;
  };
  const UTF8_LABELS = ["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"];
  class TextDecoder {
    #fatal;
    #ignoreBOM;
    constructor(label = "utf-8", options = {}) {
      const l = StringOf(label).trim().toLowerCase();
      if (!UTF8_LABELS.includes(l)) {
        const e = new RealRangeError(`The "${StringOf(label)}" encoding is not supported`);
        e.code = "ERR_ENCODING_NOT_SUPPORTED";
        throw e;
      }
      this.#fatal = Boolean(options?.fatal);
      this.#ignoreBOM = Boolean(options?.ignoreBOM);
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input, options = {}) {
      if (options?.stream) throw new RealTypeError("TextDecoder streaming is not supported in the sandbox");
      let bytes = bytesOf(input);
      if (!this.#ignoreBOM && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
        bytes = bytes.subarray(3);
      }
      return decodeUtf8(bytes, this.#fatal);
    }
  }

  // --- URL / URLSearchParams -----------------------------------------------------------------------
  const invalidUrl = (input) => {
    const e = new RealTypeError("Invalid URL");
    e.code = "ERR_INVALID_URL";
    e.input = input;
    return e;
  };
  const INTERNAL = Symbol("internal");
  class URLSearchParams {
    #list = [];
    #url = null;
    constructor(init = undefined) {
      if (init === INTERNAL) return;
      if (init === undefined || init === null) return;
      if (typeof init === "object" || typeof init === "function") {
        if (typeof init[Symbol.iterator] === "function") {
          for (const pair of init) {
            const p = [...pair];
            if (p.length !== 2) {
              throw new RealTypeError("Each query pair must be an iterable [name, value] tuple");
            }
            this.#list.push([toUSV(p[0]), toUSV(p[1])]);
          }
        } else {
          for (const key of Reflect.ownKeys(init)) {
            if (typeof key !== "string") continue;
            const d = Object.getOwnPropertyDescriptor(init, key);
            if (d && d.enumerable) this.#list.push([toUSV(key), toUSV(init[key])]);
          }
        }
        return;
      }
      let s = toUSV(init);
      if (s.startsWith("?")) s = s.slice(1);
      this.#list = parse(hostUrl("formParse", s));
    }
    static #attach(params, url, query) {
      params.#url = url;
      params.#list = parse(hostUrl("formParse", query));
    }
    static attach(url, query) {
      const p = new URLSearchParams(INTERNAL);
      URLSearchParams.#attach(p, url, query);
      return p;
    }
    static reparse(params, query) {
      params.#list = parse(hostUrl("formParse", query));
    }
    #update() {
      if (this.#url) setQuery(this.#url, this.toString());
    }
    get size() {
      return this.#list.length;
    }
    append(name, value) {
      this.#list.push([toUSV(name), toUSV(value)]);
      this.#update();
    }
    delete(name, value) {
      const n = toUSV(name);
      const v = value === undefined ? undefined : toUSV(value);
      this.#list = this.#list.filter(([k, x]) => !(k === n && (v === undefined || x === v)));
      this.#update();
    }
    get(name) {
      const n = toUSV(name);
      const hit = this.#list.find(([k]) => k === n);
      return hit ? hit[1] : null;
    }
    getAll(name) {
      const n = toUSV(name);
      return this.#list.filter(([k]) => k === n).map(([, v]) => v);
    }
    has(name, value) {
      const n = toUSV(name);
      const v = value === undefined ? undefined : toUSV(value);
      return this.#list.some(([k, x]) => k === n && (v === undefined || x === v));
    }
    set(name, value) {
      const n = toUSV(name);
      const v = toUSV(value);
      const i = this.#list.findIndex(([k]) => k === n);
      if (i < 0) this.#list.push([n, v]);
      else {
        this.#list[i][1] = v;
        this.#list = this.#list.filter(([k], j) => j <= i || k !== n);
      }
      this.#update();
    }
    sort() {
      // Stable, by UTF-16 code units of the names.
      const indexed = this.#list.map((p, i) => [p, i]);
      indexed.sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]));
      this.#list = indexed.map(([p]) => p);
      this.#update();
    }
    forEach(callback, thisArg = undefined) {
      if (typeof callback !== "function") throw new RealTypeError('The "callback" argument must be of type function');
      for (let i = 0; i < this.#list.length; i++) {
        const [k, v] = this.#list[i];
        callback.call(thisArg, v, k, this);
      }
    }
    *entries() {
      for (let i = 0; i < this.#list.length; i++) yield [this.#list[i][0], this.#list[i][1]];
    }
    *keys() {
      for (let i = 0; i < this.#list.length; i++) yield this.#list[i][0];
    }
    *values() {
      for (let i = 0; i < this.#list.length; i++) yield this.#list[i][1];
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return hostUrl("formSerialize", stringify(this.#list));
    }
    get [Symbol.toStringTag]() {
      return "URLSearchParams";
    }
  }

  class URL {
    #c;
    #params = null;
    constructor(url, base = undefined) {
      if (arguments.length === 0) throw new RealTypeError('The "url" argument must be specified');
      const input = toUSV(url);
      const r = base === undefined ? hostUrl("parse", input) : hostUrl("parse", input, toUSV(base));
      if (r == null) throw invalidUrl(input);
      this.#c = parse(r);
    }
    static canParse(url, base = undefined) {
      const input = toUSV(url);
      return (base === undefined ? hostUrl("parse", input) : hostUrl("parse", input, toUSV(base))) != null;
    }
    static parse(url, base = undefined) {
      try {
        return base === undefined ? new URL(url) : new URL(url, base);
      } catch (_) {
        return null;
      }
    }
    static setQuery(u, query) {
      u.#set("search", query === "" ? "" : `?${query}`, false);
    }
    #set(part, value, reparse = true) {
      const r = hostUrl("set", this.#c.href, part, toUSV(value));
      if (r == null) throw invalidUrl(toUSV(value));
      this.#c = parse(r);
      if (reparse && this.#params) reparseParams(this.#params, this.#c.search.slice(1));
    }
    get href() {
      return this.#c.href;
    }
    set href(value) {
      this.#set("href", value);
    }
    get origin() {
      return this.#c.origin;
    }
    get protocol() {
      return this.#c.protocol;
    }
    set protocol(value) {
      this.#set("protocol", value);
    }
    get username() {
      return this.#c.username;
    }
    set username(value) {
      this.#set("username", value);
    }
    get password() {
      return this.#c.password;
    }
    set password(value) {
      this.#set("password", value);
    }
    get host() {
      return this.#c.host;
    }
    set host(value) {
      this.#set("host", value);
    }
    get hostname() {
      return this.#c.hostname;
    }
    set hostname(value) {
      this.#set("hostname", value);
    }
    get port() {
      return this.#c.port;
    }
    set port(value) {
      this.#set("port", value);
    }
    get pathname() {
      return this.#c.pathname;
    }
    set pathname(value) {
      this.#set("pathname", value);
    }
    get search() {
      return this.#c.search;
    }
    set search(value) {
      this.#set("search", value);
    }
    get hash() {
      return this.#c.hash;
    }
    set hash(value) {
      this.#set("hash", value);
    }
    get searchParams() {
      if (!this.#params) this.#params = attachParams(this, this.#c.search.slice(1));
      return this.#params;
    }
    toString() {
      return this.#c.href;
    }
    toJSON() {
      return this.#c.href;
    }
    get [Symbol.toStringTag]() {
      return "URL";
    }
  }
  const setQuery = URL.setQuery;
  const attachParams = URLSearchParams.attach;
  const reparseParams = URLSearchParams.reparse;
  delete URL.setQuery;
  delete URLSearchParams.attach;
  delete URLSearchParams.reparse;

  // --- structuredClone -----------------------------------------------------------------------------
  const cannotClone = (v) => {
    let what;
    if (typeof v === "function" || typeof v === "symbol") what = StringOf(v);
    else {
      const ctor = v?.constructor?.name;
      what = `#<${typeof ctor === "string" && ctor ? ctor : "Object"}>`;
    }
    return new DOMException(`${what} could not be cloned.`, "DataCloneError");
  };
  const ERROR_NAMES = ["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError"];
  const structuredClone = function structuredClone(value, options = undefined) {
    if (arguments.length === 0) throw new RealTypeError('The "value" argument must be specified');
    if (options !== undefined && options !== null && options.transfer !== undefined) {
      const t = [...options.transfer];
      if (t.length > 0) throw new DOMException("Transferring objects is not supported in the sandbox", "DataCloneError");
    }
    const seen = new Map();
    const clone = (v) => {
      const t = typeof v;
      if (t === "function" || t === "symbol") throw cannotClone(v);
      if (v === null || t !== "object") return v;
      if (seen.has(v)) return seen.get(v);
      const tag = Object.prototype.toString.call(v);
      let out;
      if (isArray(v)) {
        out = new Array(v.length);
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      if (tag === "[object Date]") out = new Date(Date.prototype.getTime.call(v));
      else if (tag === "[object RegExp]") out = new RegExp(v.source, v.flags);
      else if (tag === "[object Boolean]") out = new Boolean(Boolean.prototype.valueOf.call(v));
      else if (tag === "[object Number]") out = new Number(Number.prototype.valueOf.call(v));
      else if (tag === "[object String]") out = new String(String.prototype.valueOf.call(v));
      else if (tag === "[object BigInt]") out = Object(BigInt.prototype.valueOf.call(v));
      if (out !== undefined) {
        seen.set(v, out);
        return out;
      }
      if (isArrayBuffer(v)) {
        out = v.slice(0);
        seen.set(v, out);
        return out;
      }
      if (ArrayBuffer.isView(v)) {
        const buffer = clone(v.buffer);
        const Ctor = tag === "[object DataView]" ? DataView : G[typedArrayTag(v)];
        out = tag === "[object DataView]"
          ? new DataView(buffer, v.byteOffset, v.byteLength)
          : new Ctor(buffer, v.byteOffset, v.length);
        seen.set(v, out);
        return out;
      }
      if (tag === "[object Map]") {
        out = new Map();
        seen.set(v, out);
        for (const [k, x] of Map.prototype.entries.call(v)) out.set(clone(k), clone(x));
        return out;
      }
      if (tag === "[object Set]") {
        out = new Set();
        seen.set(v, out);
        for (const x of Set.prototype.values.call(v)) out.add(clone(x));
        return out;
      }
      if (tag === "[object Error]" || v instanceof RealError) {
        const name = ERROR_NAMES.includes(v.name) ? v.name : "Error";
        out = new G[name]();
        seen.set(v, out);
        if (Object.prototype.hasOwnProperty.call(v, "message")) {
          defineProperty(out, "message", { value: StringOf(v.message), writable: true, configurable: true });
        } else delete out.message;
        if (typeof v.stack === "string") {
          defineProperty(out, "stack", { value: v.stack, writable: true, configurable: true });
        }
        if (Object.prototype.hasOwnProperty.call(v, "cause")) {
          defineProperty(out, "cause", { value: clone(v.cause), writable: true, configurable: true });
        }
        return out;
      }
      if (
        tag !== "[object Object]" &&
        tag !== "[object Arguments]" ||
        v instanceof Promise ||
        v instanceof WeakMap ||
        v instanceof WeakSet ||
        typeof WeakRef === "function" && v instanceof WeakRef
      ) {
        throw cannotClone(v);
      }
      out = {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = clone(v[k]);
      return out;
    };
    return clone(value);
  };
  // --- crypto (not for secrets: Math.random underneath) --------------------------------------------
  const getRandomValues = function getRandomValues(array) {
    const tag = typedArrayTag(array);
    if (tag === undefined || tag === "Float32Array" || tag === "Float64Array" || tag === "Float16Array") {
      throw new DOMException(
        'The data argument must be an integer-type TypedArray',
        "TypeMismatchError",
      );
    }
    if (array.byteLength > 65536) {
      throw new DOMException(
        `The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (65536)`,
        "QuotaExceededError",
      );
    }
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    for (let i = 0; i < bytes.length; i++) bytes[i] = floor(random() * 256);
    return array;
  };
  const HEX = [];
  for (let i = 0; i < 256; i++) HEX.push((i + 0x100).toString(16).slice(1));
  const randomUUID = function randomUUID() {
    const b = getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = (i) => HEX[b[i]];
    return (
      h(0) + h(1) + h(2) + h(3) + "-" + h(4) + h(5) + "-" + h(6) + h(7) + "-" + h(8) + h(9) + "-" +
      h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
    );
  };
  const crypto = freeze({ getRandomValues, randomUUID });

  // --- Event, EventTarget, AbortController, AbortSignal --------------------------------------------
  class Event {
    #type;
    #target = null;
    #defaultPrevented = false;
    #cancelable;
    constructor(type, options = {}) {
      if (arguments.length === 0) throw new RealTypeError('The "type" argument must be specified');
      this.#type = StringOf(type);
      this.#cancelable = Boolean(options?.cancelable);
    }
    get type() {
      return this.#type;
    }
    get target() {
      return this.#target;
    }
    get currentTarget() {
      return this.#target;
    }
    get cancelable() {
      return this.#cancelable;
    }
    get defaultPrevented() {
      return this.#cancelable && this.#defaultPrevented;
    }
    preventDefault() {
      this.#defaultPrevented = true;
    }
    static setTarget(e, t) {
      e.#target = t;
    }
  }
  const setEventTarget = Event.setTarget;
  delete Event.setTarget;
  class EventTarget {
    #listeners = new Map();
    addEventListener(type, listener, options = {}) {
      if (listener === null || listener === undefined) return;
      const t = StringOf(type);
      const list = this.#listeners.get(t) ?? [];
      if (list.some((l) => l.listener === listener)) return;
      const once = typeof options === "object" && options !== null && Boolean(options.once);
      const signal = typeof options === "object" && options !== null ? options.signal : undefined;
      if (signal?.aborted) return;
      list.push({ listener, once });
      this.#listeners.set(t, list);
      signal?.addEventListener("abort", () => this.removeEventListener(t, listener), { once: true });
    }
    removeEventListener(type, listener) {
      const t = StringOf(type);
      const list = this.#listeners.get(t);
      if (list) this.#listeners.set(t, list.filter((l) => l.listener !== listener));
    }
    dispatchEvent(event) {
      if (!(event instanceof Event)) throw new RealTypeError('The "event" argument must be an instance of Event.');
      setEventTarget(event, this);
      const list = [...(this.#listeners.get(event.type) ?? [])];
      for (const l of list) {
        if (l.once) this.removeEventListener(event.type, l.listener);
        if (typeof l.listener === "function") l.listener.call(this, event);
        else if (l.listener && typeof l.listener.handleEvent === "function") l.listener.handleEvent(event);
      }
      return !event.defaultPrevented;
    }
  }
  const abortError = () => new DOMException("This operation was aborted", "AbortError");
  class AbortSignal extends EventTarget {
    #aborted = false;
    #reason = undefined;
    #onabort = null;
    #handlerAdded = false;
    constructor(key) {
      super();
      if (key !== INTERNAL) throw new RealTypeError("Illegal constructor");
    }
    // An event handler attribute: its listener takes its place among the others when first set.
    get onabort() {
      return this.#onabort;
    }
    set onabort(handler) {
      this.#onabort = typeof handler === "function" ? handler : null;
      if (this.#onabort && !this.#handlerAdded) {
        this.#handlerAdded = true;
        this.addEventListener("abort", (e) => this.#onabort?.call(this, e));
      }
    }
    get aborted() {
      return this.#aborted;
    }
    get reason() {
      return this.#reason;
    }
    throwIfAborted() {
      if (this.#aborted) throw this.#reason;
    }
    static abort(reason = undefined) {
      const s = new AbortSignal(INTERNAL);
      AbortSignal.#fire(s, reason === undefined ? abortError() : reason, false);
      return s;
    }
    static timeout(ms) {
      const s = new AbortSignal(INTERNAL);
      const delay = Number(ms);
      setTimer(
        () => AbortSignal.#fire(s, new DOMException("The operation was aborted due to timeout", "TimeoutError")),
        delay > 0 ? delay : 0,
        false,
      );
      return s;
    }
    static any(signals) {
      const s = new AbortSignal(INTERNAL);
      for (const other of signals) {
        if (other.aborted) {
          AbortSignal.#fire(s, other.reason, false);
          return s;
        }
      }
      for (const other of signals) other.addEventListener("abort", () => AbortSignal.#fire(s, other.reason), { once: true });
      return s;
    }
    static #fire(s, reason, dispatch = true) {
      if (s.#aborted) return;
      s.#aborted = true;
      s.#reason = reason;
      if (dispatch) s.dispatchEvent(new Event("abort"));
    }
    static fire(s, reason) {
      AbortSignal.#fire(s, reason);
    }
  }
  const fireAbort = AbortSignal.fire;
  delete AbortSignal.fire;
  class AbortController {
    #signal = new AbortSignal(INTERNAL);
    get signal() {
      return this.#signal;
    }
    abort(reason = undefined) {
      fireAbort(this.#signal, reason === undefined ? abortError() : reason);
    }
  }

  // --- console.table -------------------------------------------------------------------------------
  // Node's layout (lib/internal/cli_table.js, Node 20 and later): a box-drawn table, values formatted as
  // util.inspect would (strings quoted), each cell aligned left.
  const inspectCell = (v) => {
    if (typeof v === "string") return `'${v.replace(/'/g, "\\'")}'`;
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "function") return `[Function: ${v.name || "(anonymous)"}]`;
    if (v === null || typeof v !== "object") return StringOf(v);
    if (isArray(v)) return `[ ${v.map(inspectCell).join(", ")} ]`;
    try {
      const entries = Object.keys(v).map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : `'${k}'`}: ${inspectCell(v[k])}`);
      return entries.length ? `{ ${entries.join(", ")} }` : "{}";
    } catch (_) {
      return "[Object]";
    }
  };
  const width = (s) => [...s].length;
  const renderRow = (row, widths) => {
    let out = "│";
    for (let i = 0; i < row.length; i++) {
      const cell = row[i];
      out += ` ${cell}${" ".repeat(widths[i] - width(cell) - 1)}`;
      if (i !== row.length - 1) out += "│";
    }
    return out + "│";
  };
  const table = (data, columns) => {
    if (data === null || typeof data !== "object") return null;
    const indexKey = "(index)";
    const valuesKey = "Values";
    const keys = [];
    const rows = [];
    const entries = data instanceof Map ? [...data.entries()] : Object.keys(data).map((k) => [k, data[k]]);
    const isMap = data instanceof Map;
    let hasValues = false;
    for (const [k, v] of entries) {
      const row = { [indexKey]: isMap ? inspectCell(k) : StringOf(k) };
      if (v !== null && typeof v === "object") {
        for (const c of columns ?? Object.keys(v)) {
          if (columns !== undefined && !(c in v)) continue;
          if (!keys.includes(c)) keys.push(c);
          row[c] = inspectCell(v[c]);
        }
      } else {
        hasValues = true;
        row[valuesKey] = inspectCell(v);
      }
      rows.push(row);
    }
    const head = [indexKey, ...(columns ?? keys), ...(hasValues ? [valuesKey] : [])];
    const matrix = rows.map((r) => head.map((h) => r[h] ?? ""));
    const widths = head.map((h, i) => Math.max(width(h), ...matrix.map((r) => width(r[i]))) + 2);
    const divider = widths.map((w) => "─".repeat(w));
    let out = `┌${divider.join("┬")}┐\n${renderRow(head, widths)}\n├${divider.join("┼")}┤\n`;
    for (const r of matrix) out += `${renderRow(r, widths)}\n`;
    return out + `└${divider.join("┴")}┘`;
  };

  // --- console, beyond log/info/warn/error/debug (which the prelude keeps) -------------------------
  const { emit, format, show, now, group } = consoleSupport;
  // Node's console.time layout (lib/internal/util/debuglog.js formatTime).
  const formatTime = (ms) => {
    if (ms >= 60000) {
      const h = floor(ms / 3600000);
      const m = floor((ms % 3600000) / 60000);
      const [sec, milli] = ((ms % 60000) / 1000).toFixed(3).split(".");
      const pad = (n) => StringOf(n).padStart(2, "0");
      return h !== 0 ? `${h}:${pad(m)}:${pad(sec)}.${milli} (h:mm:ss.mmm)` : `${m}:${pad(sec)}.${milli} (m:ss.mmm)`;
    }
    if (ms >= 1000) return `${(ms / 1000).toFixed(3)}s`;
    return `${Number(ms.toFixed(3))}ms`;
  };
  const counts = new Map();
  const started = new Map();
  const label = (l) => (l === undefined ? "default" : StringOf(l));
  const console = {
    trace: (...args) => emit("error", `Trace${args.length ? `: ${format(args)}` : ""}`),
    dir: (v) => emit("log", inspectCell(v)),
    dirxml: (...args) => emit("log", format(args)),
    assert: (condition, ...args) => {
      if (condition) return;
      let first = "";
      try {
        first = args.length === 0 ? "" : `: ${StringOf(args[0])}`;
      } catch (_) {
        first = ": [unprintable]";
      }
      args[0] = `Assertion failed${first}`;
      emit("warn", format(args));
    },
    count: (l) => {
      const k = label(l);
      const n = (counts.get(k) ?? 0) + 1;
      counts.set(k, n);
      emit("log", `${k}: ${n}`);
    },
    countReset: (l) => {
      const k = label(l);
      if (!counts.has(k)) emit("warn", `Warning: Count for '${k}' does not exist`);
      else counts.set(k, 0);
    },
    time: (l) => {
      const k = label(l);
      if (started.has(k)) emit("warn", `Warning: Label '${k}' already exists for console.time()`);
      else started.set(k, now());
    },
    timeLog: (l, ...data) => {
      const k = label(l);
      if (!started.has(k)) return emit("warn", `Warning: No such label '${k}' for console.timeLog()`);
      emit("log", format([`${k}: ${formatTime(now() - started.get(k))}`, ...data]));
    },
    timeEnd: (l) => {
      const k = label(l);
      if (!started.has(k)) return emit("warn", `Warning: No such label '${k}' for console.timeEnd()`);
      emit("log", `${k}: ${formatTime(now() - started.get(k))}`);
      started.delete(k);
    },
    group: (...args) => {
      if (args.length) emit("log", format(args));
      group(1);
    },
    groupCollapsed: (...args) => {
      if (args.length) emit("log", format(args));
      group(1);
    },
    groupEnd: () => {
      group(-1);
    },
    table: (data, columns) => {
      const text = table(data, columns === undefined ? undefined : [...columns].map((c) => StringOf(c)));
      emit("log", text === null ? show(data) : text);
    },
  };

  return {
    console, DOMException, atob, btoa, TextEncoder, TextDecoder, URL, URLSearchParams, structuredClone, crypto,
    Event, EventTarget, AbortController, AbortSignal,
  };
})
