// Benign corpus: TypeScript, as models write it with types for tool results.

// @name ts-interface-typed-issues
// @expect [{"id":101,"title":"Crash when config file is missing","priority":"high"},{"id":104,"title":"Memory leak in worker pool","priority":"normal"},{"id":106,"title":"Flaky test: api_auth times out","priority":"normal"}]
interface Issue {
  number: number;
  title: string;
  labels: string[];
  assignee: { login: string } | null;
}
type Priority = "high" | "normal";
const issues: Issue[] = await mcp.github.list_issues({ label: "bug" });
const priorityOf = (i: Issue): Priority => (i.labels.includes("p1") ? "high" : "normal");
return issues.map((i) => ({ id: i.number, title: i.title, priority: priorityOf(i) }));

// @name ts-generic-helper
// @expect {"alice":2,"bob":2}
function groupCount<T, K extends string>(items: readonly T[], key: (t: T) => K): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}
const issues = await mcp.github.list_issues({});
return groupCount(issues, (i: { user: { login: string } }) => i.user.login);

// @name ts-class-with-access-modifiers
// @expect "Oslo: -2.5°C, feels like -9.1°C"
class WeatherReport {
  constructor(private readonly city: string, private readonly t: number, private readonly windKph: number) {}
  feelsLike(): number {
    const v = Math.pow(this.windKph, 0.16);
    return Math.round((13.12 + 0.6215 * this.t - 11.37 * v + 0.3965 * this.t * v) * 10) / 10;
  }
  public toString(): string {
    return `${this.city}: ${this.t}°C, feels like ${this.feelsLike()}°C`;
  }
}
const w = await mcp.weather.get_current({ city: "Oslo" });
return new WeatherReport(w.city, w.temperature_c, w.wind_kph).toString();

// @name ts-enum-and-switch
// @expect ["Berlin:CLOUD","Lisbon:SUN","Oslo:SNOW","Tokyo:SUN"]
enum Sky {
  Sun = "SUN",
  Cloud = "CLOUD",
  Snow = "SNOW",
}
function sky(condition: string): Sky {
  switch (condition) {
    case "Snow":
      return Sky.Snow;
    case "Cloudy":
      return Sky.Cloud;
    default:
      return Sky.Sun;
  }
}
const out: string[] = [];
for (const city of ["Berlin", "Lisbon", "Oslo", "Tokyo"] as const) {
  const w = await mcp.weather.get_current({ city });
  out.push(`${city}:${sky(w.condition)}`);
}
return out;

// @name ts-non-null-and-as-casts
// @expect {"email":"ALICE@EXAMPLE.COM","repos":42}
type User = { login: string; email: string | null; public_repos: number };
const u = (await mcp.github.get_user({ login: "alice" })) as User;
return { email: u.email!.toUpperCase(), repos: <number>u.public_repos };

// @name ts-type-guard-error
// @expect {"kind":"tool","detail":"github.get_issue: issue #404 not found"}
function isToolError(e: unknown): e is McpToolError {
  return e instanceof McpToolError;
}
try {
  await mcp.github.get_issue({ number: 404 });
  return { kind: "none" };
} catch (e: unknown) {
  if (isToolError(e)) return { kind: "tool", detail: `${e.server}.${e.tool}: ${e.message}` };
  return { kind: "other", detail: String(e) };
}

// @name ts-satisfies-and-const
// @expect {"cities":["Berlin","Tokyo"],"unit":"C"}
const config = { cities: ["Berlin", "Tokyo"], unit: "C" } satisfies { cities: string[]; unit: "C" | "F" };
const res = await Promise.all(config.cities.map((city) => mcp.weather.get_forecast({ city, days: 1 })));
return { cities: res.map((r) => r.city), unit: res[0].unit };

// @name ts-arrow-form-typed
// @expect {"orders":3,"revenue":"393.22"}
async (mcp: any): Promise<{ orders: number; revenue: string }> => {
  type Item = { price: string; qty: number };
  type Order = { status: string; items: Item[] };
  const orders: Order[] = await mcp.shop.list_orders({});
  const live = orders.filter((o) => o.status !== "cancelled");
  const cents = live.flatMap((o) => o.items).reduce((s: number, i: Item) => s + Math.round(parseFloat(i.price) * 100) * i.qty, 0);
  return { orders: live.length, revenue: (cents / 100).toFixed(2) };
};

// @name ts-record-and-partial
// @expect {"Berlin":{"high":14},"Oslo":{"high":0}}
type Day = { date: string; high: number; low: number };
const firstHighs: Record<string, Partial<Day>> = {};
for (const city of ["Berlin", "Oslo"]) {
  const { days }: { days: Day[] } = await mcp.weather.get_forecast({ city, days: 1 });
  firstHighs[city] = { high: days[0].high };
}
return firstHighs;

// @name ts-abstract-class
// @expect ["issue #101","user alice"]
abstract class Entity {
  abstract kind: string;
  abstract id(): string | number;
  label(): string {
    return `${this.kind} ${this.id()}`;
  }
}
class IssueEntity extends Entity {
  kind = "issue";
  constructor(private n: number) {
    super();
  }
  id() {
    return `#${this.n}`;
  }
}
class UserEntity extends Entity {
  kind = "user";
  constructor(private login: string) {
    super();
  }
  id() {
    return this.login;
  }
}
const issue = await mcp.github.get_issue({ number: 101 });
return [new IssueEntity(issue.number), new UserEntity(issue.user.login)].map((e) => e.label());

// @name ts-optional-params-overloads
// @expect ["Berlin (3 days)","Tokyo (1 day)"]
function describeForecast(city: string, days?: number): string;
function describeForecast(city: string, days = 3): string {
  return `${city} (${days} day${days === 1 ? "" : "s"})`;
}
const a = await mcp.weather.get_forecast({ city: "Berlin" });
const b = await mcp.weather.get_forecast({ city: "Tokyo", days: 1 });
return [describeForecast(a.city, a.days.length), describeForecast(b.city, b.days.length)];

// @name ts-generic-arrow-in-tsx-style
// @expect ["alice","bob"]
const uniq = <T,>(xs: T[]): T[] => [...new Set(xs)];
const issues = await mcp.github.list_issues({ label: "bug" });
return uniq(issues.map((i: any) => i.user.login as string));
