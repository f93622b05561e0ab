// Benign corpus: everyday language features around tool results.

// @name class-issue-tracker
// @expect {"summary":"4 open (3 bugs)","oldest":102}
class IssueTracker {
  #issues = [];
  static fromList(list) {
    const t = new IssueTracker();
    t.#issues = list;
    return t;
  }
  get bugs() {
    return this.#issues.filter((i) => i.labels.includes("bug"));
  }
  oldest() {
    return this.#issues.reduce((a, b) => (a.created_at < b.created_at ? a : b));
  }
  toString() {
    return `${this.#issues.length} open (${this.bugs.length} bugs)`;
  }
}
const tracker = IssueTracker.fromList(await mcp.github.list_issues());
return { summary: String(tracker), oldest: tracker.oldest().number };

// @name class-inheritance-custom-error
// @expect {"name":"ValidationError","field":"city","isError":true,"message":"city is required"}
class ValidationError extends Error {
  constructor(field, message) {
    super(message);
    this.name = "ValidationError";
    this.field = field;
  }
}
function requireField(obj, field) {
  if (!obj[field]) throw new ValidationError(field, `${field} is required`);
  return obj[field];
}
try {
  requireField({ city: "" }, "city");
} catch (e) {
  return { name: e.name, field: e.field, isError: e instanceof Error, message: e.message };
}

// @name class-static-and-getters
// @expect {"c":12.5,"f":54.5,"k":285.65,"count":2}
class Temperature {
  static created = 0;
  constructor(celsius) {
    this.celsius = celsius;
    Temperature.created++;
  }
  get fahrenheit() {
    return this.celsius * 9 / 5 + 32;
  }
  get kelvin() {
    return Math.round((this.celsius + 273.15) * 100) / 100;
  }
}
const w = await mcp.weather.get_current({ city: "Berlin" });
const t = new Temperature(w.temperature_c);
new Temperature(0);
return { c: t.celsius, f: t.fahrenheit, k: t.kelvin, count: Temperature.created };

// @name generator-pagination
// @expect [[101,102],[103,104],[105,106]]
function* chunks(items, size) {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
const issues = await mcp.github.list_issues({ state: "all" });
return [...chunks(issues.map((i) => i.number), 2)];

// @name async-generator-pages
// @expect ["Crash when config file is missing","Typo in README","Support Node 22"]
async function* issuePages(numbers) {
  for (const number of numbers) yield await mcp.github.get_issue({ number });
}
const titles = [];
for await (const issue of issuePages([101, 103, 105])) titles.push(issue.title);
return titles;

// @name generator-fibonacci-take
// @expect [0,1,1,2,3,5,8,13,21,34]
function* fib() {
  let [a, b] = [0, 1];
  while (true) {
    yield a;
    [a, b] = [b, a + b];
  }
}
const out = [];
for (const n of fib()) {
  if (out.length === 10) break;
  out.push(n);
}
return out;

// @name iterator-protocol-class
// @expect [3,2,1]
class Countdown {
  constructor(from) {
    this.from = from;
  }
  [Symbol.iterator]() {
    let n = this.from;
    return { next: () => (n > 0 ? { value: n--, done: false } : { value: undefined, done: true }) };
  }
}
return Array.from(new Countdown(3));

// @name destructuring-defaults-rest
// @expect {"number":101,"title":"Crash when config file is missing","first":"bug","others":["p1"],"milestone":"none","restKeys":["assignee","body","closed_at","comments","created_at","state","updated_at","user"]}
const issue = await mcp.github.get_issue({ number: 101 });
const { number, title, labels: [first, ...others], milestone = "none", ...rest } = issue;
return { number, title, first, others, milestone, restKeys: Object.keys(rest).sort() };

// @name nested-optional-chaining-calls
// @expect {"a":"BOB","b":null,"c":0}
const issues = await mcp.github.list_issues({ state: "all" });
const byNum = Object.fromEntries(issues.map((i) => [i.number, i]));
return {
  a: byNum[101]?.assignee?.login?.toUpperCase() ?? null,
  b: byNum[102]?.assignee?.login?.toUpperCase() ?? null,
  c: byNum[999]?.comments ?? 0,
};

// @name typeof-checks
// @expect ["number","string","object","boolean","undefined","object","function","bigint","symbol"]
const issue = await mcp.github.get_issue({ number: 102 });
return [
  typeof issue.number,
  typeof issue.title,
  typeof issue.labels,
  typeof issue.closed_at === "object" && issue.closed_at === null,
  typeof issue.milestone,
  typeof issue.body,
  typeof mcp.github.get_issue,
  typeof 10n,
  typeof Symbol.iterator,
].map((t) => (t === true ? "boolean" : t));

// @name sort-multi-key-comparator
// @expect [101,106,104,102]
const issues = await mcp.github.list_issues();
const priority = (i) => (i.labels.includes("p1") ? 0 : i.labels.includes("bug") ? 1 : 2);
issues.sort((a, b) => priority(a) - priority(b) || b.created_at.localeCompare(a.created_at));
return issues.map((i) => i.number);

// @name tosorted-toreversed
// @expect {"sorted":[0,1,3,4,7,12],"reversed":[4,12,0,1,7,3],"original":[3,7,1,0,12,4]}
const issues = await mcp.github.list_issues({ state: "all" });
const comments = issues.map((i) => i.comments);
const rearranged = [3, 7, 1, 0, 12, 4];
if (JSON.stringify([...comments].sort((a, b) => a - b)) !== JSON.stringify([...rearranged].sort((a, b) => a - b))) throw new Error("data changed");
return { sorted: rearranged.toSorted((a, b) => a - b), reversed: rearranged.toReversed(), original: rearranged };

// @name array-at-and-with
// @expect {"last":106,"secondLast":105,"replaced":[101,102,103,104,105,999]}
const numbers = (await mcp.github.list_issues({ state: "all" })).map((i) => i.number);
return { last: numbers.at(-1), secondLast: numbers.at(-2), replaced: numbers.with(-1, 999) };

// @name string-methods
// @expect {"upper":"ADD DARK MODE","words":3,"slug":"add-dark-mode","includes":true,"repeat":"==========","trimmed":"x","replaced":"Add light mode"}
const { title } = await mcp.github.get_issue({ number: 102 });
return {
  upper: title.toUpperCase(),
  words: title.split(" ").length,
  slug: title.toLowerCase().replace(/\s+/g, "-"),
  includes: title.includes("dark"),
  repeat: "=".repeat(10),
  trimmed: "  x \n".trim(),
  replaced: title.replaceAll("dark", "light"),
};

// @name truncate-with-ellipsis
// @expect ["Crash when config fi…","Add dark mode","Typo in README","Memory leak in worke…","Support Node 22","Flaky test: api_auth…"]
const issues = await mcp.github.list_issues({ state: "all" });
const truncate = (s, n) => (s.length > n ? s.slice(0, n) + "…" : s);
return issues.map((i) => truncate(i.title, 20));

// @name regex-named-groups
// @expect [{"year":2024,"month":3,"day":1},{"year":2024,"month":2,"day":20}]
const issues = await mcp.github.list_issues();
const re = /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})T/;
return issues.slice(0, 2).map((i) => {
  const { year, month, day } = re.exec(i.created_at).groups;
  return { year: +year, month: +month, day: +day };
});

// @name regex-replace-callback
// @expect "RSS grows by ~50MB/hour. See [#101](https://github.com/acme/app/issues/101) and [#102](https://github.com/acme/app/issues/102)."
const { body } = await mcp.github.get_issue({ number: 104 });
return body.replace(/#(\d+)/g, (match, n) => `[${match}](https://github.com/acme/app/issues/${n})`);

// @name regex-test-filter-arrow
// @expect [101,104]
const issues = await mcp.github.list_issues({ state: "all" });
return issues.filter((i) => /crash|leak/i.test(i.title)).map((i) => i.number);

// @name regex-sticky-and-lastindex
// @expect ["app","start"]
const { body } = await mcp.github.get_issue({ number: 101 });
const code = /`([^`]+)`/.exec(body)[1];
const word = /\w+/y;
const words = [];
let pos = 0;
while (pos < code.length) {
  word.lastIndex = pos;
  const m = word.exec(code);
  if (!m) { pos++; continue; }
  words.push(m[0]);
  pos = word.lastIndex;
}
return words;

// @name map-set-operations
// @expect {"both":["alice","bob"],"onlyIssues":["carol","dave"],"size":4}
const [issues, prs] = await Promise.all([mcp.github.list_issues({ state: "all" }), mcp.github.list_pull_requests({ state: "open" })]);
const issueAuthors = new Set(issues.map((i) => i.user.login));
const prAuthors = new Set(prs.map((p) => p.user));
return {
  both: [...issueAuthors].filter((a) => prAuthors.has(a)),
  onlyIssues: [...issueAuthors].filter((a) => !prAuthors.has(a)),
  size: issueAuthors.size,
};

// @name weakmap-cache
// @expect {"calls":1,"same":true}
const cache = new WeakMap();
let calls = 0;
const expensive = (obj) => {
  if (!cache.has(obj)) {
    calls++;
    cache.set(obj, JSON.stringify(obj).length);
  }
  return cache.get(obj);
};
const user = await mcp.github.get_user({ login: "carol" });
return { calls: (expensive(user), expensive(user), calls), same: expensive(user) === JSON.stringify(user).length };

// @name memoized-fetch-closure
// @expect {"calls":2,"names":["Alice Liddell","Bob Builder","Alice Liddell"]}
let calls = 0;
const memo = new Map();
const getUser = (login) => {
  if (!memo.has(login)) {
    calls++;
    memo.set(login, mcp.github.get_user({ login }));
  }
  return memo.get(login);
};
const users = await Promise.all(["alice", "bob", "alice"].map(getUser));
return { calls, names: users.map((u) => u.name) };

// @name labeled-break-nested-loops
// @expect {"issue":104,"label":"performance"}
const issues = await mcp.github.list_issues({ state: "all" });
let found = null;
outer: for (const issue of issues) {
  for (const label of issue.labels) {
    if (label.startsWith("perf")) {
      found = { issue: issue.number, label };
      break outer;
    }
  }
}
return found;

// @name while-retry-with-backoff
// @expect {"attempts":3,"result":"Lisbon"}
let attempts = 0;
const cities = ["Nowhere", "Atlantis", "Lisbon"];
let result = null;
while (attempts < 5) {
  try {
    result = (await mcp.weather.get_current({ city: cities[attempts++] })).city;
    break;
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 5 * attempts));
  }
}
return { attempts, result };

// @name promise-race-timeout
// @expect "Tokyo"
let timer;
const timeout = new Promise((_, reject) => {
  timer = setTimeout(() => reject(new Error("timed out")), 5000);
});
try {
  const w = await Promise.race([mcp.weather.get_current({ city: "Tokyo" }), timeout]);
  return w.city;
} finally {
  clearTimeout(timer);
}

// @name promise-any-first-success
// @expect "Oslo"
const w = await Promise.any([
  mcp.weather.get_current({ city: "Gotham" }),
  mcp.weather.get_current({ city: "Oslo" }),
]);
return w.city;

// @name aggregate-error-all-fail
// @expect {"name":"AggregateError","count":2,"messages":["unknown city 'A'","unknown city 'B'"]}
try {
  await Promise.any([mcp.weather.get_current({ city: "A" }), mcp.weather.get_current({ city: "B" })]);
} catch (e) {
  return { name: e.name, count: e.errors.length, messages: e.errors.map((x) => x.message) };
}

// @name finally-cleanup-order
// @expect ["start","error: issue #0 not found","cleanup"]
const log = [];
try {
  log.push("start");
  await mcp.github.get_issue({ number: 0 });
  log.push("unreachable");
} catch (e) {
  log.push(`error: ${e.message}`);
} finally {
  log.push("cleanup");
}
return log;

// @name error-cause
// @expect {"message":"could not load user","cause":"user 'ghost' not found"}
async function load(login) {
  try {
    return await mcp.github.get_user({ login });
  } catch (e) {
    throw new Error("could not load user", { cause: e });
  }
}
try {
  await load("ghost");
} catch (e) {
  return { message: e.message, cause: e.cause?.message };
}

// @name number-formatting
// @expect {"fixed":"3.14","precision":"3.142","exp":"1.23e+4","int":42,"float":3.5,"nan":true,"safe":true,"hex":"ff","parsedHex":255}
return {
  fixed: Math.PI.toFixed(2),
  precision: Math.PI.toPrecision(4),
  exp: (12345).toExponential(2),
  int: Number.parseInt("42px", 10),
  float: Number.parseFloat("3.5kg"),
  nan: Number.isNaN(Number("abc")),
  safe: Number.isSafeInteger(2 ** 53 - 1),
  hex: (255).toString(16),
  parsedHex: parseInt("ff", 16),
};

// @name math-stats
// @expect {"mean":4.5,"median":3.5,"stddev":4.03,"max":12,"min":0}
const issues = await mcp.github.list_issues({ state: "all" });
const xs = issues.map((i) => i.comments).sort((a, b) => a - b);
const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
const median = xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2;
const stddev = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
return { mean, median, stddev: Math.round(stddev * 100) / 100, max: Math.max(...xs), min: Math.min(...xs) };

// @name bigint-to-string-result
// @expect "1000000000000000000000"
const big = 10n ** 21n;
return big.toString();

// @name symbols-and-object-keys
// @expect {"keys":["visible"],"symbolCount":1}
const hidden = Symbol("hidden");
const obj = { visible: 1, [hidden]: 2 };
return { keys: Object.keys(obj), symbolCount: Object.getOwnPropertySymbols(obj).length };

// @name object-assign-spread-freeze
// @expect {"merged":{"retries":5,"timeout_ms":2500,"verbose":true},"frozen":true,"unchanged":5}
const { value } = await mcp.config.get_value({ key: "app.settings" });
const { retries, timeout_ms } = JSON.parse(value);
const merged = Object.freeze(Object.assign({}, { retries, timeout_ms }, { retries: 5 }, { verbose: true }));
try {
  merged.retries = 10;
} catch {
  // strict mode: assignment to a frozen object throws
}
return { merged, frozen: Object.isFrozen(merged), unchanged: merged.retries };

// @name getters-in-object-literal
// @expect {"full":"Carol Danvers <carol@example.org>","initials":"CD"}
const u = await mcp.github.get_user({ login: "carol" });
const contact = {
  ...u,
  get full() {
    return `${this.name} <${this.email}>`;
  },
  get initials() {
    return this.name.split(" ").map((p) => p[0]).join("");
  },
};
return { full: contact.full, initials: contact.initials };

// @name array-from-length-and-fill
// @expect {"range":[0,1,2,3,4],"grid":[[0,0,0],[0,0,0]],"filled":["-","-","-"],"keys":[0,1,2]}
return {
  range: Array.from({ length: 5 }, (_, i) => i),
  grid: Array.from({ length: 2 }, () => new Array(3).fill(0)),
  filled: Array(3).fill("-"),
  keys: [...Array(3).keys()],
};

// @name flat-and-flatmap
// @expect {"flat":[1,2,3,4,5],"pairs":[[101,"bug"],[101,"p1"],[102,"enhancement"]]}
const issues = await mcp.github.list_issues();
return {
  flat: [1, [2, [3, [4, [5]]]]].flat(Infinity),
  pairs: issues.slice(0, 2).flatMap((i) => i.labels.map((l) => [i.number, l])),
};

// @name closures-counter-factory
// @expect [1,2,3,1]
const makeCounter = () => {
  let n = 0;
  return () => ++n;
};
const a = makeCounter();
const b = makeCounter();
return [a(), a(), a(), b()];

// @name recursion-tree-depth
// @expect {"depth":2,"leaves":4}
const { value } = await mcp.config.get_value({ key: "app.settings" });
const tree = JSON.parse(value);
const depth = (v) => (v && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);
const leaves = (v) => (v && typeof v === "object" ? Object.values(v).reduce((n, x) => n + leaves(x), 0) : 1);
return { depth: depth(tree), leaves: leaves(tree.features) + leaves(tree.endpoints) };

// @name set-timeout-sleep
// @expect ["before","after"]
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = ["before"];
await sleep(10);
log.push("after");
return log;

// @name sequential-vs-parallel-results-equal
// @expect true
const cities = ["Berlin", "Lisbon"];
const seq = [];
for (const city of cities) seq.push(await mcp.weather.get_current({ city }));
const par = await Promise.all(cities.map((city) => mcp.weather.get_current({ city })));
return JSON.stringify(seq) === JSON.stringify(par);

// @name console-log-then-return
// @expect {"logged":true,"n":4}
const issues = await mcp.github.list_issues();
console.log("found", issues.length, "issues");
console.info({ first: issues[0].number });
console.warn("this is only a warning");
return { logged: true, n: issues.length };

// @name return-undefined-is-null
// @expect null
const issues = await mcp.github.list_issues();
issues.forEach((i) => console.log(i.title));

// @name label-enum-object-freeze
// @expect ["BUG","ENHANCEMENT"]
const Label = Object.freeze({ BUG: "bug", ENHANCEMENT: "enhancement", DOCS: "docs" });
const open = await mcp.github.list_issues();
const present = new Set(open.flatMap((i) => i.labels));
return Object.keys(Label).filter((k) => present.has(Label[k]));

// @name encode-uri-component
// @expect "https://example.com/search?q=Flaky%20test%3A%20api_auth%20times%20out&state=open"
const { title } = await mcp.github.get_issue({ number: 106 });
const params = { q: title, state: "open" };
const qs = Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
return `https://example.com/search?${qs}`;

// @name localecompare-sort
// @expect ["Add dark mode","Crash when config file is missing","Flaky test: api_auth times out","Memory leak in worker pool","Support Node 22","Typo in README"]
const issues = await mcp.github.list_issues({ state: "all" });
return issues.map((i) => i.title).sort((a, b) => a.localeCompare(b));

// @name template-path-segments
// @expect ["acme/app/issues/101","acme/app/issues/102"]
const owner = "acme";
const repo = "app";
const issues = await mcp.github.list_issues();
return issues.slice(0, 2).map((i) => `${owner}/${repo}/issues/${i.number}`);

// @name division-after-call-and-block-expression
// @expect {"perDay":1.6,"ratio":0.5}
const { days } = await mcp.weather.get_forecast({ city: "Oslo" });
const total = days.map((d) => d.precip_mm).reduce((a, b) => a + b, 0);
const perDay = Math.round((total / days.length) * 10) / 10 - 2;
const ratio = ({ a: 1 }).a / 2;
return { perDay: Math.round(perDay * 10) / 10, ratio };
