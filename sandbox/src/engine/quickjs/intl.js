// ECMA-402 `Intl` for the sandbox: DateTimeFormat (IANA time zones, DST included), NumberFormat,
// Collator, PluralRules, ListFormat, RelativeTimeFormat, getCanonicalLocales and supportedLocalesOf, and
// the locale-aware methods of Date, Number and String that go through them. The data and the algorithms
// are ICU4X's compiled data in the host (`intl.rs`); this file reads and checks the options as ECMA-402
// says, with Node's error messages, and keeps each object's resolved options. Node's output is the
// reference (executor/tests/intl).
//
// The completion value is a factory; the prelude calls it once, on the first use of `Intl` or of one of
// the locale-aware methods, so executions that use none of them pay nothing. It gets the host's `intl`
// function and the prelude's clock; everything else it uses is captured when it runs.
"use strict";
(function intl(hostIntl, now) {
  const StringOf = String;
  const NumberOf = Number;
  const ObjectOf = Object;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const defineProperty = Object.defineProperty;
  const freeze = Object.freeze;
  const create = Object.create;
  const isArray = Array.isArray;
  const RealTypeError = TypeError;
  const RealRangeError = RangeError;
  const WeakMapOf = WeakMap;
  const weakGet = WeakMap.prototype.get;
  const weakSet = WeakMap.prototype.set;
  const dateValue = Date.prototype.getTime;
  const numberValue = Number.prototype.valueOf;
  const isFinite = Number.isFinite;
  const floor = Math.floor;
  const abs = Math.abs;
  const push = (a, v) => {
    a[a.length] = v;
  };

  // The host works on JSON strings; it throws RangeError/TypeError itself for what only it can check
  // (a locale's syntax, a time zone, a currency code).
  const host = (op, a, b, c) => hostIntl(op, a, b, c);
  const hostJson = (op, a, b, c) => parse(host(op, a, b, c));

  // --- Abstract operations -------------------------------------------------------------------------
  const canonicalizeLocaleList = (locales) => {
    if (locales === undefined) return [];
    const tags = [];
    if (typeof locales === "string") {
      push(tags, locales);
    } else {
      if (locales === null) throw new RealTypeError("Cannot convert undefined or null to object");
      const o = ObjectOf(locales);
      const len = o.length >>> 0;
      if (len > 1000) throw new RealRangeError("Incorrect locale information provided");
      for (let k = 0; k < len; k++) {
        if (!(k in o)) continue;
        const v = o[k];
        if (typeof v !== "string" && (typeof v !== "object" || v === null)) {
          throw new RealTypeError("Language ID should be string or object.");
        }
        push(tags, StringOf(v));
      }
    }
    return hostJson("canonicalize", stringify(tags));
  };
  const getOptionsObject = (options) => {
    if (options === undefined) return create(null);
    if (options === null) throw new RealTypeError("Cannot convert undefined or null to object");
    return ObjectOf(options);
  };
  const getOption = (options, prop, type, values, fallback, ctor) => {
    let value = options[prop];
    if (value === undefined) return fallback;
    if (type === "boolean") return !!value;
    value = StringOf(value);
    if (values !== undefined) {
      let ok = false;
      for (const v of values) if (v === value) ok = true;
      if (!ok) throw new RealRangeError(`Value ${value} out of range for ${ctor} options property ${prop}`);
    }
    return value;
  };
  const getNumberOption = (options, prop, min, max, fallback) => {
    const value = options[prop];
    if (value === undefined) return fallback;
    const n = NumberOf(value);
    if (!(n >= min && n <= max)) throw new RealRangeError(`${prop} value is out of range.`);
    return floor(n);
  };
  const localeMatcher = (options, ctor) =>
    getOption(options, "localeMatcher", "string", ["lookup", "best fit"], "best fit", ctor);
  const supportedLocalesOf = (ctor) =>
    function supportedLocalesOf(locales, options) {
      const requested = canonicalizeLocaleList(locales);
      localeMatcher(getOptionsObject(options), ctor);
      return hostJson("supported", stringify(requested));
    };
  // A resolved-options object as a plain, fresh object (the caller may change it freely).
  const copy = (record) => {
    const out = {};
    for (const k in record) {
      if (k === "k" || k === "opts") continue;
      const v = record[k];
      out[k] = isArray(v) ? [...v] : v;
    }
    return out;
  };

  // The internal slots of every Intl object: its resolved options and their JSON (the host's cache key).
  const slots = new WeakMapOf();
  const slot = (o, kind, method) => {
    const s = o !== null && typeof o === "object" ? weakGet.call(slots, o) : undefined;
    if (s === undefined || s.kind !== kind) {
      throw new RealTypeError(`Method ${method} called on incompatible receiver ${show(o)}`);
    }
    return s;
  };
  const show = (v) => {
    try {
      return typeof v === "string" ? v : StringOf(v);
    } catch (_) {
      return "[object]";
    }
  };
  const init = (o, kind, spec) => {
    const key = host("resolve", stringify(spec));
    weakSet.call(slots, o, { kind, key, resolved: parse(key), bound: undefined });
    return o;
  };
  // `Intl.X(...)` without `new` constructs, as for the ECMA-402 constructors that allow it.
  const construct = (self, target, C, args) => (target === undefined ? new C(...args) : self);
  const setup = (C, name, methods, getters) => {
    const proto = C.prototype;
    for (const [k, f] of methods) {
      defineProperty(proto, k, { value: f, writable: true, enumerable: false, configurable: true });
    }
    for (const [k, f] of getters) {
      defineProperty(proto, k, { get: f, enumerable: false, configurable: true });
    }
    defineProperty(proto, Symbol.toStringTag, { value: `Intl.${name}`, configurable: true });
    defineProperty(C, "supportedLocalesOf", {
      value: supportedLocalesOf(`Intl.${name}`),
      writable: true,
      enumerable: false,
      configurable: true,
    });
  };
  const toNumberValue = (x) => (typeof x === "bigint" ? NumberOf(x) : NumberOf(x));

  // --- DateTimeFormat ------------------------------------------------------------------------------
  const DTF = "Intl.DateTimeFormat";
  const COMPONENTS = [
    ["weekday", ["narrow", "short", "long"]],
    ["era", ["narrow", "short", "long"]],
    ["year", ["2-digit", "numeric"]],
    ["month", ["2-digit", "numeric", "narrow", "short", "long"]],
    ["day", ["2-digit", "numeric"]],
    ["dayPeriod", ["narrow", "short", "long"]],
    ["hour", ["2-digit", "numeric"]],
    ["minute", ["2-digit", "numeric"]],
    ["second", ["2-digit", "numeric"]],
    ["fractionalSecondDigits", null],
    ["timeZoneName", ["short", "long", "shortOffset", "longOffset", "shortGeneric", "longGeneric"]],
  ];
  const STYLES = ["full", "long", "medium", "short"];
  const dateTimeSpec = (locales, options, required, defaults) => {
    const requested = canonicalizeLocaleList(locales);
    options = getOptionsObject(options);
    localeMatcher(options, DTF);
    const calendar = getOption(options, "calendar", "string", undefined, undefined, DTF);
    if (calendar !== undefined && calendar !== "gregory" && calendar !== "iso8601") {
      throw new RealRangeError(`Invalid calendar : ${calendar}`);
    }
    const numberingSystem = getOption(options, "numberingSystem", "string", undefined, undefined, DTF);
    if (numberingSystem !== undefined && numberingSystem !== "latn") {
      throw new RealRangeError(`Invalid numberingSystem : ${numberingSystem}`);
    }
    const hour12 = getOption(options, "hour12", "boolean", undefined, undefined, DTF);
    const hourCycle = getOption(options, "hourCycle", "string", ["h11", "h12", "h23", "h24"], undefined, DTF);
    let timeZone = options.timeZone;
    if (timeZone !== undefined) timeZone = StringOf(timeZone);
    const spec = {
      k: "dtf",
      locales: requested,
      hour12: hour12 === undefined ? null : hour12,
      hourCycle: hour12 === undefined && hourCycle !== undefined ? hourCycle : null,
      timeZone: timeZone === undefined ? null : timeZone,
    };
    let explicit = null;
    for (const [prop, values] of COMPONENTS) {
      const value =
        values === null
          ? getNumberOption(options, prop, 1, 3, undefined)
          : getOption(options, prop, "string", values, undefined, DTF);
      spec[prop] = value === undefined ? null : value;
      if (value !== undefined && explicit === null) explicit = prop;
    }
    getOption(options, "formatMatcher", "string", ["basic", "best fit"], "best fit", DTF);
    const dateStyle = getOption(options, "dateStyle", "string", STYLES, undefined, DTF);
    const timeStyle = getOption(options, "timeStyle", "string", STYLES, undefined, DTF);
    spec.dateStyle = dateStyle === undefined ? null : dateStyle;
    spec.timeStyle = timeStyle === undefined ? null : timeStyle;
    if (dateStyle !== undefined || timeStyle !== undefined) {
      if (explicit !== null) {
        throw new RealTypeError(`Can't set option ${explicit} when ${dateStyle !== undefined ? "dateStyle" : "timeStyle"} is used`);
      }
      if (required === "date" && timeStyle !== undefined) {
        throw new RealTypeError("Invalid option : timeStyle");
      }
      if (required === "time" && dateStyle !== undefined) {
        throw new RealTypeError("Invalid option : dateStyle");
      }
    } else {
      let needDefaults = true;
      if (required === "date" || required === "any") {
        for (const p of ["weekday", "year", "month", "day"]) if (spec[p] !== null) needDefaults = false;
      }
      if (required === "time" || required === "any") {
        for (const p of ["dayPeriod", "hour", "minute", "second", "fractionalSecondDigits"]) {
          if (spec[p] !== null) needDefaults = false;
        }
      }
      if (needDefaults && (defaults === "date" || defaults === "all")) {
        spec.year = spec.month = spec.day = "numeric";
      }
      if (needDefaults && (defaults === "time" || defaults === "all")) {
        spec.hour = spec.minute = spec.second = "numeric";
      }
    }
    return spec;
  };
  const timeValue = (date) => {
    const x = date === undefined ? now() : toNumberValue(date);
    if (!isFinite(x) || abs(x) > 8.64e15) throw new RealRangeError("Invalid time value");
    return x;
  };
  function DateTimeFormat(locales, options) {
    if (new.target === undefined) return new DateTimeFormat(locales, options);
    return init(this, "dtf", dateTimeSpec(locales, options, "any", "date"));
  }
  setup(
    DateTimeFormat,
    "DateTimeFormat",
    [
      [
        "formatToParts",
        function formatToParts(date) {
          const s = slot(this, "dtf", "Intl.DateTimeFormat.prototype.formatToParts");
          return parts(hostJson("parts", s.key, timeValue(date)));
        },
      ],
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "dtf", "Intl.DateTimeFormat.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [
      [
        "format",
        function format() {
          const s = slot(this, "dtf", "get Intl.DateTimeFormat.prototype.format");
          if (s.bound === undefined) {
            const key = s.key;
            s.bound = (date) => host("format", key, timeValue(date));
          }
          return s.bound;
        },
      ],
    ],
  );
  const parts = (list) => {
    const out = [];
    for (const [type, value] of list) push(out, { type, value });
    return out;
  };

  // --- NumberFormat --------------------------------------------------------------------------------
  const NF = "Intl.NumberFormat";
  const numberSpec = (locales, options) => {
    const requested = canonicalizeLocaleList(locales);
    options = getOptionsObject(options);
    localeMatcher(options, NF);
    const numberingSystem = getOption(options, "numberingSystem", "string", undefined, undefined, NF);
    if (numberingSystem !== undefined && numberingSystem !== "latn") {
      throw new RealRangeError(`Invalid numberingSystem : ${numberingSystem}`);
    }
    const style = getOption(options, "style", "string", ["decimal", "percent", "currency", "unit"], "decimal", NF);
    let currency = getOption(options, "currency", "string", undefined, undefined, NF);
    if (currency !== undefined && !/^[A-Za-z]{3}$/.test(currency)) {
      throw new RealRangeError(`Invalid currency code : ${currency}`);
    }
    const currencyDisplay = getOption(options, "currencyDisplay", "string", ["code", "symbol", "narrowSymbol", "name"], "symbol", NF);
    getOption(options, "currencySign", "string", ["standard", "accounting"], "standard", NF);
    const unit = getOption(options, "unit", "string", undefined, undefined, NF);
    if (style === "currency") {
      if (currency === undefined) throw new RealTypeError("Currency code is required with currency style.");
      currency = currency.toUpperCase();
    }
    if (style === "unit") {
      if (unit === undefined) throw new RealTypeError("Unit is required with unit style.");
      throw new RealTypeError("Intl.NumberFormat: style \"unit\" is not supported in the sandbox");
    }
    const notation = getOption(options, "notation", "string", ["standard", "scientific", "engineering", "compact"], "standard", NF);
    if (notation === "scientific" || notation === "engineering") {
      throw new RealTypeError(`Intl.NumberFormat: notation "${notation}" is not supported in the sandbox`);
    }
    // Digit options (SetNumberFormatDigitOptions).
    const minInt = getNumberOption(options, "minimumIntegerDigits", 1, 21, 1);
    const mnfdRaw = options.minimumFractionDigits;
    const mxfdRaw = options.maximumFractionDigits;
    const mnsdRaw = options.minimumSignificantDigits;
    const mxsdRaw = options.maximumSignificantDigits;
    const hasSd = mnsdRaw !== undefined || mxsdRaw !== undefined;
    const hasFd = mnfdRaw !== undefined || mxfdRaw !== undefined;
    let currencyDigits = 2;
    if (style === "currency") currencyDigits = NumberOf(host("currencyDigits", currency));
    const mnfdDefault = style === "currency" && notation !== "compact" ? currencyDigits : 0;
    const mxfdDefault =
      style === "currency" && notation !== "compact" ? currencyDigits : style === "percent" ? 0 : notation === "compact" ? 0 : 3;
    const spec = { k: "nf", locales: requested, style, currency: currency ?? null, currencyDisplay, notation, minimumIntegerDigits: minInt };
    const needSd = hasSd || (!hasFd && notation === "compact");
    if (hasSd) {
      const mnsd = getNumberOption(options, "minimumSignificantDigits", 1, 21, 1);
      const mxsd = getNumberOption(options, "maximumSignificantDigits", mnsd, 21, 21);
      spec.minimumSignificantDigits = mnsd;
      spec.maximumSignificantDigits = mxsd;
    } else if (hasFd) {
      let mnfd = getNumberOption(options, "minimumFractionDigits", 0, 100, undefined);
      let mxfd = getNumberOption(options, "maximumFractionDigits", 0, 100, undefined);
      if (mnfd === undefined) mnfd = mnfdDefault < mxfd ? mnfdDefault : mxfd;
      else if (mxfd === undefined) mxfd = mxfdDefault > mnfd ? mxfdDefault : mnfd;
      else if (mnfd > mxfd) throw new RealRangeError("maximumFractionDigits value is out of range.");
      spec.minimumFractionDigits = mnfd;
      spec.maximumFractionDigits = mxfd;
    } else if (needSd) {
      // Compact notation without digit options: two significant digits, no fraction past the integer.
      spec.minimumFractionDigits = 0;
      spec.maximumFractionDigits = 0;
      spec.minimumSignificantDigits = 1;
      spec.maximumSignificantDigits = 2;
      spec.roundingPriority = "morePrecision";
    } else {
      spec.minimumFractionDigits = mnfdDefault;
      spec.maximumFractionDigits = mxfdDefault;
    }
    const compactDisplay = getOption(options, "compactDisplay", "string", ["short", "long"], "short", NF);
    if (notation === "compact") spec.compactDisplay = compactDisplay;
    let grouping = options.useGrouping;
    if (grouping === undefined) grouping = notation === "compact" ? "min2" : "auto";
    else if (grouping === true || grouping === "true" || grouping === "false") grouping = "always";
    else if (grouping === false || grouping === null || grouping === "") grouping = false;
    else {
      grouping = StringOf(grouping);
      if (grouping !== "min2" && grouping !== "auto" && grouping !== "always") {
        throw new RealRangeError(`Value ${grouping} out of range for Intl.NumberFormat options property useGrouping`);
      }
    }
    spec.useGrouping = grouping;
    spec.signDisplay = getOption(options, "signDisplay", "string", ["auto", "never", "always", "exceptZero", "negative"], "auto", NF);
    return spec;
  };
  function NumberFormat(locales, options) {
    if (new.target === undefined) return new NumberFormat(locales, options);
    return init(this, "nf", numberSpec(locales, options));
  }
  // A number as the host reads it: the shortest decimal that round-trips ("1e+21", "-0", "NaN"...).
  const numeric = (x) => {
    if (typeof x === "bigint") return StringOf(x);
    const n = NumberOf(x);
    if (n === 0 && 1 / n < 0) return "-0";
    return StringOf(n);
  };
  setup(
    NumberFormat,
    "NumberFormat",
    [
      [
        "formatToParts",
        function formatToParts(x) {
          const s = slot(this, "nf", "Intl.NumberFormat.prototype.formatToParts");
          return parts(hostJson("parts", s.key, numeric(x)));
        },
      ],
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "nf", "Intl.NumberFormat.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [
      [
        "format",
        function format() {
          const s = slot(this, "nf", "get Intl.NumberFormat.prototype.format");
          if (s.bound === undefined) {
            const key = s.key;
            s.bound = (x) => host("format", key, numeric(x));
          }
          return s.bound;
        },
      ],
    ],
  );

  // --- Collator ------------------------------------------------------------------------------------
  const COL = "Intl.Collator";
  function Collator(locales, options) {
    if (new.target === undefined) return new Collator(locales, options);
    const requested = canonicalizeLocaleList(locales);
    options = getOptionsObject(options);
    const usage = getOption(options, "usage", "string", ["sort", "search"], "sort", COL);
    localeMatcher(options, COL);
    const collation = getOption(options, "collation", "string", undefined, undefined, COL);
    const numeric = getOption(options, "numeric", "boolean", undefined, undefined, COL);
    const caseFirst = getOption(options, "caseFirst", "string", ["upper", "lower", "false"], undefined, COL);
    const sensitivity = getOption(options, "sensitivity", "string", ["base", "accent", "case", "variant"], undefined, COL);
    const ignorePunctuation = getOption(options, "ignorePunctuation", "boolean", undefined, undefined, COL);
    return init(this, "col", {
      k: "col",
      locales: requested,
      usage,
      collation: collation ?? null,
      numeric: numeric ?? null,
      caseFirst: caseFirst ?? null,
      sensitivity: sensitivity ?? null,
      ignorePunctuation: ignorePunctuation ?? null,
    });
  }
  setup(
    Collator,
    "Collator",
    [
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "col", "Intl.Collator.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [
      [
        "compare",
        function compare() {
          const s = slot(this, "col", "get Intl.Collator.prototype.compare");
          if (s.bound === undefined) {
            const key = s.key;
            s.bound = (x, y) => NumberOf(host("compare", key, StringOf(x), StringOf(y)));
          }
          return s.bound;
        },
      ],
    ],
  );

  // --- PluralRules ---------------------------------------------------------------------------------
  const PR = "Intl.PluralRules";
  function PluralRules(locales, options) {
    if (new.target === undefined) throw new RealTypeError("Constructor Intl.PluralRules requires 'new'");
    const requested = canonicalizeLocaleList(locales);
    options = getOptionsObject(options);
    localeMatcher(options, PR);
    const type = getOption(options, "type", "string", ["cardinal", "ordinal"], "cardinal", PR);
    const mnfd = getNumberOption(options, "minimumFractionDigits", 0, 100, undefined);
    const mxfd = getNumberOption(options, "maximumFractionDigits", 0, 100, undefined);
    const lo = mnfd ?? 0;
    const hi = mxfd ?? (lo > 3 ? lo : 3);
    if (lo > hi) throw new RealRangeError("maximumFractionDigits value is out of range.");
    return init(this, "pr", { k: "pr", locales: requested, type, minimumFractionDigits: lo, maximumFractionDigits: hi });
  }
  setup(
    PluralRules,
    "PluralRules",
    [
      [
        "select",
        function select(n) {
          const s = slot(this, "pr", "Intl.PluralRules.prototype.select");
          return host("select", s.key, numeric(NumberOf(n)));
        },
      ],
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "pr", "Intl.PluralRules.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [],
  );

  // --- ListFormat ----------------------------------------------------------------------------------
  const LF = "Intl.ListFormat";
  function ListFormat(locales, options) {
    if (new.target === undefined) throw new RealTypeError("Constructor Intl.ListFormat requires 'new'");
    const requested = canonicalizeLocaleList(locales);
    if (options !== undefined && (options === null || (typeof options !== "object" && typeof options !== "function"))) {
      throw new RealTypeError("Options must be an object");
    }
    options = getOptionsObject(options);
    localeMatcher(options, LF);
    const type = getOption(options, "type", "string", ["conjunction", "disjunction", "unit"], "conjunction", LF);
    const style = getOption(options, "style", "string", ["long", "short", "narrow"], "long", LF);
    return init(this, "lf", { k: "lf", locales: requested, type, style });
  }
  const stringList = (iterable) => {
    if (iterable === undefined) return [];
    const out = [];
    for (const v of iterable) {
      if (typeof v !== "string") throw new RealTypeError(`Iterable yielded ${show(v)} which is not a string`);
      push(out, v);
    }
    return out;
  };
  setup(
    ListFormat,
    "ListFormat",
    [
      [
        "format",
        function format(list) {
          const s = slot(this, "lf", "Intl.ListFormat.prototype.format");
          return host("format", s.key, stringify(stringList(list)));
        },
      ],
      [
        "formatToParts",
        function formatToParts(list) {
          const s = slot(this, "lf", "Intl.ListFormat.prototype.formatToParts");
          return parts(hostJson("parts", s.key, stringify(stringList(list))));
        },
      ],
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "lf", "Intl.ListFormat.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [],
  );

  // --- RelativeTimeFormat --------------------------------------------------------------------------
  const RTF = "Intl.RelativeTimeFormat";
  const UNITS = ["second", "minute", "hour", "day", "week", "month", "quarter", "year"];
  function RelativeTimeFormat(locales, options) {
    if (new.target === undefined) throw new RealTypeError("Constructor Intl.RelativeTimeFormat requires 'new'");
    const requested = canonicalizeLocaleList(locales);
    options = getOptionsObject(options);
    localeMatcher(options, RTF);
    const numberingSystem = getOption(options, "numberingSystem", "string", undefined, undefined, RTF);
    if (numberingSystem !== undefined && numberingSystem !== "latn") {
      throw new RealRangeError(`Invalid numberingSystem : ${numberingSystem}`);
    }
    const style = getOption(options, "style", "string", ["long", "short", "narrow"], "long", RTF);
    const numericOption = getOption(options, "numeric", "string", ["always", "auto"], "always", RTF);
    return init(this, "rtf", { k: "rtf", locales: requested, style, numeric: numericOption });
  }
  const relativeUnit = (unit) => {
    const u = StringOf(unit);
    const singular = u.length > 1 && u[u.length - 1] === "s" ? u.slice(0, -1) : u;
    for (const known of UNITS) if (known === singular) return known;
    throw new RealRangeError(`Invalid unit argument for format() '${u}'`);
  };
  setup(
    RelativeTimeFormat,
    "RelativeTimeFormat",
    [
      [
        "format",
        function format(value, unit) {
          const s = slot(this, "rtf", "Intl.RelativeTimeFormat.prototype.format");
          const n = NumberOf(value);
          const u = relativeUnit(unit);
          if (!isFinite(n)) throw new RealRangeError("Invalid number value");
          return host("format", s.key, numeric(n), u);
        },
      ],
      [
        "resolvedOptions",
        function resolvedOptions() {
          return copy(slot(this, "rtf", "Intl.RelativeTimeFormat.prototype.resolvedOptions").resolved);
        },
      ],
    ],
    [],
  );

  // --- Intl ----------------------------------------------------------------------------------------
  const Intl = {};
  for (const [name, value] of [
    ["getCanonicalLocales", function getCanonicalLocales(locales) {
      return canonicalizeLocaleList(locales);
    }],
    ["supportedValuesOf", function supportedValuesOf(key) {
      return hostJson("supportedValuesOf", StringOf(key));
    }],
    ["DateTimeFormat", DateTimeFormat],
    ["NumberFormat", NumberFormat],
    ["Collator", Collator],
    ["PluralRules", PluralRules],
    ["ListFormat", ListFormat],
    ["RelativeTimeFormat", RelativeTimeFormat],
  ]) {
    defineProperty(Intl, name, { value, writable: true, enumerable: false, configurable: true });
  }
  defineProperty(Intl, Symbol.toStringTag, { value: "Intl", configurable: true });

  // --- The locale-aware methods of Date, Number and String -----------------------------------------
  // The formatter of the default locale and options is kept: `toLocaleString()` in a loop is common.
  const defaults = create(null);
  const dateFormatter = (locales, options, required, which) => {
    if (locales === undefined && options === undefined) {
      return defaults[which] ?? (defaults[which] = init(create(DateTimeFormat.prototype), "dtf", dateTimeSpec(undefined, undefined, required, which)));
    }
    return init(create(DateTimeFormat.prototype), "dtf", dateTimeSpec(locales, options, required, which));
  };
  const toLocale = (required, which) => (date, locales, options) => {
    const x = dateValue.call(date);
    if (x !== x) return "Invalid Date";
    return host("format", weakGet.call(slots, dateFormatter(locales, options, required, which)).key, x);
  };
  const numberToLocale = (value, locales, options) => {
    const x = numberValue.call(value);
    const f =
      locales === undefined && options === undefined
        ? (defaults.number ?? (defaults.number = new NumberFormat()))
        : new NumberFormat(locales, options);
    return host("format", weakGet.call(slots, f).key, numeric(x));
  };
  const localeCompare = (self, that, locales, options) => {
    const c =
      locales === undefined && options === undefined
        ? (defaults.collator ?? (defaults.collator = new Collator()))
        : new Collator(locales, options);
    return NumberOf(host("compare", weakGet.call(slots, c).key, StringOf(self), StringOf(that)));
  };

  return freeze({
    Intl,
    dateToLocaleString: toLocale("any", "all"),
    dateToLocaleDateString: toLocale("date", "date"),
    dateToLocaleTimeString: toLocale("time", "time"),
    numberToLocaleString: numberToLocale,
    localeCompare,
  });
})
