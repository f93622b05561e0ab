// Benign corpus: introspection and type checks that models write defensively. Several of these are
// known false positives of the validator: the programs are harmless and Node runs them.

// @name constructor-equals-object
// @expect [true,false,false]
// Once a false positive of no-function-constructor; reads that are only compared or named now pass.
// Plain-object check, as in many deep-merge helpers.
const user = await mcp.github.get_user({ login: "alice" });
const isPlain = (v) => v !== null && typeof v === "object" && v.constructor === Object;
return [isPlain(user), isPlain([1]), isPlain(null)];

// @name constructor-name-type-label
// @expect ["Object","Array","String","Number","Date"]
// Once a false positive of no-function-constructor; reads that are only compared or named now pass.
const issue = await mcp.github.get_issue({ number: 101 });
return [issue, issue.labels, issue.title, issue.number, new Date(issue.created_at)].map((v) => v.constructor.name);

// @name class-constructor-name-via-instance
// @expect "Report"
// Once a false positive of no-function-constructor; reads that are only compared or named now pass.
class Report {}
const r = new Report();
return r.constructor.name;

// @name object-prototype-tostring-tag
// @expect ["[object Object]","[object Array]","[object Null]","[object Date]"]
const issue = await mcp.github.get_issue({ number: 101 });
const tag = (v) => Object.prototype.toString.call(v);
return [tag(issue), tag(issue.labels), tag(issue.closed_at), tag(new Date(issue.created_at))];

// @name getprototypeof-plain-object
// @expect [true,false]
const user = await mcp.github.get_user({ login: "bob" });
const isPlain = (v) => typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
return [isPlain(user), isPlain(new Map())];

// @name instanceof-checks
// @expect [true,true,false,true]
const issues = await mcp.github.list_issues();
return [issues instanceof Array, issues[0] instanceof Object, issues[0].title instanceof String, new Date() instanceof Date];

// @name typeof-globalthis-fetch
// @expect {"source":"mcp","city":"Berlin","checked":"boolean"}
// Models often probe for `fetch` before falling back to the tools.
const hasFetch = typeof globalThis.fetch === "function";
const w = await mcp.weather.get_current({ city: "Berlin" });
return { source: "mcp", city: w.city, checked: typeof hasFetch };

// @name object-keys-globalthis
// @expect true
// Known false positive (no-global-write): `Object.keys(globalThis)` uses the global object as a value.
// @known rejected no-global-write
// Feature discovery: does the environment expose an `mcp` object, or something else?
const names = Object.keys(globalThis);
return Array.isArray(names);

// @name globalthis-property-read
// @expect {"json":true,"math":1}
return { json: typeof globalThis.JSON.stringify === "function", math: globalThis.Math.abs(-1) };

// @name in-operator-globalthis
// @expect [true,false]
// Known false positive (no-global-write): `"JSON" in globalThis` uses the global object as a value.
// @known rejected no-global-write
return ["JSON" in globalThis, "definitelyNotAGlobal" in globalThis];

// @name typeof-undeclared-feature-detect
// @expect ["object","undefined","undefined"]
// Known false positive (no-require): `typeof require` (feature detection) is refused like a use of `require`.
// @known rejected no-require
return [typeof JSON, typeof require, typeof Deno];

// @name object-keys-mcp-servers
// @expect ["config","docs","github","shop","slack","time","weather"]
return Object.keys(mcp).filter((k) => !k.startsWith("$")).sort();

// @name object-keys-mcp-tools
// @expect ["create_comment","get_issue","get_user","list_issues","list_pull_requests"]
return Object.keys(mcp.github).sort();

// @name function-name-and-length
// @expect {"name":"summarize","length":2,"arrowName":"double"}
function summarize(a, b) {
  return a + b;
}
const double = (x) => x * 2;
return { name: summarize.name, length: summarize.length, arrowName: double.name };

// @name has-own-property
// @expect {"hasOwn":[true,false],"hasOwnProperty":[true,false]}
const user = await mcp.github.get_user({ login: "dave" });
return {
  hasOwn: [Object.hasOwn(user, "email"), Object.hasOwn(user, "phone")],
  hasOwnProperty: [user.hasOwnProperty("email"), Object.prototype.hasOwnProperty.call(user, "phone")],
};

// @name object-create-null-dict
// @expect {"count":4,"proto":null}
const dict = Object.create(null);
for (const login of ["alice", "bob", "carol", "dave"]) dict[login] = (await mcp.github.get_user({ login })).public_repos;
return { count: Object.keys(dict).length, proto: Object.getPrototypeOf(dict) };

// @name destructure-constructor-from-object
// @expect "Object"
// Known false positive (no-function-constructor): `const { constructor } = obj`.
// @known rejected no-function-constructor
const user = await mcp.github.get_user({ login: "carol" });
const { constructor } = user;
return constructor.name;

// @name deep-clone-json
// @expect {"same":false,"equal":true}
const issue = await mcp.github.get_issue({ number: 101 });
const copy = JSON.parse(JSON.stringify(issue));
copy.labels.push("triaged");
return { same: copy === issue, equal: issue.labels.length === 2 };

// @name deep-merge-helper
// @expect {"retries":3,"timeout_ms":1000,"features":{"beta":true,"darkMode":true},"endpoints":["https://api.example.com","https://backup.example.com"]}
const { value } = await mcp.config.get_value({ key: "app.settings" });
const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
const merge = (a, b) => {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObject(v) && isObject(a[k]) ? merge(a[k], v) : v;
  return out;
};
return merge(JSON.parse(value), { timeout_ms: 1000, features: { darkMode: true } });

// @name error-stack-is-string
// @expect {"stack":"string","message":"boom"}
try {
  throw new Error("boom");
} catch (e) {
  return { stack: typeof e.stack, message: e.message };
}

// @name error-tostring
// @expect ["TypeError","RangeError: bad"]
const errs = [];
try {
  const x = undefined;
  x();
} catch (e) {
  errs.push(e instanceof TypeError ? "TypeError" : "other");
}
errs.push(String(new RangeError("bad")));
return errs;
