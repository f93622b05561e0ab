// Benign corpus: the second form of the code contract, a single async arrow (or function) called
// with the bindings.

// @name arrow-open-issue-count
// @expect 4
async (mcp) => {
  const issues = await mcp.github.list_issues({ state: "open" });
  return issues.length;
};

// @name arrow-no-semicolon
// @expect "2024-03-15T14:30:00Z"
async (mcp) => {
  const time = await mcp.time.get_current_time({ timezone: "UTC" });
  return time.datetime;
}

// @name arrow-destructured-param
// @expect {"Berlin":"Cloudy","Tokyo":"Clear"}
async ({ weather }) => {
  const [b, t] = await Promise.all([weather.get_current({ city: "Berlin" }), weather.get_current({ city: "Tokyo" })]);
  return { [b.city]: b.condition, [t.city]: t.condition };
};

// @name arrow-expression-body
// @expect "Alice Liddell"
async (mcp) => (await mcp.github.get_user({ login: "alice" })).name;

// @name async-function-expression
// @expect ["#101 Crash when config file is missing","#104 Memory leak in worker pool","#106 Flaky test: api_auth times out"]
// Known false positive (syntax-error): the function form accepts arrows and named `async function f(mcp) {}` but not an anonymous `async function (mcp) {}`, which the README promises ("a single async arrow (or function) expression").
// @known rejected syntax-error
async function (mcp) {
  const bugs = await mcp.github.list_issues({ label: "bug" });
  return bugs.map((b) => `#${b.number} ${b.title}`);
}

// @name named-async-function-expression
// @expect {"pending":1,"shipped":2}
async function main(mcp) {
  const orders = await mcp.shop.list_orders({});
  const counts = {};
  for (const o of orders) if (o.status !== "cancelled") counts[o.status] = (counts[o.status] || 0) + 1;
  return counts;
}

// @name arrow-with-helpers-inside
// @expect [{"login":"alice","open":2},{"login":"bob","open":2}]
async (mcp) => {
  const countBy = (xs, f) => xs.reduce((m, x) => m.set(f(x), (m.get(f(x)) || 0) + 1), new Map());
  const issues = await mcp.github.list_issues();
  return [...countBy(issues, (i) => i.user.login)].map(([login, open]) => ({ login, open }));
};

// @name arrow-try-catch-mcp-error
// @expect {"error":"McpToolError","server":"weather","tool":"get_forecast"}
async (mcp) => {
  try {
    await mcp.weather.get_forecast({ city: "Nowhere" });
    return null;
  } catch (e) {
    return e instanceof McpToolError ? { error: e.name, server: e.server, tool: e.tool } : { error: String(e) };
  }
};

// @name arrow-leading-comment
// @expect 3
// Count the closed issues and open pull requests.
async (mcp) => {
  const [closed, prs] = await Promise.all([
    mcp.github.list_issues({ state: "closed" }),
    mcp.github.list_pull_requests({ state: "open" }),
  ]);
  return closed.length + prs.length - 1;
};

// @name arrow-class-inside
// @expect "Lisbon 19°C (feels warm)"
async (mcp) => {
  class Reading {
    constructor({ city, temperature_c }) {
      this.city = city;
      this.t = temperature_c;
    }
    describe() {
      return `${this.city} ${this.t}°C (feels ${this.t >= 18 ? "warm" : "cool"})`;
    }
  }
  return new Reading(await mcp.weather.get_current({ city: "Lisbon" })).describe();
};

// @name arrow-this-free-reduce
// @expect {"additions":960,"files":"n/a"}
async (mcp) => {
  const prs = await mcp.github.list_pull_requests({});
  const { additions, files = "n/a" } = prs.reduce((acc, p) => ({ ...acc, additions: (acc.additions ?? 0) + p.additions }), {});
  return { additions, files };
};

// @name arrow-slack-notify-each
// @expect ["#eng: Berlin Cloudy","#eng: Oslo Snow"]
async (mcp) => {
  const out = [];
  for (const city of ["Berlin", "Oslo"]) {
    const w = await mcp.weather.get_current({ city });
    const r = await mcp.slack.post_message({ channel: "#eng", text: `${w.city} ${w.condition}` });
    out.push(`${r.channel}: ${r.text}`);
  }
  return out;
};
