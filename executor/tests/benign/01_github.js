// Benign corpus: GitHub-style tools. See ../benign.rs for the header format.

// @name open-issue-titles
// @expect ["Crash when config file is missing","Add dark mode","Memory leak in worker pool","Flaky test: api_auth times out"]
const issues = await mcp.github.list_issues({ state: "open" });
return issues.map((i) => i.title);

// @name count-bugs
// @expect {"open":3,"total":3}
const bugs = await mcp.github.list_issues({ state: "all", label: "bug" });
const open = bugs.filter((b) => b.state === "open").length;
return { open, total: bugs.length };

// @name issues-by-author
// @expect {"alice":[101,104],"bob":[102,106],"carol":[103],"dave":[105]}
const all = await mcp.github.list_issues({ state: "all" });
const byAuthor = {};
for (const issue of all) {
  const login = issue.user.login;
  (byAuthor[login] ??= []).push(issue.number);
}
return byAuthor;

// @name most-commented
// @expect {"number":102,"title":"Add dark mode","comments":12}
const issues = await mcp.github.list_issues({ state: "all" });
const top = [...issues].sort((a, b) => b.comments - a.comments)[0];
return { number: top.number, title: top.title, comments: top.comments };

// @name label-histogram-map
// @expect [["bug",3],["enhancement",2],["p1",2],["ci",1],["docs",1],["performance",1]]
const issues = await mcp.github.list_issues({ state: "all" });
const counts = new Map();
for (const { labels } of issues) {
  for (const label of labels) counts.set(label, (counts.get(label) ?? 0) + 1);
}
return Array.from(counts.entries()).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));

// @name unique-labels-set
// @expect ["bug","ci","docs","enhancement","p1","performance"]
const issues = await mcp.github.list_issues({ state: "all" });
const labels = new Set(issues.flatMap((i) => i.labels));
return [...labels].sort();

// @name get-issue-and-author
// @expect {"issue":"Memory leak in worker pool","author":"Alice Liddell","company":"Acme"}
const issue = await mcp.github.get_issue({ number: 104 });
const author = await mcp.github.get_user({ login: issue.user.login });
return { issue: issue.title, author: author.name, company: author.company };

// @name authors-in-parallel
// @expect [{"login":"alice","followers":1200},{"login":"bob","followers":35}]
const issues = await mcp.github.list_issues({ label: "bug" });
const logins = [...new Set(issues.map((i) => i.user.login))];
const users = await Promise.all(logins.map((login) => mcp.github.get_user({ login })));
return users.map(({ login, followers }) => ({ login, followers }));

// @name unassigned-open-issues
// @expect [102,106]
const issues = await mcp.github.list_issues();
return issues.filter((i) => !i.assignee).map((i) => i.number);

// @name assignee-optional-chaining
// @expect ["bob",null,null,"alice",null,null]
const issues = await mcp.github.list_issues({ state: "all" });
return issues.map((i) => i.assignee?.login ?? null);

// @name missing-issue-try-catch
// @expect {"found":false,"message":"issue #999 not found"}
try {
  const issue = await mcp.github.get_issue({ number: 999 });
  return { found: true, title: issue.title };
} catch (e) {
  return { found: false, message: e instanceof Error ? e.message : String(e) };
}

// @name mcp-tool-error-properties
// @expect {"isMcp":true,"isError":true,"name":"McpToolError","server":"github","tool":"get_user"}
try {
  await mcp.github.get_user({ login: "mallory" });
  return null;
} catch (e) {
  if (e instanceof McpToolError) {
    return { isMcp: true, isError: e instanceof Error, name: e.name, server: e.server, tool: e.tool };
  }
  throw e;
}

// @name allsettled-mixed-issues
// @expect {"ok":[101,103],"failed":["issue #7 not found"]}
const results = await Promise.allSettled([101, 7, 103].map((number) => mcp.github.get_issue({ number })));
return {
  ok: results.filter((r) => r.status === "fulfilled").map((r) => r.value.number),
  failed: results.filter((r) => r.status === "rejected").map((r) => r.reason.message),
};

// @name comment-on-p1-bugs
// @expect [{"issue":101,"id":9101}]
const issues = await mcp.github.list_issues({ label: "p1" });
const created = [];
for (const issue of issues) {
  if (!issue.labels.includes("bug")) continue;
  const comment = await mcp.github.create_comment({ number: issue.number, body: `Triage: ${issue.title} is P1.` });
  created.push({ issue: comment.issue, id: comment.id });
}
return created;

// @name comment-url-regex
// @expect {"owner":"acme","repo":"app","issue":106,"comment":9106}
const c = await mcp.github.create_comment({ number: 106, body: "Looking into it" });
const m = c.url.match(/github\.com\/([^/]+)\/([^/]+)\/issues\/(\d+)#issuecomment-(\d+)/);
return { owner: m[1], repo: m[2], issue: Number(m[3]), comment: parseInt(m[4], 10) };

// @name empty-comment-error-code
// @expect {"code":"tool_error","message":"body must not be empty"}
try {
  await mcp.github.create_comment({ number: 101, body: "" });
} catch (err) {
  return { code: err.code, message: err.message };
}
return "unreachable";

// @name referenced-issues-regex
// @expect [101,102]
const issue = await mcp.github.get_issue({ number: 104 });
const refs = [...(issue.body ?? "").matchAll(/#(\d+)/g)].map((m) => Number(m[1]));
return refs;

// @name days-open-date-arithmetic
// @expect [{"number":103,"days":1},{"number":105,"days":14}]
const closed = await mcp.github.list_issues({ state: "closed" });
const DAY = 24 * 60 * 60 * 1000;
return closed.map((i) => ({
  number: i.number,
  days: Math.round((new Date(i.closed_at).getTime() - new Date(i.created_at).getTime()) / DAY),
}));

// @name stale-issues-since
// @expect [102,101]
const issues = await mcp.github.list_issues();
const now = new Date("2024-03-15T12:00:00Z");
const stale = issues.filter((i) => now - new Date(i.updated_at) > 2 * 86400000);
return stale.sort((a, b) => Date.parse(a.updated_at) - Date.parse(b.updated_at)).reverse().map((i) => i.number);

// @name markdown-report
// @expect "| # | Title | Labels |\n|---|---|---|\n| 101 | Crash when config file is missing | bug, p1 |\n| 104 | Memory leak in worker pool | bug, performance |\n| 106 | Flaky test: api_auth times out | bug, ci |"
const bugs = await mcp.github.list_issues({ label: "bug" });
const rows = bugs.map((b) => `| ${b.number} | ${b.title} | ${b.labels.join(", ")} |`);
return ["| # | Title | Labels |", "|---|---|---|", ...rows].join("\n");

// @name pr-stats-reduce
// @expect {"count":3,"additions":960,"deletions":85,"net":875}
const prs = await mcp.github.list_pull_requests({});
const stats = prs.reduce(
  (acc, pr) => ({ count: acc.count + 1, additions: acc.additions + pr.additions, deletions: acc.deletions + pr.deletions }),
  { count: 0, additions: 0, deletions: 0 },
);
return { ...stats, net: stats.additions - stats.deletions };

// @name prs-join-issues
// @expect [{"pr":201,"issue":"Crash when config file is missing","ready":true},{"pr":202,"issue":"Add dark mode","ready":false}]
const [prs, issues] = await Promise.all([
  mcp.github.list_pull_requests({ state: "open" }),
  mcp.github.list_issues({ state: "all" }),
]);
const byNumber = new Map(issues.map((i) => [i.number, i]));
return prs
  .filter((pr) => pr.linked_issue !== null)
  .map((pr) => ({ pr: pr.number, issue: byNumber.get(pr.linked_issue)?.title, ready: !pr.draft && pr.mergeable === true }));

// @name users-without-email
// @expect ["bob"]
const logins = ["alice", "bob", "carol", "dave"];
const users = await Promise.all(logins.map((login) => mcp.github.get_user({ login })));
return users.filter((u) => u.email == null).map((u) => u.login);

// @name display-names-fallback
// @expect ["Alice Liddell","Bob Builder","Carol Danvers","dave"]
const users = await Promise.all(["alice", "bob", "carol", "dave"].map((login) => mcp.github.get_user({ login })));
return users.map((u) => u.name || u.login);

// @name company-groups-object-entries
// @expect {"Acme":["alice","carol"],"Initech":["dave"],"(none)":["bob"]}
const users = await Promise.all(["alice", "bob", "carol", "dave"].map((login) => mcp.github.get_user({ login })));
const groups = {};
for (const u of users) {
  const key = u.company ?? "(none)";
  groups[key] = [...(groups[key] || []), u.login];
}
return Object.fromEntries(Object.entries(groups).sort(([, a], [, b]) => b.length - a.length));

// @name account-age-years
// @expect {"alice":8,"bob":4,"carol":7,"dave":3}
const asOf = new Date("2024-03-15T00:00:00Z");
const ages = {};
for (const login of ["alice", "bob", "carol", "dave"]) {
  const user = await mcp.github.get_user({ login });
  const created = new Date(user.created_at);
  let years = asOf.getUTCFullYear() - created.getUTCFullYear();
  if (asOf.getUTCMonth() < created.getUTCMonth()) years--;
  ages[login] = years;
}
return ages;

// @name title-keywords
// @expect ["config","crash","dark","file","flaky","leak","memory","missing","mode","node","pool","readme","support","test","times","typo","worker"]
const issues = await mcp.github.list_issues({ state: "all" });
const stop = new Set(["when", "is", "in", "add", "out", "api_auth", "22"]);
const words = issues
  .flatMap((i) => i.title.toLowerCase().split(/[^a-z0-9_]+/))
  .filter((w) => w.length > 1 && !stop.has(w));
return [...new Set(words)].sort();

// @name issue-summary-padding
// @expect ["#101  bug          4","#102  enhancement 12","#104  bug          7","#106  bug          0"]
const issues = await mcp.github.list_issues();
return issues.map((i) => `#${i.number}  ${i.labels[0].padEnd(11)} ${String(i.comments).padStart(2)}`);

// @name check-every-some
// @expect {"allHaveLabels":true,"anyUnassignedBug":true,"everyOpenCommented":false}
const issues = await mcp.github.list_issues({ state: "all" });
return {
  allHaveLabels: issues.every((i) => Array.isArray(i.labels) && i.labels.length > 0),
  anyUnassignedBug: issues.some((i) => i.labels.includes("bug") && i.assignee === null),
  everyOpenCommented: issues.filter((i) => i.state === "open").every((i) => i.comments > 0),
};

// @name find-and-findlast
// @expect {"first":101,"last":106,"index":3}
const issues = await mcp.github.list_issues({ state: "all" });
return {
  first: issues.find((i) => i.labels.includes("bug")).number,
  last: issues.findLast((i) => i.labels.includes("bug")).number,
  index: issues.findIndex((i) => i.title.startsWith("Memory")),
};
