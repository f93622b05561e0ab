// Benign corpus: orders (string prices), JSON config values, docs search, chat messages.

// @name order-totals-parsefloat
// @expect [{"id":"ord_1","total":88.99},{"id":"ord_2","total":199},{"id":"ord_3","total":15.75},{"id":"ord_4","total":105.23}]
const orders = await mcp.shop.list_orders({});
return orders.map((o) => ({
  id: o.id,
  total: Math.round(o.items.reduce((sum, it) => sum + Number.parseFloat(it.price) * it.qty, 0) * 100) / 100,
}));

// @name revenue-shipped-cents
// @expect "194.22 EUR"
const orders = await mcp.shop.list_orders({ status: "shipped" });
let cents = 0;
for (const order of orders) {
  for (const { price, qty } of order.items) cents += Math.round(parseFloat(price) * 100) * qty;
}
return `${(cents / 100).toFixed(2)} ${orders[0].currency}`;

// @name top-customer
// @expect {"customer":"bob@example.com","spent":199}
const orders = await mcp.shop.list_orders();
const spent = {};
for (const o of orders) {
  if (o.status === "cancelled") continue;
  const total = o.items.reduce((s, i) => s + +i.price * i.qty, 0);
  spent[o.customer] = (spent[o.customer] || 0) + total;
}
const [customer, amount] = Object.entries(spent).sort((a, b) => b[1] - a[1])[0];
return { customer, spent: Number(amount.toFixed(2)) };

// @name sku-quantities
// @expect {"KB-01":3,"MS-02":2,"MN-27":1,"CB-10":4}
const orders = await mcp.shop.list_orders();
const qty = {};
orders.flatMap((o) => o.items).forEach(({ sku, qty: n }) => {
  qty[sku] = (qty[sku] ?? 0) + n;
});
return qty;

// @name orders-per-status-groupby-manual
// @expect {"cancelled":["ord_3"],"pending":["ord_2"],"shipped":["ord_1","ord_4"]}
const orders = await mcp.shop.list_orders();
const groups = orders.reduce((acc, o) => {
  acc[o.status] = acc[o.status] || [];
  acc[o.status].push(o.id);
  return acc;
}, {});
return Object.keys(groups).sort().reduce((out, k) => ({ ...out, [k]: groups[k] }), {});

// @name orders-in-march-second-week
// @expect ["ord_2","ord_3"]
const orders = await mcp.shop.list_orders();
const from = new Date("2024-03-08T00:00:00Z");
const to = new Date("2024-03-14T00:00:00Z");
return orders.filter((o) => {
  const at = new Date(o.placed_at);
  return at >= from && at < to;
}).map((o) => o.id);

// @name customer-domains
// @expect ["example.com","example.org"]
const orders = await mcp.shop.list_orders();
return [...new Set(orders.map((o) => o.customer.split("@")[1]))].sort();

// @name mask-emails
// @expect ["a***@example.com","b***@example.com","c***@example.org"]
const orders = await mcp.shop.list_orders();
const unique = Array.from(new Set(orders.map((o) => o.customer)));
return unique.map((email) => email.replace(/^(.)[^@]*(@.*)$/, "$1***$2"));

// @name csv-export
// @expect "id,customer,items,status\nord_1,alice@example.com,2,shipped\nord_2,bob@example.com,1,pending\nord_3,alice@example.com,1,cancelled\nord_4,carol@example.org,2,shipped"
const orders = await mcp.shop.list_orders();
const header = ["id", "customer", "items", "status"];
const lines = orders.map((o) => [o.id, o.customer, o.items.length, o.status].join(","));
return [header.join(","), ...lines].join("\n");

// @name config-json-parse
// @expect {"retries":3,"timeoutSeconds":2.5,"beta":true,"hosts":["api.example.com","backup.example.com"]}
const { value } = await mcp.config.get_value({ key: "app.settings" });
const settings = JSON.parse(value);
return {
  retries: settings.retries,
  timeoutSeconds: settings.timeout_ms / 1000,
  beta: settings.features.beta,
  hosts: settings.endpoints.map((u) => u.replace(/^https?:\/\//, "")),
};

// @name config-enabled-features
// @expect ["beta"]
const { value } = await mcp.config.get_value({ key: "app.settings" });
const { features = {} } = JSON.parse(value);
return Object.entries(features).filter(([, on]) => on).map(([name]) => name);

// @name config-missing-key-default
// @expect {"key":"app.missing","value":"default"}
const res = await mcp.config.get_value({ key: "app.missing" });
return { key: res.key, value: res.value ?? "default" };

// @name config-bad-json-caught
// @expect {"parsed":false,"errorType":"SyntaxError","raw":"2.14.3"}
const { value } = await mcp.config.get_value({ key: "app.version" });
try {
  return { parsed: true, value: JSON.parse(value) };
} catch (e) {
  return { parsed: false, errorType: e instanceof SyntaxError ? "SyntaxError" : typeof e, raw: value };
}

// @name semver-compare
// @expect {"current":"2.14.3","needsUpgrade":true,"cmp":[-1,0,1]}
const { value: current } = await mcp.config.get_value({ key: "app.version" });
const cmp = (a, b) => {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if (pa[i] !== pb[i]) return Math.sign(pa[i] - pb[i]);
  }
  return 0;
};
return { current, needsUpgrade: cmp(current, "2.15.0") < 0, cmp: [cmp("1.9.9", "1.10.0"), cmp(current, "2.14.3"), cmp("3.0.0", current)] };

// @name json-stringify-pretty
// @expect "{\n  \"retries\": 3,\n  \"timeout_ms\": 2500\n}"
const { value } = await mcp.config.get_value({ key: "app.settings" });
const { retries, timeout_ms } = JSON.parse(value);
return JSON.stringify({ retries, timeout_ms }, null, 2);

// @name json-replacer-reviver
// @expect {"text":"{\"name\":\"x\",\"at\":\"2024-03-15\"}","year":2024}
const text = JSON.stringify({ name: "x", secret: "s3cr3t", at: "2024-03-15" }, (k, v) => (k === "secret" ? undefined : v));
const parsed = JSON.parse(text, (k, v) => (k === "at" ? new Date(v) : v));
return { text, year: parsed.at.getUTCFullYear() };

// @name docs-best-result
// @expect {"title":"Getting started","host":"docs.example.com","path":"/start"}
const { results } = await mcp.docs.search({ query: "how do I start" });
const best = results.reduce((a, b) => (b.score > a.score ? b : a));
const [, host, path] = best.url.match(/^https:\/\/([^/]+)(\/[^?#]*)/);
return { title: best.title, host, path };

// @name docs-scores-percent
// @expect ["Getting started (92%)","Configuration reference (81%)","Troubleshooting crashes (67%)"]
const { results } = await mcp.docs.search({ query: "config" });
return results.filter((r) => r.score >= 0.5).map((r) => `${r.title} (${Math.round(r.score * 100)}%)`);

// @name docs-url-parse-with-URL
// @expect [{"path":"/start","lang":"en"},{"path":"/config","lang":null},{"path":"/crashes","lang":null}]
const { results } = await mcp.docs.search({ query: "anything" });
return results.map((r) => {
  const u = new URL(r.url);
  return { path: u.pathname, lang: u.searchParams.get("lang") };
});

// @name slack-post-summary
// @expect {"ok":true,"channel":"#eng","text":"3 open bugs: #101, #104, #106"}
const bugs = await mcp.github.list_issues({ label: "bug" });
const text = `${bugs.length} open bugs: ${bugs.map((b) => "#" + b.number).join(", ")}`;
const res = await mcp.slack.post_message({ channel: "#eng", text });
return { ok: res.ok, channel: res.channel, text: res.text };

// @name slack-retry-on-bad-channel
// @expect {"attempts":["eng","#eng"],"ts":"1710513000.000100"}
const attempts = [];
let posted;
for (const channel of ["eng", "#eng"]) {
  attempts.push(channel);
  try {
    posted = await mcp.slack.post_message({ channel, text: "deploy done" });
    break;
  } catch (e) {
    if (!(e instanceof McpToolError) || e.message !== "channel_not_found") throw e;
  }
}
return { attempts, ts: posted.ts };

// @name slack-ts-to-date
// @expect "2024-03-15T14:30:00.000Z"
const { ts } = await mcp.slack.post_message({ channel: "#general", text: "hi" });
const [secs, micros] = ts.split(".");
return new Date(Number(secs) * 1000 + Math.floor(Number(micros) / 1000)).toISOString();

// @name weather-report-to-slack
// @expect "Weather:\n- Berlin 12.5°C Cloudy\n- Oslo -2.5°C Snow"
const lines = [];
for (const city of ["Berlin", "Oslo"]) {
  const { temperature_c, condition } = await mcp.weather.get_current({ city });
  lines.push(`- ${city} ${temperature_c}°C ${condition}`);
}
const { text } = await mcp.slack.post_message({ channel: "#weather", text: ["Weather:", ...lines].join("\n") });
return text;
