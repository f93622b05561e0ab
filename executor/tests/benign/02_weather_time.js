// Benign corpus: weather and time tools, dates and numbers.

// @name current-weather-summary
// @expect "Berlin: 12.5°C, Cloudy, humidity 71%"
const w = await mcp.weather.get_current({ city: "Berlin" });
return `${w.city}: ${w.temperature_c}°C, ${w.condition}, humidity ${w.humidity}%`;

// @name fahrenheit-conversion
// @expect {"Berlin":54.5,"Lisbon":66.2,"Oslo":27.5,"Tokyo":60.8}
const cities = ["Berlin", "Lisbon", "Oslo", "Tokyo"];
const readings = await Promise.all(cities.map((city) => mcp.weather.get_current({ city })));
const out = {};
for (const r of readings) out[r.city] = Math.round((r.temperature_c * 9 / 5 + 32) * 10) / 10;
return out;

// @name warmest-city
// @expect "Lisbon"
const cities = ["Berlin", "Lisbon", "Oslo", "Tokyo"];
const readings = await Promise.all(cities.map((city) => mcp.weather.get_current({ city })));
return readings.reduce((best, r) => (r.temperature_c > best.temperature_c ? r : best)).city;

// @name below-freezing
// @expect [{"city":"Oslo","t":-2.5}]
const cities = ["Berlin", "Lisbon", "Oslo", "Tokyo"];
const cold = [];
for (const city of cities) {
  const { temperature_c: t } = await mcp.weather.get_current({ city });
  if (t < 0) cold.push({ city, t });
}
return cold;

// @name forecast-rain-days
// @expect ["2024-03-16"]
const f = await mcp.weather.get_forecast({ city: "Berlin", days: 3 });
return f.days.filter((d) => d.condition === "Rain").map((d) => d.date);

// @name forecast-averages-tofixed
// @expect {"city":"Berlin","avgHigh":"13.33","avgLow":"4.67","totalPrecip":4.7}
const { city, days } = await mcp.weather.get_forecast({ city: "Berlin" });
const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
return {
  city,
  avgHigh: avg(days.map((d) => d.high)).toFixed(2),
  avgLow: avg(days.map((d) => d.low)).toFixed(2),
  totalPrecip: Number(days.reduce((s, d) => s + d.precip_mm, 0).toFixed(1)),
};

// @name forecast-weekday-names
// @expect ["Sat","Sun","Mon"]
const { days } = await mcp.weather.get_forecast({ city: "Tokyo" });
const names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
return days.map((d) => names[new Date(d.date + "T00:00:00Z").getUTCDay()]);

// @name unknown-city-fallback
// @expect {"city":"Atlantis","error":"unknown city 'Atlantis'","fallback":"Lisbon"}
async function weatherOr(city, fallback) {
  try {
    return await mcp.weather.get_current({ city });
  } catch (e) {
    const w = await mcp.weather.get_current({ city: fallback });
    return { ...w, error: e.message, requested: city };
  }
}
const w = await weatherOr("Atlantis", "Lisbon");
return { city: w.requested, error: w.error, fallback: w.city };

// @name temperature-range-spread
// @expect {"Berlin":12,"Lisbon":9,"Oslo":9,"Tokyo":10}
const result = {};
for (const city of ["Berlin", "Lisbon", "Oslo", "Tokyo"]) {
  const { days } = await mcp.weather.get_forecast({ city });
  const highs = days.map((d) => d.high);
  const lows = days.map((d) => d.low);
  result[city] = Math.max(...highs) - Math.min(...lows);
}
return result;

// @name packing-advice
// @expect ["Oslo: coat","Berlin: umbrella","Tokyo: umbrella","Lisbon: sunglasses"]
const cities = ["Oslo", "Berlin", "Tokyo", "Lisbon"];
const forecasts = await Promise.all(cities.map((city) => mcp.weather.get_forecast({ city, days: 2 })));
return forecasts.map(({ city, days }) => {
  const advice = days.some((d) => d.low < 0) ? "coat" : days.some((d) => d.precip_mm > 1) ? "umbrella" : "sunglasses";
  return `${city}: ${advice}`;
});

// @name current-time-utc-parts
// @expect {"date":"2024-03-15","hour":14,"minute":30,"weekday":5}
const t = await mcp.time.get_current_time({ timezone: "UTC" });
const d = new Date(t.datetime);
return { date: d.toISOString().slice(0, 10), hour: d.getUTCHours(), minute: d.getUTCMinutes(), weekday: d.getUTCDay() };

// @name timezones-same-instant
// @expect {"same":true,"iso":"2024-03-15T14:30:00.000Z"}
const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
const times = await Promise.all(zones.map((timezone) => mcp.time.get_current_time({ timezone })));
const instants = times.map((t) => new Date(t.datetime).getTime());
return { same: instants.every((x) => x === instants[0]), iso: new Date(instants[0]).toISOString() };

// @name utc-offset-parse
// @expect [["UTC",0],["Europe/Berlin",60],["America/New_York",-240],["Asia/Tokyo",540]]
const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
const out = [];
for (const timezone of zones) {
  const { utc_offset } = await mcp.time.get_current_time({ timezone });
  const [, sign, hh, mm] = /^([+-])(\d{2}):(\d{2})$/.exec(utc_offset);
  out.push([timezone, (sign === "-" ? -1 : 1) * (Number(hh) * 60 + Number(mm))]);
}
return out;

// @name meeting-in-two-hours
// @expect {"start":"2024-03-15T16:30:00.000Z","end":"2024-03-15T17:15:00.000Z"}
const { datetime } = await mcp.time.get_current_time({});
const start = new Date(new Date(datetime).getTime() + 2 * 60 * 60 * 1000);
const end = new Date(start);
end.setUTCMinutes(end.getUTCMinutes() + 45);
return { start: start.toISOString(), end: end.toISOString() };

// @name dst-zones
// @expect ["America/New_York"]
const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
const times = await Promise.all(zones.map((timezone) => mcp.time.get_current_time({ timezone })));
return times.filter((t) => t.is_dst).map((t) => t.timezone);

// @name bad-timezone-error
// @expect {"ok":false,"error":"McpToolError: unknown timezone 'Mars/Olympus'"}
try {
  await mcp.time.get_current_time({ timezone: "Mars/Olympus" });
  return { ok: true };
} catch (error) {
  return { ok: false, error: `${error.name}: ${error.message}` };
}

// @name end-of-month
// @expect {"lastDay":31,"daysLeft":16,"nextMonth":"2024-04-01"}
const { datetime } = await mcp.time.get_current_time({ timezone: "UTC" });
const now = new Date(datetime);
const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 0));
const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
return { lastDay: last.getUTCDate(), daysLeft: last.getUTCDate() - now.getUTCDate(), nextMonth: next.toISOString().split("T")[0] };

// @name leap-year-check
// @expect {"2023":false,"2024":true,"1900":false,"2000":true}
const isLeap = (y) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const viaDate = (y) => new Date(Date.UTC(y, 1, 29)).getUTCMonth() === 1;
const out = {};
for (const y of [2023, 2024, 1900, 2000]) {
  if (isLeap(y) !== viaDate(y)) throw new Error(`disagree on ${y}`);
  out[y] = isLeap(y);
}
return out;

// @name date-json-roundtrip
// @expect {"json":"{\"when\":\"2024-03-15T14:30:00.000Z\"}","back":1710513000000}
const { datetime } = await mcp.time.get_current_time({ timezone: "UTC" });
const json = JSON.stringify({ when: new Date(datetime) });
const back = new Date(JSON.parse(json).when).valueOf();
return { json, back };

// @name weather-observed-minutes-ago
// @expect 30
const [w, t] = await Promise.all([mcp.weather.get_current({ city: "Oslo" }), mcp.time.get_current_time({ timezone: "UTC" })]);
return (Date.parse(t.datetime) - Date.parse(w.observed_at)) / 60000;

// @name humidity-classes-switch
// @expect {"Berlin":"humid","Lisbon":"comfortable","Oslo":"very humid","Tokyo":"comfortable"}
function classify(h) {
  switch (true) {
    case h >= 80:
      return "very humid";
    case h >= 65:
      return "humid";
    default:
      return "comfortable";
  }
}
const out = {};
for (const city of ["Berlin", "Lisbon", "Oslo", "Tokyo"]) {
  out[city] = classify((await mcp.weather.get_current({ city })).humidity);
}
return out;

// @name wind-beaufort
// @expect [["Berlin",3],["Lisbon",2],["Oslo",4],["Tokyo",2]]
const limits = [1, 5, 11, 19, 28, 38, 49, 61, 74, 88, 102, 117];
const beaufort = (kph) => {
  const i = limits.findIndex((l) => kph <= l);
  return i === -1 ? 12 : i;
};
const cities = ["Berlin", "Lisbon", "Oslo", "Tokyo"];
const ws = await Promise.all(cities.map((city) => mcp.weather.get_current({ city })));
return ws.map((w) => [w.city, beaufort(w.wind_kph)]);
