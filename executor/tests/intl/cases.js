// Intl in the sandbox against Node: each case runs as the body of an async function, in the sandbox
// (executor/tests/intl.rs) and on Node (node_expect.mjs, which writes expected.json). A case's outcome
// is its returned value or its thrown error's name and message, and its console lines. Dates are fixed
// instants: the sandbox's clock and Node's differ.

// @name dtf-default
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return [new Intl.DateTimeFormat().format(d), new Intl.DateTimeFormat("en-US").format(new Date(d)), Intl.DateTimeFormat("en-GB").format(d)];

// @name dtf-new-york-winter-and-summer
const f = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", dateStyle: "medium", timeStyle: "long" });
return [f.format(Date.UTC(2024, 0, 15, 12)), f.format(Date.UTC(2024, 6, 15, 12))];

// @name dtf-dst-spring-forward-new-york
const f = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
const t = Date.UTC(2024, 2, 10, 7); // 03:00 EDT, one second after 01:59:59 EST
return [f.format(t - 1000), f.format(t)];

// @name dtf-dst-fall-back-london
const f = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
return [f.format(Date.UTC(2024, 9, 27, 0, 30)), f.format(Date.UTC(2024, 9, 27, 1, 30))];

// @name dtf-half-hour-and-quarter-hour-zones
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return ["Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Pacific/Chatham", "America/St_Johns"].map((timeZone) =>
  new Intl.DateTimeFormat("en-US", { timeZone, hour: "numeric", minute: "numeric" }).format(d));

// @name dtf-kolkata-in-en-in
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return new Intl.DateTimeFormat("en-IN", { timeZone: "Asia/Kolkata", dateStyle: "medium", timeStyle: "short" }).format(d);

// @name dtf-southern-hemisphere-dst
const f = new Intl.DateTimeFormat("en-AU", { timeZone: "Australia/Sydney", hour: "numeric", timeZoneName: "short" });
return [f.format(Date.UTC(2024, 0, 1, 0)), f.format(Date.UTC(2024, 6, 1, 0))];

// @name dtf-date-styles-en-us
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return ["full", "long", "medium", "short"].map((dateStyle) => new Intl.DateTimeFormat("en-US", { dateStyle }).format(d));

// @name dtf-time-styles-en-us
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return ["full", "long", "medium", "short"].map((timeStyle) => new Intl.DateTimeFormat("en-US", { timeStyle, timeZone: "UTC" }).format(d));

// @name dtf-date-and-time-style
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return [
  new Intl.DateTimeFormat("en-US", { dateStyle: "long", timeStyle: "short" }).format(d),
  new Intl.DateTimeFormat("en-GB", { dateStyle: "short", timeStyle: "short" }).format(d),
  new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "medium" }).format(d),
];

// @name dtf-long-date-in-many-locales
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return ["en-GB", "de", "fr", "es", "pt-BR", "ru", "ja", "zh", "hi", "ko", "it", "nl"].map((l) => [l, new Intl.DateTimeFormat(l, { dateStyle: "long" }).format(d)]);

// @name dtf-short-date-in-many-locales
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return ["en-GB", "en-IN", "de", "fr", "es", "ja", "zh", "ru", "pt"].map((l) => [l, new Intl.DateTimeFormat(l).format(d)]);

// @name dtf-components-weekday-month-long
const d = Date.UTC(2024, 2, 15, 9, 30);
return new Intl.DateTimeFormat("en-US", { weekday: "long", year: "numeric", month: "long", day: "numeric" }).format(d);

// @name dtf-components-month-short-day
const d = Date.UTC(2024, 2, 15, 9, 30);
return [
  new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric" }).format(d),
  new Intl.DateTimeFormat("en-US", { year: "numeric", month: "short", day: "numeric" }).format(d),
  new Intl.DateTimeFormat("en-US", { month: "long", year: "numeric" }).format(d),
  new Intl.DateTimeFormat("en-US", { weekday: "short" }).format(d),
  new Intl.DateTimeFormat("de-DE", { weekday: "long", day: "numeric", month: "long" }).format(d),
];

// @name dtf-two-digit-fields
const d = Date.UTC(2024, 2, 5, 9, 3, 7);
return [
  new Intl.DateTimeFormat("en-US", { year: "numeric", month: "2-digit", day: "2-digit" }).format(d),
  new Intl.DateTimeFormat("en-US", { hour: "2-digit", minute: "2-digit" }).format(d),
];

// @name dtf-hour-cycles
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return [
  new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "numeric", hour12: false }).format(d),
  new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "numeric", hourCycle: "h23" }).format(d),
  new Intl.DateTimeFormat("en-GB", { hour: "numeric", minute: "numeric", hour12: true }).format(d),
  new Intl.DateTimeFormat("de", { timeStyle: "short" }).format(d),
  new Intl.DateTimeFormat("fr", { timeStyle: "medium" }).format(d),
];

// @name dtf-time-zone-name-short
const d = Date.UTC(2024, 6, 5, 15, 4, 5);
return ["UTC", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "Asia/Kolkata"].map((timeZone) =>
  new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "short" }).format(d));

// @name dtf-format-to-parts
const d = Date.UTC(2024, 0, 5, 15, 4, 5);
return new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short" }).formatToParts(d);

// @name dtf-resolved-options
return [
  new Intl.DateTimeFormat().resolvedOptions(),
  new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "numeric", minute: "numeric" }).resolvedOptions(),
  new Intl.DateTimeFormat("de", { dateStyle: "short" }).resolvedOptions(),
];

// @name dtf-time-zone-case-is-normalized
return [new Intl.DateTimeFormat("en", { timeZone: "america/new_york" }).resolvedOptions().timeZone, new Intl.DateTimeFormat("en", { timeZone: "utc" }).resolvedOptions().timeZone];

// @name dtf-invalid-time-zone
try { new Intl.DateTimeFormat("en", { timeZone: "Mars/Olympus_Mons" }); } catch (e) { return [e.name, e.message]; }

// @name dtf-invalid-locale
try { new Intl.DateTimeFormat("en_US"); } catch (e) { return [e.name, e.message]; }

// @name dtf-invalid-option-value
try { new Intl.DateTimeFormat("en", { dateStyle: "huge" }); } catch (e) { return [e.name, e.message]; }

// @name dtf-style-with-components
try { new Intl.DateTimeFormat("en", { dateStyle: "short", year: "numeric" }); } catch (e) { return [e.name, e.message]; }

// @name dtf-invalid-date
try { new Intl.DateTimeFormat("en").format(NaN); } catch (e) { return [e.name, e.message, new Date(NaN).toLocaleString()]; }

// @name dtf-unsupported-locale-falls-back
return [new Intl.DateTimeFormat("tlh").resolvedOptions().locale, new Intl.DateTimeFormat(["tlh", "fr-CA"]).resolvedOptions().locale];

// @name date-to-locale-string
const d = new Date(Date.UTC(2024, 0, 5, 15, 4, 5));
return [d.toLocaleString(), d.toLocaleDateString(), d.toLocaleTimeString(), d.toLocaleString("en-GB"), d.toLocaleString("de-DE")];

// @name date-to-locale-string-time-zone
const d = new Date(Date.UTC(2024, 6, 4, 2, 30));
return [
  d.toLocaleString("en-US", { timeZone: "America/Los_Angeles" }),
  d.toLocaleDateString("en-US", { timeZone: "America/Los_Angeles" }),
  d.toLocaleTimeString("en-US", { timeZone: "Asia/Kolkata" }),
  d.toLocaleDateString("en-US", { weekday: "long", month: "long", day: "numeric", timeZone: "Asia/Tokyo" }),
  d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "Europe/London" }),
];

// @name date-to-locale-time-string-rejects-date-style
try { new Date(0).toLocaleTimeString("en", { dateStyle: "short" }); } catch (e) { return [e.name]; }

// @name nf-default-grouping
return [new Intl.NumberFormat().format(1234567.891), new Intl.NumberFormat("en-US").format(-0.5), new Intl.NumberFormat().format(1e21), new Intl.NumberFormat().format(NaN), new Intl.NumberFormat().format(-Infinity)];

// @name nf-fraction-digits
const f = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
return [f.format(1), f.format(1.005), f.format(2.345), f.format(1234.5), new Intl.NumberFormat("en", { maximumFractionDigits: 0 }).format(2.5), new Intl.NumberFormat("en", { minimumFractionDigits: 3 }).format(7)];

// @name nf-locales
const n = 1234567.891;
return ["de-DE", "fr-FR", "es-ES", "en-IN", "hi-IN", "ja-JP", "pt-BR", "ru-RU", "ar-EG", "zh-CN"].map((l) => [l, new Intl.NumberFormat(l).format(n)]);

// @name nf-percent
return [new Intl.NumberFormat("en-US", { style: "percent" }).format(0.256), new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 }).format(0.2567), new Intl.NumberFormat("de-DE", { style: "percent" }).format(0.5), new Intl.NumberFormat("fr", { style: "percent" }).format(-1.5)];

// @name nf-currency
const n = 1234.5;
return [
  new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" }).format(n),
  new Intl.NumberFormat("de-DE", { style: "currency", currency: "EUR" }).format(n),
  new Intl.NumberFormat("ja-JP", { style: "currency", currency: "JPY" }).format(n),
  new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" }).format(123456.789),
  new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" }).format(-n),
  new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" }).format(n),
  new Intl.NumberFormat("en-US", { style: "currency", currency: "eur" }).format(n),
];

// @name nf-currency-code-display
return new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", currencyDisplay: "code" }).format(12.5);

// @name nf-compact
const f = new Intl.NumberFormat("en-US", { notation: "compact" });
return [f.format(999), f.format(1234), f.format(12345), f.format(1234567), f.format(2.5e9), new Intl.NumberFormat("de", { notation: "compact" }).format(1234567)];

// @name nf-significant-digits-and-grouping
return [
  new Intl.NumberFormat("en", { maximumSignificantDigits: 3 }).format(123456),
  new Intl.NumberFormat("en", { minimumSignificantDigits: 5 }).format(1.5),
  new Intl.NumberFormat("en", { useGrouping: false }).format(1234567),
  new Intl.NumberFormat("en", { minimumIntegerDigits: 3 }).format(7),
];

// @name nf-format-to-parts
return new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" }).formatToParts(-1234.5);

// @name nf-resolved-options
return [new Intl.NumberFormat().resolvedOptions().locale, new Intl.NumberFormat("de", { style: "currency", currency: "EUR" }).resolvedOptions().maximumFractionDigits];

// @name nf-errors
const out = [];
for (const o of [{ style: "currency" }, { style: "currency", currency: "US" }, { maximumFractionDigits: 200 }, { style: "bogus" }]) {
  try { new Intl.NumberFormat("en", o); out.push("ok"); } catch (e) { out.push([e.name, e.message]); }
}
return out;

// @name number-to-locale-string
return [(1234567.891).toLocaleString(), (1234.5).toLocaleString("de-DE"), (0.5).toLocaleString("en-US", { style: "percent" }), (42).toLocaleString("en-US", { style: "currency", currency: "USD" }), (1200).toLocaleString("en-US")];

// @name collator-sort-accented
const words = ["résumé", "resume", "Résumé", "rèsume", "zebra", "apple", "Äpfel", "apfel", "Zebra", "éclair", "eclair"];
return [[...words].sort(new Intl.Collator("en").compare), [...words].sort((a, b) => a.localeCompare(b))];

// @name collator-sensitivity
const pairs = [["a", "á"], ["a", "A"], ["a", "b"], ["résumé", "Resume"]];
return ["base", "accent", "case", "variant"].map((sensitivity) => {
  const c = new Intl.Collator("en", { sensitivity });
  return [sensitivity, pairs.map(([x, y]) => c.compare(x, y))];
});

// @name collator-locales
const words = ["zebra", "äpple", "apple", "öl", "ol", "zoo"];
return [[...words].sort(new Intl.Collator("de").compare), [...words].sort(new Intl.Collator("sv").compare)];

// @name collator-numeric
return ["item10", "item2", "item1"].sort(new Intl.Collator("en", { numeric: true }).compare);

// @name locale-compare
return ["a".localeCompare("b"), "b".localeCompare("a"), "a".localeCompare("a"), "a".localeCompare("A"), "é".localeCompare("e", "en", { sensitivity: "base" }), "ä".localeCompare("z", "sv"), "ä".localeCompare("z", "de")];

// @name plural-rules
const en = new Intl.PluralRules("en-US");
const ord = new Intl.PluralRules("en-US", { type: "ordinal" });
const ar = new Intl.PluralRules("ar");
const ru = new Intl.PluralRules("ru");
return [
  [0, 1, 2, 5, 1.5].map((n) => en.select(n)),
  [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101].map((n) => ord.select(n)),
  [0, 1, 2, 3, 11, 100].map((n) => ar.select(n)),
  [1, 2, 5, 21, 22, 25, 1.5].map((n) => ru.select(n)),
];

// @name plural-ordinal-suffix
const pr = new Intl.PluralRules("en-US", { type: "ordinal" });
const suffix = { one: "st", two: "nd", few: "rd", other: "th" };
return [1, 2, 3, 4, 11, 21, 102, 113].map((n) => `${n}${suffix[pr.select(n)]}`);

// @name list-format
const items = ["apples", "pears", "plums"];
return [
  new Intl.ListFormat("en", { style: "long", type: "conjunction" }).format(items),
  new Intl.ListFormat("en", { type: "disjunction" }).format(items),
  new Intl.ListFormat("en", { style: "short", type: "unit" }).format(["5 h", "3 min"]),
  new Intl.ListFormat("de").format(items),
  new Intl.ListFormat("es").format(["a", "b", "c"]),
  new Intl.ListFormat("en-GB").format(items),
  new Intl.ListFormat("en").format(["solo"]),
];

// @name relative-time-format
const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const always = new Intl.RelativeTimeFormat("en");
return [rtf.format(-1, "day"), rtf.format(1, "day"), rtf.format(0, "day"), rtf.format(-3, "hours"), always.format(-1, "day"), always.format(2, "weeks"), new Intl.RelativeTimeFormat("es").format(3, "month")];

// @name canonical-locales
return [Intl.getCanonicalLocales(["EN-us", "zh-hant-tw", "en-US", "fr"]), Intl.getCanonicalLocales("de-de"), Intl.getCanonicalLocales()];

// @name canonical-locales-invalid
try { Intl.getCanonicalLocales("en_US"); } catch (e) { return [e.name, e.message]; }

// @name supported-locales-of
return [
  Intl.DateTimeFormat.supportedLocalesOf(["en-US", "tlh", "fr", "hi-IN"]),
  Intl.NumberFormat.supportedLocalesOf("de-AT"),
  Intl.Collator.supportedLocalesOf(["ja", "tlh"]),
  Intl.PluralRules.supportedLocalesOf(["ar"]),
];

// @name intl-object-shape
return [typeof Intl, Object.prototype.toString.call(Intl), Object.prototype.toString.call(new Intl.NumberFormat()), typeof Intl.DateTimeFormat, new Intl.NumberFormat() instanceof Intl.NumberFormat];
