// Benign corpus: web-platform and newer built-ins that Node (and browsers) provide and models reach for.

// @name intl-number-format-currency
// @expect "€194.22"
const orders = await mcp.shop.list_orders({ status: "shipped" });
const total = orders.flatMap((o) => o.items).reduce((s, i) => s + Number(i.price) * i.qty, 0);
return new Intl.NumberFormat("en-US", { style: "currency", currency: "EUR" }).format(total);

// @name intl-datetime-format
// @expect "Friday, March 15, 2024"
const { datetime } = await mcp.time.get_current_time({ timezone: "UTC" });
return new Intl.DateTimeFormat("en-US", { weekday: "long", year: "numeric", month: "long", day: "numeric", timeZone: "UTC" }).format(new Date(datetime));

// @name to-locale-string-number
// @expect "1,200"
const u = await mcp.github.get_user({ login: "alice" });
return u.followers.toLocaleString("en-US");

// @name to-locale-date-string-timezone
// @expect "3/15/2024"
const { datetime } = await mcp.time.get_current_time({ timezone: "UTC" });
return new Date(datetime).toLocaleDateString("en-US", { timeZone: "UTC" });

// @name url-search-params-build
// @expect "state=open&label=bug&q=api_auth+times+out"
const params = new URLSearchParams({ state: "open", label: "bug" });
params.append("q", "api_auth times out");
return params.toString();

// @name text-encoder-byte-length
// @expect {"chars":34,"bytes":36}
const { title } = await mcp.github.get_issue({ number: 101 });
const text = title + "…";
return { chars: text.length, bytes: new TextEncoder().encode(text).length };

// @name structured-clone-issue
// @expect {"same":false,"labels":["bug","p1"]}
const issue = await mcp.github.get_issue({ number: 101 });
const copy = structuredClone(issue);
copy.labels.push("x");
return { same: copy === issue, labels: issue.labels };

// @name crypto-random-uuid-format
// @expect true
const id = crypto.randomUUID();
return /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id);

// @name btoa-atob-roundtrip
// @expect {"encoded":"YWxpY2U6czNjcjN0","decoded":"alice:s3cr3t"}
const encoded = btoa("alice:s3cr3t");
return { encoded, decoded: atob(encoded) };

// @name console-table
// @expect 4
const issues = await mcp.github.list_issues();
console.table(issues.map(({ number, title }) => ({ number, title })));
return issues.length;

// @name object-groupby
// @node 21
// @expect {"open":[101,102,104,106],"closed":[103,105]}
const issues = await mcp.github.list_issues({ state: "all" });
const groups = Object.groupBy(issues, (i) => i.state);
return { open: groups.open.map((i) => i.number), closed: groups.closed.map((i) => i.number) };

// @name queue-microtask
// @expect ["sync","microtask"]
const order = [];
await new Promise((resolve) => {
  queueMicrotask(() => {
    order.push("microtask");
    resolve();
  });
  order.push("sync");
});
return order;

// @name abort-controller-timeout
// @expect "Berlin"
const controller = new AbortController();
const timer = setTimeout(() => controller.abort(), 5000);
try {
  const w = await mcp.weather.get_current({ city: "Berlin" });
  return w.city;
} finally {
  clearTimeout(timer);
}

// @name performance-now-elapsed
// @expect true
const t0 = performance.now();
await mcp.github.list_issues();
const elapsed = performance.now() - t0;
return typeof elapsed === "number" && elapsed >= 0;

// @name string-iswellformed-at
// @expect {"first":"C","last":"g","wf":true}
const { title } = await mcp.github.get_issue({ number: 101 });
return { first: title.at(0), last: title.at(-1), wf: title.isWellFormed() };

// @name array-from-async
// @node 22
// @expect ["Cloudy","Snow"]
async function* readings() {
  yield await mcp.weather.get_current({ city: "Berlin" });
  yield await mcp.weather.get_current({ city: "Oslo" });
}
const list = await Array.fromAsync(readings());
return list.map((w) => w.condition);

// @name date-to-locale-time-string
// @expect "14:30"
const { datetime } = await mcp.time.get_current_time({ timezone: "UTC" });
return new Date(datetime).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
