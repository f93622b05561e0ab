//! The host side of `Intl` (`intl.js`): ECMA-402's services on ICU4X's compiled data (CLDR, built into
//! the binary; nothing is loaded at run time) and, for time zone offsets, jiff's bundled copy of the IANA
//! time zone database (ICU4X's data names zones but has no DST rules). Never the system's zoneinfo or
//! locale.
//!
//! `intl.js` reads and checks the options; this file resolves the locale and the options into a record
//! (returned to the guest as JSON, and given back with each operation), and formats. The services built
//! from a record are cached per execution, by the record's text; the cache is bounded.

use std::{
    cell::RefCell,
    collections::HashMap,
    fmt::{self, Write as _},
    rc::Rc,
};

use fixed_decimal::{Decimal, SignDisplay, SignedRoundingMode, UnsignedRoundingMode};
use icu_calendar::{Date, Iso};
use icu_collator::{
    CollatorBorrowed, CollatorPreferences,
    options::{AlternateHandling, CaseLevel, CollatorOptions, Strength},
    preferences::{CollationCaseFirst, CollationNumericOrdering},
};
use icu_datetime::{
    DateTimeFormatter, DateTimeFormatterPreferences,
    fieldsets::{
        builder::{DateFields, FieldSetBuilder, ZoneStyle},
        enums::CompositeFieldSet,
    },
    options::{Alignment, Length, SubsecondDigits, TimePrecision, YearStyle},
    preferences::HourCycle,
};
use icu_decimal::{
    DecimalFormatter, DecimalFormatterPreferences,
    options::{DecimalFormatterOptions, GroupingStrategy},
};
use icu_list::{
    ListFormatter, ListFormatterPreferences,
    options::{ListFormatterOptions, ListLength},
};
use icu_locale::{Locale, LocaleCanonicalizer};
use icu_plurals::{PluralCategory, PluralRuleType, PluralRules, PluralRulesOptions, PluralRulesPreferences};
use icu_time::{
    Time, TimeZoneInfo, ZonedDateTime,
    zone::{IanaParser, UtcOffset, ZoneNameTimestamp, models::AtTime},
};
use serde_json::{Value, json};
use writeable::{Part, PartsWrite, Writeable};

/// The largest input (all arguments together) one operation takes: the host's copies of it live outside
/// the isolate's metered heap.
pub(super) const MAX_INPUT: usize = 1 << 20;
/// At most this many services are kept per execution; past it the cache starts again (each record can
/// rebuild its service).
const MAX_SERVICES: usize = 256;
/// At most this many locales in one list.
const MAX_LOCALES: usize = 1000;

/// The languages whose data is built in and that `supportedLocalesOf` reports (any region or script of
/// them): English and the most spoken languages, and the other languages with full CLDR coverage.
const LANGUAGES: &[&str] = &[
    "en", "zh", "hi", "es", "fr", "ar", "bn", "pt", "ru", "ja", "de", "ur", "id", "it", "ko", "tr", "vi",
    "pl", "nl", "sv", "uk", "fa", "he", "th", "el", "cs", "ro", "hu", "da", "fi", "nb", "no", "ta", "te",
    "mr", "gu", "kn", "ml", "pa", "sw", "ms", "fil", "ca",
];
const DEFAULT_LOCALE: &str = "en-US";
const DEFAULT_TIME_ZONE: &str = "UTC";

/// An exception for the guest: `RangeError` or `TypeError`, with Node's message where it has one.
#[derive(Debug, PartialEq)]
pub(super) enum IntlError {
    Range(String),
    Type(String),
}

fn range(message: impl Into<String>) -> IntlError {
    IntlError::Range(message.into())
}

type R<T> = Result<T, IntlError>;

enum Service {
    DateTime(Box<DateTimeService>),
    Number(Box<NumberService>),
    Collator(CollatorBorrowed<'static>),
    Plural(PluralRules, i16, i16),
    List(ListFormatter),
    Relative(Box<RelativeService>),
}

/// The services of one execution, by resolved record.
#[derive(Default)]
pub(super) struct Services {
    cache: RefCell<HashMap<String, Rc<Service>>>,
}

impl Services {
    /// One operation of `intl.js`:
    /// - `canonicalize(json list)`, `supported(json list)`: locale lists;
    /// - `resolve(json spec)`: the resolved record of a new object;
    /// - `format(record, x, unit?)`, `parts(record, x)`, `compare(record, a, b)`, `select(record, n)`;
    /// - `currencyDigits(code)`, `supportedValuesOf(key)`.
    pub(super) fn call(&self, op: &str, a: &str, b: Option<&str>, c: Option<&str>) -> R<String> {
        match op {
            "canonicalize" => {
                let list = canonicalize(&string_list(a)?)?;
                Ok(json!(list).to_string())
            }
            "supported" => {
                let list: Vec<String> = string_list(a)?.into_iter().filter(|t| supported(t)).collect();
                Ok(json!(list).to_string())
            }
            "resolve" => resolve(a),
            "currencyDigits" => Ok(currency_digits(a).to_string()),
            "supportedValuesOf" => supported_values_of(a),
            "format" | "parts" | "compare" | "select" => {
                let service = self.service(a)?;
                let b = b.unwrap_or_default();
                match (&*service, op) {
                    (Service::DateTime(s), "format") => s.format(time_value(b)?).map(|p| p.text),
                    (Service::DateTime(s), _) => Ok(s.format(time_value(b)?)?.to_json()),
                    (Service::Number(s), "format") => s.format(b).map(|p| p.text),
                    (Service::Number(s), _) => Ok(s.format(b)?.to_json()),
                    (Service::Collator(s), "compare") => {
                        Ok((s.compare(b, c.unwrap_or_default()) as i8).to_string())
                    }
                    (Service::Plural(rules, min, max), "select") => {
                        let n = rounded(parse_number(b)?, *min, *max);
                        Ok(category_name(rules.category_for(&n)).to_string())
                    }
                    (Service::List(f), "format") => {
                        let items = string_list(b)?;
                        Ok(f.format(items.iter()).write_to_string().into_owned())
                    }
                    (Service::List(f), _) => {
                        let items = string_list(b)?;
                        Ok(collect_parts(&f.format(items.iter()), list_part).to_json())
                    }
                    (Service::Relative(s), "format") => s.format(b, c.unwrap_or_default()),
                    _ => Err(IntlError::Type(format!("Intl: {op} is not an operation of this object"))),
                }
            }
            _ => Err(IntlError::Type(format!("Intl: unknown operation {op}"))),
        }
    }

    fn service(&self, record: &str) -> R<Rc<Service>> {
        if let Some(s) = self.cache.borrow().get(record) {
            return Ok(s.clone());
        }
        let spec: Value = serde_json::from_str(record).map_err(|_| range("Intl: invalid object"))?;
        let service = Rc::new(build(&spec)?);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= MAX_SERVICES {
            cache.clear();
        }
        cache.insert(record.to_string(), service.clone());
        Ok(service)
    }
}

fn string_list(text: &str) -> R<Vec<String>> {
    serde_json::from_str(text).map_err(|_| IntlError::Type("Intl: a list of strings was expected".into()))
}

// --- Locales ------------------------------------------------------------------------------------------

const BAD_LOCALE: &str = "Incorrect locale information provided";

/// CanonicalizeLocaleList: BCP 47 syntax, canonical case and aliases (`iw` → `he`), duplicates dropped.
fn canonicalize(tags: &[String]) -> R<Vec<String>> {
    if tags.len() > MAX_LOCALES {
        return Err(range(BAD_LOCALE));
    }
    let canonicalizer = LocaleCanonicalizer::new_extended();
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        // ICU4X also reads `_` as a separator; ECMA-402 does not.
        if tag.contains('_') || tag.is_empty() {
            return Err(range(BAD_LOCALE));
        }
        let mut locale = Locale::try_from_str(tag).map_err(|_| range(BAD_LOCALE))?;
        canonicalizer.canonicalize(&mut locale);
        let text = locale.to_string();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

fn supported(tag: &str) -> bool {
    Locale::try_from_str(tag).is_ok_and(|l| LANGUAGES.contains(&l.id.language.as_str()))
}

/// The locale an object uses: the first requested one with data, else the default. Unicode extensions
/// (`-u-…`) are not kept.
fn resolve_locale(spec: &Value) -> Locale {
    let requested = spec["locales"].as_array().into_iter().flatten().filter_map(Value::as_str);
    for tag in requested {
        if supported(tag)
            && let Ok(mut locale) = Locale::try_from_str(tag)
        {
            locale.extensions = Default::default();
            return locale;
        }
    }
    icu_locale::locale!("en-US")
}

/// The numbering system the locale's numbers use, from the digit it writes for zero.
fn numbering_system(locale: &Locale) -> &'static str {
    let Ok(f) = DecimalFormatter::try_new(locale.into(), DecimalFormatterOptions::default()) else {
        return "latn";
    };
    match f.format(&Decimal::from(0)).write_to_string().chars().next() {
        Some('٠') => "arab",
        Some('۰') => "arabext",
        Some('০') => "beng",
        Some('०') => "deva",
        Some('၀') => "mymr",
        _ => "latn",
    }
}

fn str_field<'a>(spec: &'a Value, key: &str) -> Option<&'a str> {
    spec.get(key).and_then(Value::as_str)
}

fn int_field(spec: &Value, key: &str) -> Option<i16> {
    spec.get(key).and_then(Value::as_i64).and_then(|v| i16::try_from(v).ok())
}

/// A JSON object with its keys in the given order (the order Node lists resolved options in).
fn ordered(fields: Vec<(&str, Value)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.into_iter().filter(|(_, v)| !v.is_null()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{}", Value::from(k), v);
    }
    out.push('}');
    out
}

/// The resolved record of a new object (its `resolvedOptions()`, plus what the host needs).
fn resolve(text: &str) -> R<String> {
    let spec: Value = serde_json::from_str(text).map_err(|_| range("Intl: invalid options"))?;
    let locale = resolve_locale(&spec);
    let tag = locale.to_string();
    let kind = str_field(&spec, "k").unwrap_or_default();
    let resolved = match kind {
        "dtf" => resolve_date_time(&spec, &locale, tag)?,
        "nf" => resolve_number(&spec, &locale, tag)?,
        "col" => {
            let sensitivity = str_field(&spec, "sensitivity").unwrap_or("variant");
            let numeric = spec["numeric"].as_bool().unwrap_or(false);
            let case_first = str_field(&spec, "caseFirst").unwrap_or("false");
            let ignore = spec["ignorePunctuation"].as_bool().unwrap_or(locale.id.language.as_str() == "th");
            ordered(vec![
                ("k", json!("col")),
                ("locale", json!(tag)),
                ("usage", json!(str_field(&spec, "usage").unwrap_or("sort"))),
                ("sensitivity", json!(sensitivity)),
                ("ignorePunctuation", json!(ignore)),
                ("collation", json!("default")),
                ("numeric", json!(numeric)),
                ("caseFirst", json!(case_first)),
            ])
        }
        "pr" => {
            let ty = str_field(&spec, "type").unwrap_or("cardinal");
            let rules = plural_rules(&locale, ty)?;
            let categories: Vec<&str> = rules.categories().map(category_name).collect();
            ordered(vec![
                ("k", json!("pr")),
                ("locale", json!(tag)),
                ("type", json!(ty)),
                ("minimumIntegerDigits", json!(1)),
                ("minimumFractionDigits", spec["minimumFractionDigits"].clone()),
                ("maximumFractionDigits", spec["maximumFractionDigits"].clone()),
                ("pluralCategories", json!(categories)),
            ])
        }
        "lf" => ordered(vec![
            ("k", json!("lf")),
            ("locale", json!(tag)),
            ("type", json!(str_field(&spec, "type").unwrap_or("conjunction"))),
            ("style", json!(str_field(&spec, "style").unwrap_or("long"))),
        ]),
        "rtf" => ordered(vec![
            ("k", json!("rtf")),
            ("locale", json!(tag)),
            ("style", json!(str_field(&spec, "style").unwrap_or("long"))),
            ("numeric", json!(str_field(&spec, "numeric").unwrap_or("always"))),
            ("numberingSystem", json!(numbering_system(&locale))),
        ]),
        _ => return Err(IntlError::Type("Intl: unknown object kind".into())),
    };
    // Build the service once now: what cannot be built fails at construction, as in Node.
    let record: Value = serde_json::from_str(&resolved).map_err(|_| range("Intl: invalid options"))?;
    build(&record)?;
    Ok(resolved)
}

fn build(record: &Value) -> R<Service> {
    let locale = Locale::try_from_str(str_field(record, "locale").unwrap_or(DEFAULT_LOCALE))
        .map_err(|_| range(BAD_LOCALE))?;
    let unavailable = |e: &dyn fmt::Display| range(format!("Intl: no data for this locale and options: {e}"));
    Ok(match str_field(record, "k").unwrap_or_default() {
        "dtf" => Service::DateTime(Box::new(DateTimeService::new(record, &locale)?)),
        "nf" => Service::Number(Box::new(NumberService::new(record, &locale)?)),
        "col" => {
            let mut prefs = CollatorPreferences::from(&locale);
            if record["numeric"].as_bool() == Some(true) {
                prefs.numeric_ordering = Some(CollationNumericOrdering::True);
            }
            prefs.case_first = match str_field(record, "caseFirst") {
                Some("upper") => Some(CollationCaseFirst::Upper),
                Some("lower") => Some(CollationCaseFirst::Lower),
                _ => None,
            };
            let mut options = CollatorOptions::default();
            match str_field(record, "sensitivity") {
                Some("base") => options.strength = Some(Strength::Primary),
                Some("accent") => options.strength = Some(Strength::Secondary),
                Some("case") => {
                    options.strength = Some(Strength::Primary);
                    options.case_level = Some(CaseLevel::On);
                }
                _ => options.strength = Some(Strength::Tertiary),
            }
            if record["ignorePunctuation"].as_bool() == Some(true) {
                options.alternate_handling = Some(AlternateHandling::Shifted);
            }
            Service::Collator(CollatorBorrowed::try_new(prefs, options).map_err(|e| unavailable(&e))?)
        }
        "pr" => Service::Plural(
            plural_rules(&locale, str_field(record, "type").unwrap_or("cardinal"))?,
            int_field(record, "minimumFractionDigits").unwrap_or(0),
            int_field(record, "maximumFractionDigits").unwrap_or(3),
        ),
        "lf" => {
            let length = match str_field(record, "style") {
                Some("short") => ListLength::Short,
                Some("narrow") => ListLength::Narrow,
                _ => ListLength::Wide,
            };
            let prefs = ListFormatterPreferences::from(&locale);
            let options = ListFormatterOptions::default().with_length(length);
            let f = match str_field(record, "type") {
                Some("disjunction") => ListFormatter::try_new_or(prefs, options),
                Some("unit") => ListFormatter::try_new_unit(prefs, options),
                _ => ListFormatter::try_new_and(prefs, options),
            };
            Service::List(f.map_err(|e| unavailable(&e))?)
        }
        "rtf" => Service::Relative(Box::new(RelativeService::new(record, &locale))),
        _ => return Err(IntlError::Type("Intl: unknown object kind".into())),
    })
}

fn supported_values_of(key: &str) -> R<String> {
    let values: Vec<String> = match key {
        "calendar" => vec!["gregory".into(), "iso8601".into()],
        "collation" => vec!["default".into()],
        "numberingSystem" => vec!["latn".into()],
        "unit" => Vec::new(),
        "currency" => Vec::new(),
        "timeZone" => {
            let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
            names.sort();
            names
        }
        _ => return Err(range(format!("Invalid key : {key}"))),
    };
    Ok(json!(values).to_string())
}

// --- Parts --------------------------------------------------------------------------------------------

/// A formatted string and its ECMA-402 parts (`[type, value]`; unannotated text is a `literal`).
struct Formatted {
    text: String,
    parts: Vec<(&'static str, String)>,
}

impl Formatted {
    fn to_json(&self) -> String {
        json!(self.parts.iter().map(|(t, v)| [*t, v.as_str()]).collect::<Vec<_>>()).to_string()
    }
}

/// Collects what a `Writeable` writes with the spans of its parts.
#[derive(Default)]
struct PartsCollector {
    text: String,
    spans: Vec<(usize, usize, Part)>,
}

impl fmt::Write for PartsCollector {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.text.push_str(s);
        Ok(())
    }
}

impl PartsWrite for PartsCollector {
    type SubPartsWrite = Self;
    fn with_part(&mut self, part: Part, mut f: impl FnMut(&mut Self) -> fmt::Result) -> fmt::Result {
        let start = self.text.len();
        f(self)?;
        self.spans.push((start, self.text.len(), part));
        Ok(())
    }
}

/// The text and its parts: each byte takes the innermost part that `name` knows; runs of one type are
/// one part.
fn collect_parts(w: &impl Writeable, name: impl Fn(&Part) -> Option<&'static str>) -> Formatted {
    let mut c = PartsCollector::default();
    let _ = w.write_to_parts(&mut c);
    // Spans are pushed innermost first (a part ends before the one around it).
    let mut types: Vec<&'static str> = vec!["literal"; c.text.len()];
    let mut set = vec![false; c.text.len()];
    for (start, end, part) in &c.spans {
        if let Some(t) = name(part) {
            for i in *start..*end {
                if !set[i] {
                    types[i] = t;
                    set[i] = true;
                }
            }
        }
    }
    let mut parts: Vec<(&'static str, String)> = Vec::new();
    let mut start = 0;
    for (i, ch) in c.text.char_indices() {
        let _ = ch;
        if i > start && types[i] != types[start] {
            parts.push((types[start], c.text[start..i].to_string()));
            start = i;
        }
    }
    if start < c.text.len() {
        parts.push((types[start], c.text[start..].to_string()));
    }
    Formatted { text: c.text, parts }
}

fn date_part(p: &Part) -> Option<&'static str> {
    use icu_datetime::parts as d;
    Some(match *p {
        x if x == d::ERA => "era",
        x if x == d::YEAR || x == d::EXTENDED_YEAR => "year",
        x if x == d::RELATED_YEAR => "relatedYear",
        x if x == d::YEAR_NAME => "yearName",
        x if x == d::MONTH => "month",
        x if x == d::DAY => "day",
        x if x == d::WEEKDAY => "weekday",
        x if x == d::DAY_PERIOD => "dayPeriod",
        x if x == d::HOUR => "hour",
        x if x == d::MINUTE => "minute",
        x if x == d::SECOND => "second",
        x if x == d::TIME_ZONE_NAME => "timeZoneName",
        _ => return None,
    })
}

fn number_part(p: &Part) -> Option<&'static str> {
    use icu_decimal::parts as n;
    Some(match *p {
        x if x == n::MINUS_SIGN => "minusSign",
        x if x == n::PLUS_SIGN => "plusSign",
        x if x == n::GROUP => "group",
        x if x == n::DECIMAL => "decimal",
        x if x == n::FRACTION => "fraction",
        x if x == n::INTEGER => "integer",
        _ => return None,
    })
}

fn list_part(p: &Part) -> Option<&'static str> {
    (*p == icu_list::parts::ELEMENT).then_some("element")
}

// --- DateTimeFormat -----------------------------------------------------------------------------------

const COMPONENTS: &[&str] = &[
    "weekday",
    "era",
    "year",
    "month",
    "day",
    "dayPeriod",
    "hour",
    "minute",
    "second",
    "fractionalSecondDigits",
    "timeZoneName",
];

/// Locales whose numeric dates do not pad the day and month (ICU4C's `yMd` pattern, which Node uses, is
/// `d.M.y` or `d/M/y`): ICU4X derives a date with a full year from the short date pattern, which in these
/// locales pads (`dd.MM.yy` → `05.01.2024`), so its zeros are taken out again.
fn unpadded_numeric_dates(locale: &Locale) -> bool {
    let lang = locale.id.language.as_str();
    let region = locale.id.region.map(|r| r.to_string());
    match lang {
        "en" => matches!(region.as_deref(), None | Some("US" | "IN" | "PH")),
        "de" | "es" | "nl" | "ja" | "zh" | "ko" | "hi" | "bn" | "ar" | "id" | "vi" | "th" | "he" | "cs"
        | "da" | "fi" | "nb" | "no" | "el" | "ur" | "ta" | "te" | "mr" | "sw" | "ms" | "fil" | "ca"
        | "gu" | "kn" | "ml" | "pa" => true,
        _ => false,
    }
}

/// The locale's hour cycle, where CLDR's time formats use a 12-hour clock.
fn default_hour_cycle(locale: &Locale) -> &'static str {
    let lang = locale.id.language.as_str();
    let region = locale.id.region.map(|r| r.to_string());
    let twelve_regions = ["US", "IN", "AU", "CA", "NZ", "PH", "PK", "EG", "SA", "TW", "KR", "MX", "CO"];
    match (lang, region.as_deref()) {
        ("en", None) => "h12",
        (_, Some(r)) if twelve_regions.contains(&r) && lang != "fr" => "h12",
        ("hi" | "bn" | "ar" | "ko" | "ur" | "fil" | "ta" | "te" | "mr" | "gu" | "kn" | "ml" | "pa", _) => {
            "h12"
        }
        ("zh", Some("TW")) => "h12",
        _ => "h23",
    }
}

fn resolve_date_time(spec: &Value, locale: &Locale, tag: String) -> R<String> {
    let time_zone = match str_field(spec, "timeZone") {
        None => DEFAULT_TIME_ZONE.to_string(),
        Some(name) => canonical_time_zone(name)?,
    };
    let date_style = spec.get("dateStyle").filter(|v| !v.is_null()).cloned().unwrap_or(Value::Null);
    let time_style = spec.get("timeStyle").filter(|v| !v.is_null()).cloned().unwrap_or(Value::Null);
    let has_hour = str_field(spec, "hour").is_some() || !time_style.is_null();
    let hour_cycle = match (spec["hour12"].as_bool(), str_field(spec, "hourCycle")) {
        (Some(true), _) => {
            if locale.id.language.as_str() == "ja" {
                "h11"
            } else {
                "h12"
            }
        }
        (Some(false), _) => "h23",
        (None, Some(hc)) => match hc {
            "h11" => "h11",
            "h12" => "h12",
            "h24" => "h24",
            _ => "h23",
        },
        (None, None) => default_hour_cycle(locale),
    };
    let h12 = hour_cycle == "h11" || hour_cycle == "h12";
    let component = |key: &str| spec.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(Value::Null);
    // Node reports the pattern's fields: minutes and seconds after an hour are two digits, and so is the
    // hour of a 24-hour clock.
    let two = |key: &str, when: bool| {
        let v = component(key);
        if when && v.as_str() == Some("numeric") { json!("2-digit") } else { v }
    };
    let fields = vec![
        ("k", json!("dtf")),
        ("locale", json!(tag)),
        ("calendar", json!("gregory")),
        ("numberingSystem", json!(numbering_system(locale))),
        ("timeZone", json!(time_zone)),
        ("hourCycle", if has_hour { json!(hour_cycle) } else { Value::Null }),
        ("hour12", if has_hour { json!(h12) } else { Value::Null }),
        ("weekday", component("weekday")),
        ("era", component("era")),
        ("year", component("year")),
        ("month", component("month")),
        ("day", component("day")),
        ("dayPeriod", component("dayPeriod")),
        ("hour", two("hour", !h12)),
        ("minute", two("minute", str_field(spec, "hour").is_some())),
        ("second", two("second", str_field(spec, "hour").is_some() || str_field(spec, "minute").is_some())),
        ("fractionalSecondDigits", component("fractionalSecondDigits")),
        ("timeZoneName", component("timeZoneName")),
        ("dateStyle", date_style),
        ("timeStyle", time_style),
        // The components as asked for (what the resolved ones above report differs), for the service.
        (
            "opts",
            json!(
                COMPONENTS.iter().map(|k| (k.to_string(), component(k))).collect::<serde_json::Map<_, _>>()
            ),
        ),
    ];
    Ok(ordered(fields))
}

/// An IANA time zone name as the guest should see it, or Node's RangeError.
fn canonical_time_zone(name: &str) -> R<String> {
    let invalid = || range(format!("Invalid time zone specified: {name}"));
    if name.len() > 64 {
        return Err(invalid());
    }
    let upper = name.to_ascii_uppercase();
    if [
        "UTC",
        "ETC/UTC",
        "GMT",
        "ETC/GMT",
        "ETC/UCT",
        "UCT",
        "ETC/ZULU",
        "ZULU",
        "ETC/UNIVERSAL",
        "UNIVERSAL",
    ]
    .contains(&upper.as_str())
    {
        return Ok("UTC".into());
    }
    let tz = jiff::tz::db().get(name).map_err(|_| invalid())?;
    Ok(tz.iana_name().unwrap_or(name).to_string())
}

struct DateTimeService {
    tz: jiff::tz::TimeZone,
    icu_zone: icu_time::TimeZone,
    main: DateTimeFormatter<CompositeFieldSet>,
    /// ICU4X has no date-with-zone-name field set without a time: the zone name is formatted apart and
    /// joined as CLDR's date-time glue would.
    zone_apart: Option<DateTimeFormatter<CompositeFieldSet>>,
    /// Take the leading zero out of numeric days and months (see `unpadded_numeric_dates`).
    unpad: bool,
}

fn length_of(v: Option<&str>) -> Option<Length> {
    match v? {
        "long" => Some(Length::Long),
        "short" => Some(Length::Medium),
        "narrow" => Some(Length::Short),
        _ => None,
    }
}

impl DateTimeService {
    fn new(record: &Value, locale: &Locale) -> R<Self> {
        let time_zone = str_field(record, "timeZone").unwrap_or(DEFAULT_TIME_ZONE);
        let tz = if time_zone == "UTC" {
            jiff::tz::TimeZone::UTC
        } else {
            jiff::tz::db()
                .get(time_zone)
                .map_err(|_| range(format!("Invalid time zone specified: {time_zone}")))?
        };
        let icu_zone = IanaParser::new().parse(if time_zone == "UTC" { "Etc/UTC" } else { time_zone });
        let mut prefs = DateTimeFormatterPreferences::from(locale);
        prefs.hour_cycle = match str_field(record, "hourCycle") {
            Some("h11") => Some(HourCycle::H11),
            Some("h12") => Some(HourCycle::H12),
            Some("h23") | Some("h24") => Some(HourCycle::H23),
            _ => None,
        };
        let mut b = FieldSetBuilder::default();
        let mut unpad = false;
        let date_style = str_field(record, "dateStyle");
        let time_style = str_field(record, "timeStyle");
        if date_style.is_some() || time_style.is_some() {
            let style_length = |s: &str| match s {
                "full" | "long" => Length::Long,
                "medium" => Length::Medium,
                _ => Length::Short,
            };
            b.length = date_style.or(time_style).map(style_length);
            b.date_fields = date_style.map(|s| if s == "full" { DateFields::YMDE } else { DateFields::YMD });
            b.time_precision =
                time_style.map(|s| if s == "short" { TimePrecision::Minute } else { TimePrecision::Second });
            b.zone_style = match time_style {
                Some("full") => Some(ZoneStyle::SpecificLong),
                Some("long") => Some(ZoneStyle::SpecificShort),
                _ => None,
            };
            if date_style == Some("short") {
                b.year_style = Some(YearStyle::Auto);
            }
        } else {
            let opts = &record["opts"];
            let f = |k: &str| str_field(opts, k);
            b.length = length_of(f("month"))
                .or_else(|| length_of(f("weekday")))
                .or_else(|| length_of(f("era")))
                .or(Some(Length::Short));
            if matches!(f("month"), Some("numeric" | "2-digit")) {
                b.length = Some(Length::Short);
            }
            b.date_fields =
                match (f("year").is_some(), f("month").is_some(), f("day").is_some(), f("weekday").is_some())
                {
                    (true, _, _, true) => Some(DateFields::YMDE),
                    (true, _, true, false) => Some(DateFields::YMD),
                    (true, true, false, false) => Some(DateFields::YM),
                    (true, false, false, false) => Some(DateFields::Y),
                    (false, true, _, true) => Some(DateFields::MDE),
                    (false, true, true, false) => Some(DateFields::MD),
                    (false, true, false, false) => Some(DateFields::M),
                    (false, false, true, true) => Some(DateFields::DE),
                    (false, false, true, false) => Some(DateFields::D),
                    (false, false, false, true) => Some(DateFields::E),
                    (false, false, false, false) => None,
                };
            let fsd = opts["fractionalSecondDigits"].as_u64();
            b.time_precision = match (f("hour").is_some(), f("minute").is_some(), f("second").is_some(), fsd)
            {
                (_, _, _, Some(1)) => Some(TimePrecision::Subsecond(SubsecondDigits::S1)),
                (_, _, _, Some(2)) => Some(TimePrecision::Subsecond(SubsecondDigits::S2)),
                (_, _, _, Some(_)) => Some(TimePrecision::Subsecond(SubsecondDigits::S3)),
                (_, _, true, None) => Some(TimePrecision::Second),
                (_, true, false, None) => Some(TimePrecision::Minute),
                (true, false, false, None) => Some(TimePrecision::Hour),
                _ => None,
            };
            b.zone_style = match f("timeZoneName") {
                Some("short") => Some(ZoneStyle::SpecificShort),
                Some("long") => Some(ZoneStyle::SpecificLong),
                Some("shortOffset") => Some(ZoneStyle::LocalizedOffsetShort),
                Some("longOffset") => Some(ZoneStyle::LocalizedOffsetLong),
                Some("shortGeneric") => Some(ZoneStyle::GenericShort),
                Some("longGeneric") => Some(ZoneStyle::GenericLong),
                _ => None,
            };
            if b.date_fields.is_some_and(|d| !matches!(d, DateFields::D | DateFields::DE | DateFields::E)) {
                b.year_style = match f("year") {
                    Some("2-digit") => Some(YearStyle::Auto),
                    Some(_) => Some(YearStyle::Full),
                    None => None,
                };
            }
            if ["month", "day", "hour"].iter().any(|k| f(k) == Some("2-digit")) {
                b.alignment = Some(Alignment::Column);
            }
            unpad = unpadded_numeric_dates(locale)
                && f("day") != Some("2-digit")
                && f("month") != Some("2-digit")
                && b.date_fields.is_some();
        }
        let unavailable =
            |e: &dyn fmt::Display| range(format!("Intl.DateTimeFormat: unsupported options: {e}"));
        let mut zone_apart = None;
        if b.date_fields.is_some() && b.time_precision.is_none() && b.zone_style.is_some() {
            let mut zone = FieldSetBuilder::default();
            zone.zone_style = b.zone_style.take();
            let zone = zone.build_composite().map_err(|e| unavailable(&e))?;
            zone_apart = Some(DateTimeFormatter::try_new(prefs, zone).map_err(|e| unavailable(&e))?);
        }
        // Field sets without a length-dependent field (time only) need no length.
        if b.date_fields.is_none() && date_style.is_none() && time_style.is_none() {
            b.length = None;
        }
        let fields = b.clone().build_composite().or_else(|_| {
            let mut b = b;
            b.length = None;
            b.build_composite()
        });
        let fields = fields.map_err(|e| unavailable(&e))?;
        let main = DateTimeFormatter::try_new(prefs, fields).map_err(|e| unavailable(&e))?;
        Ok(Self { tz, icu_zone, main, zone_apart, unpad })
    }

    fn zoned(&self, ms: f64) -> R<ZonedDateTime<Iso, TimeZoneInfo<AtTime>>> {
        let invalid = || range("Invalid time value");
        let ts = jiff::Timestamp::from_millisecond(ms as i64).map_err(|_| invalid())?;
        let zoned = ts.to_zoned(self.tz.clone());
        let dt = zoned.datetime();
        let date = Date::try_new_iso(i32::from(dt.year()), dt.month() as u8, dt.day() as u8)
            .map_err(|_| invalid())?;
        let time = Time::try_new(
            dt.hour() as u8,
            dt.minute() as u8,
            dt.second() as u8,
            dt.subsec_nanosecond() as u32,
        )
        .map_err(|_| invalid())?;
        let offset = UtcOffset::try_from_seconds(zoned.offset().seconds()).ok();
        let zone = self
            .icu_zone
            .with_offset(offset)
            .with_zone_name_timestamp(ZoneNameTimestamp::from_epoch_seconds(ts.as_second()));
        Ok(ZonedDateTime { date, time, zone })
    }

    fn format(&self, ms: f64) -> R<Formatted> {
        let zdt = self.zoned(ms)?;
        let mut out = collect_parts(&self.main.format(&zdt), date_part);
        if let Some(zone) = &self.zone_apart {
            let z = collect_parts(&zone.format(&zdt), date_part);
            out.parts.push(("literal", ", ".into()));
            out.parts.extend(z.parts);
        }
        for (t, v) in &mut out.parts {
            if self.unpad && (*t == "day" || *t == "month") && v.len() == 2 && v.starts_with('0') {
                v.remove(0);
            }
        }
        // Node 20's `format` (not its `formatToParts`) writes a plain space where CLDR has a narrow
        // no-break one ("3:04 PM").
        out.text = out.parts.iter().map(|(_, v)| v.as_str()).collect::<String>().replace('\u{202f}', " ");
        Ok(out)
    }
}

fn time_value(text: &str) -> R<f64> {
    let x: f64 = text.trim().parse().map_err(|_| range("Invalid time value"))?;
    if !x.is_finite() || x.abs() > 8.64e15 {
        return Err(range("Invalid time value"));
    }
    Ok(x)
}

// --- NumberFormat -------------------------------------------------------------------------------------

/// ISO 4217 minor units: two unless listed.
fn currency_digits(code: &str) -> u8 {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let code = code.to_ascii_uppercase();
    if ZERO.contains(&code.as_str()) {
        0
    } else if THREE.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

fn resolve_number(spec: &Value, locale: &Locale, tag: String) -> R<String> {
    let style = str_field(spec, "style").unwrap_or("decimal");
    let currency = if style == "currency" { spec["currency"].clone() } else { Value::Null };
    let notation = str_field(spec, "notation").unwrap_or("standard");
    let sig = spec.get("minimumSignificantDigits").is_some_and(|v| !v.is_null());
    let fields = vec![
        ("k", json!("nf")),
        ("locale", json!(tag)),
        ("numberingSystem", json!(numbering_system(locale))),
        ("style", json!(style)),
        ("currency", currency),
        (
            "currencyDisplay",
            if style == "currency" {
                json!(str_field(spec, "currencyDisplay").unwrap_or("symbol"))
            } else {
                Value::Null
            },
        ),
        ("currencySign", if style == "currency" { json!("standard") } else { Value::Null }),
        ("minimumIntegerDigits", json!(int_field(spec, "minimumIntegerDigits").unwrap_or(1))),
        ("minimumFractionDigits", spec["minimumFractionDigits"].clone()),
        ("maximumFractionDigits", spec["maximumFractionDigits"].clone()),
        (
            "minimumSignificantDigits",
            if sig { spec["minimumSignificantDigits"].clone() } else { Value::Null },
        ),
        (
            "maximumSignificantDigits",
            if sig { spec["maximumSignificantDigits"].clone() } else { Value::Null },
        ),
        ("useGrouping", spec["useGrouping"].clone()),
        ("notation", json!(notation)),
        ("compactDisplay", spec["compactDisplay"].clone()),
        ("signDisplay", json!(str_field(spec, "signDisplay").unwrap_or("auto"))),
        ("roundingMode", json!("halfExpand")),
        ("roundingIncrement", json!(1)),
        ("trailingZeroDisplay", json!("auto")),
        ("roundingPriority", json!(str_field(spec, "roundingPriority").unwrap_or("auto"))),
    ];
    Ok(ordered(fields))
}

struct NumberService {
    decimal: DecimalFormatter,
    compact: Option<icu_decimal::CompactDecimalFormatter>,
    percent: Option<icu_experimental::dimension::percent::formatter::PercentFormatter<DecimalFormatter>>,
    currency: Option<(String, CurrencyDisplay)>,
    min_int: i16,
    min_fd: i16,
    max_fd: i16,
    sig: Option<(i16, i16)>,
    sign: SignDisplay,
    percent_scale: bool,
}

enum CurrencyDisplay {
    Symbol(Box<icu_experimental::dimension::currency::formatter::CurrencyFormatter<DecimalFormatter>>),
    Code,
}

impl NumberService {
    fn new(record: &Value, locale: &Locale) -> R<Self> {
        let unavailable =
            |e: &dyn fmt::Display| range(format!("Intl.NumberFormat: unsupported options: {e}"));
        let grouping = match record["useGrouping"].as_str() {
            Some("always") => GroupingStrategy::Always,
            Some("min2") => GroupingStrategy::Min2,
            Some(_) => GroupingStrategy::Auto,
            None => GroupingStrategy::Never,
        };
        let mut options = DecimalFormatterOptions::default();
        options.grouping_strategy = Some(grouping);
        let prefs = DecimalFormatterPreferences::from(locale);
        let decimal = DecimalFormatter::try_new(prefs, options).map_err(|e| unavailable(&e))?;
        let style = str_field(record, "style").unwrap_or("decimal");
        let compact = if str_field(record, "notation") == Some("compact") {
            let p = locale.into();
            let f = if str_field(record, "compactDisplay") == Some("long") {
                icu_decimal::CompactDecimalFormatter::try_new_long(p, Default::default())
            } else {
                icu_decimal::CompactDecimalFormatter::try_new_short(p, Default::default())
            };
            Some(f.map_err(|e| unavailable(&e))?)
        } else {
            None
        };
        let percent = if style == "percent" {
            let d = DecimalFormatter::try_new(prefs, options).map_err(|e| unavailable(&e))?;
            Some(
                icu_experimental::dimension::percent::formatter::PercentFormatter::try_new_with_decimal_formatter(
                    locale.into(),
                    d,
                    Default::default(),
                )
                .map_err(|e| unavailable(&e))?,
            )
        } else {
            None
        };
        let currency = match (style, str_field(record, "currency")) {
            ("currency", Some(code)) => {
                let display = if str_field(record, "currencyDisplay") == Some("code") {
                    CurrencyDisplay::Code
                } else {
                    let ty = icu_experimental::dimension::currency::CurrencyType::try_from_str(code)
                        .map_err(|_| range(format!("Invalid currency code : {code}")))?;
                    let f =
                        icu_experimental::dimension::currency::formatter::CurrencyFormatter::try_new_symbol(
                            locale.into(),
                            ty,
                            Default::default(),
                        );
                    CurrencyDisplay::Symbol(Box::new(f.map_err(|e| unavailable(&e))?))
                };
                Some((code.to_string(), display))
            }
            _ => None,
        };
        let sig = match (
            int_field(record, "minimumSignificantDigits"),
            int_field(record, "maximumSignificantDigits"),
        ) {
            (Some(a), Some(b)) if str_field(record, "roundingPriority") != Some("morePrecision") => {
                Some((a, b))
            }
            _ => None,
        };
        let sign = match str_field(record, "signDisplay") {
            Some("never") => SignDisplay::Never,
            Some("always") => SignDisplay::Always,
            Some("exceptZero") => SignDisplay::ExceptZero,
            Some("negative") => SignDisplay::Negative,
            _ => SignDisplay::Auto,
        };
        Ok(Self {
            decimal,
            compact,
            percent,
            currency,
            min_int: int_field(record, "minimumIntegerDigits").unwrap_or(1),
            min_fd: int_field(record, "minimumFractionDigits").unwrap_or(0),
            max_fd: int_field(record, "maximumFractionDigits").unwrap_or(3),
            sig,
            sign,
            percent_scale: style == "percent",
        })
    }

    fn format(&self, text: &str) -> R<Formatted> {
        let (negative, special) = match text {
            "NaN" => (false, Some("NaN")),
            "Infinity" => (false, Some("∞")),
            "-Infinity" => (true, Some("∞")),
            _ => (false, None),
        };
        if let Some(s) = special {
            let mut parts = Vec::new();
            if negative {
                parts.push(("minusSign", "-".to_string()));
            }
            parts.push((if s == "NaN" { "nan" } else { "infinity" }, s.to_string()));
            if self.percent_scale {
                parts.push(("percentSign", "%".to_string()));
            }
            let text = parts.iter().map(|(_, v)| v.as_str()).collect();
            return Ok(Formatted { text, parts });
        }
        let mut d = parse_number(text)?;
        if self.percent_scale {
            d.absolute.multiply_pow10(2);
        }
        if let Some(compact) = &self.compact {
            let d = self.round_compact(compact, d);
            let w = compact.format(&d);
            let f = collect_parts(&w, number_part);
            return Ok(self.wrap(f, "compact"));
        }
        let mut d = match self.sig {
            Some((min, max)) => {
                let mut d = d;
                if !d.absolute.is_zero() {
                    let msd = d.absolute.nonzero_magnitude_start();
                    d.round_with_mode(
                        msd - max + 1,
                        SignedRoundingMode::Unsigned(UnsignedRoundingMode::HalfExpand),
                    );
                    d.absolute.trim_end();
                    let msd = d.absolute.nonzero_magnitude_start();
                    d.absolute.pad_end(msd - min + 1);
                } else {
                    d.absolute.pad_end(1 - min);
                }
                d
            }
            None => rounded(d, self.min_fd, self.max_fd),
        };
        d.absolute.pad_start(self.min_int);
        d.apply_sign_display(self.sign);
        if let Some(p) = &self.percent {
            return Ok(self.wrap(collect_parts(&p.format(&d), number_part), "percentSign"));
        }
        match &self.currency {
            Some((_, CurrencyDisplay::Symbol(f))) => {
                Ok(self.wrap(collect_parts(&f.format_fixed_decimal(&d), number_part), "currency"))
            }
            Some((code, CurrencyDisplay::Code)) => {
                let mut f = collect_parts(&self.decimal.format(&d), number_part);
                f.text = format!("{code}\u{a0}{}", f.text);
                f.parts.splice(0..0, [("currency", code.clone()), ("literal", "\u{a0}".to_string())]);
                Ok(f)
            }
            None => Ok(collect_parts(&self.decimal.format(&d), number_part)),
        }
    }

    /// Literal runs that are not spaces are the style's own symbol (`%`, `$`, `K`).
    fn wrap(&self, mut f: Formatted, symbol: &'static str) -> Formatted {
        for (t, v) in &mut f.parts {
            if *t == "literal" && !v.chars().all(|c| c.is_whitespace() || c == '\u{200f}' || c == '\u{200e}')
            {
                *t = symbol;
            }
        }
        f
    }

    /// ECMA-402's compact rounding: two significant digits below 100 (of the compact unit), integers above.
    fn round_compact(&self, compact: &icu_decimal::CompactDecimalFormatter, mut d: Decimal) -> Decimal {
        if d.absolute.is_zero() {
            return Decimal::from(0);
        }
        let mode = SignedRoundingMode::Unsigned(UnsignedRoundingMode::HalfExpand);
        if let Some((_, max)) = self.sig {
            let msd = d.absolute.nonzero_magnitude_start();
            d.round_with_mode(msd - max + 1, mode);
            d.absolute.trim_end();
            return d;
        }
        let magnitude = d.absolute.nonzero_magnitude_start();
        let exponent = i16::from(compact.compact_exponent_for_magnitude(magnitude));
        if magnitude - exponent < 1 {
            d.round_with_mode(magnitude - 1, mode);
        } else {
            d.round_with_mode(exponent, mode);
        }
        d.absolute.trim_end();
        d
    }
}

/// ECMA-402's fraction digits: round half away from zero at `max`, then pad to `min`.
fn rounded(mut d: Decimal, min: i16, max: i16) -> Decimal {
    d.round_with_mode(-max, SignedRoundingMode::Unsigned(UnsignedRoundingMode::HalfExpand));
    d.absolute.trim_end();
    d.absolute.pad_end(-min);
    d
}

/// A number as JavaScript prints it (`1234.5`, `-0`, `1e+21`, `5e-7`) as a decimal.
fn parse_number(text: &str) -> R<Decimal> {
    let invalid = || range("Invalid number value");
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i16>().map_err(|_| invalid())?),
        None => (text, 0),
    };
    let mut d = Decimal::try_from_str(mantissa).map_err(|_| invalid())?;
    d.absolute.multiply_pow10(exponent);
    Ok(d)
}

// --- PluralRules --------------------------------------------------------------------------------------

fn plural_rules(locale: &Locale, ty: &str) -> R<PluralRules> {
    let prefs = PluralRulesPreferences::from(locale);
    let options = PluralRulesOptions::default().with_type(if ty == "ordinal" {
        PluralRuleType::Ordinal
    } else {
        PluralRuleType::Cardinal
    });
    PluralRules::try_new(prefs, options).map_err(|e| range(format!("Intl.PluralRules: {e}")))
}

fn category_name(c: PluralCategory) -> &'static str {
    match c {
        PluralCategory::Zero => "zero",
        PluralCategory::One => "one",
        PluralCategory::Two => "two",
        PluralCategory::Few => "few",
        PluralCategory::Many => "many",
        PluralCategory::Other => "other",
    }
}

// --- RelativeTimeFormat -------------------------------------------------------------------------------

struct RelativeService {
    locale: Locale,
    style: String,
    numeric_auto: bool,
    formatters: RefCell<HashMap<&'static str, Rc<icu_experimental::relativetime::RelativeTimeFormatter>>>,
}

impl RelativeService {
    fn new(record: &Value, locale: &Locale) -> Self {
        Self {
            locale: locale.clone(),
            style: str_field(record, "style").unwrap_or("long").to_string(),
            numeric_auto: str_field(record, "numeric") == Some("auto"),
            formatters: RefCell::default(),
        }
    }

    fn format(&self, value: &str, unit: &str) -> R<String> {
        use icu_experimental::relativetime::{
            RelativeTimeFormatter as F,
            options::{Numeric, RelativeTimeFormatterOptions},
        };
        let unit: &'static str = match unit {
            "second" => "second",
            "minute" => "minute",
            "hour" => "hour",
            "day" => "day",
            "week" => "week",
            "month" => "month",
            "quarter" => "quarter",
            "year" => "year",
            _ => return Err(range(format!("Invalid unit argument for format() '{unit}'"))),
        };
        let existing = self.formatters.borrow().get(unit).cloned();
        let f = match existing {
            Some(f) => f,
            None => {
                let mut options = RelativeTimeFormatterOptions::default();
                options.numeric = Some(if self.numeric_auto { Numeric::Auto } else { Numeric::Always });
                let p = (&self.locale).into();
                let f = match (self.style.as_str(), unit) {
                    ("short", "second") => F::try_new_short_second(p, options),
                    ("short", "minute") => F::try_new_short_minute(p, options),
                    ("short", "hour") => F::try_new_short_hour(p, options),
                    ("short", "day") => F::try_new_short_day(p, options),
                    ("short", "week") => F::try_new_short_week(p, options),
                    ("short", "month") => F::try_new_short_month(p, options),
                    ("short", "quarter") => F::try_new_short_quarter(p, options),
                    ("short", _) => F::try_new_short_year(p, options),
                    ("narrow", "second") => F::try_new_narrow_second(p, options),
                    ("narrow", "minute") => F::try_new_narrow_minute(p, options),
                    ("narrow", "hour") => F::try_new_narrow_hour(p, options),
                    ("narrow", "day") => F::try_new_narrow_day(p, options),
                    ("narrow", "week") => F::try_new_narrow_week(p, options),
                    ("narrow", "month") => F::try_new_narrow_month(p, options),
                    ("narrow", "quarter") => F::try_new_narrow_quarter(p, options),
                    ("narrow", _) => F::try_new_narrow_year(p, options),
                    (_, "second") => F::try_new_long_second(p, options),
                    (_, "minute") => F::try_new_long_minute(p, options),
                    (_, "hour") => F::try_new_long_hour(p, options),
                    (_, "day") => F::try_new_long_day(p, options),
                    (_, "week") => F::try_new_long_week(p, options),
                    (_, "month") => F::try_new_long_month(p, options),
                    (_, "quarter") => F::try_new_long_quarter(p, options),
                    (_, _) => F::try_new_long_year(p, options),
                };
                let f = Rc::new(f.map_err(|e| range(format!("Intl.RelativeTimeFormat: {e}")))?);
                self.formatters.borrow_mut().insert(unit, f.clone());
                f
            }
        };
        let d = rounded(parse_number(value)?, 0, 3);
        Ok(f.format(d).write_to_string().into_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn call(op: &str, a: &str, b: Option<&str>, c: Option<&str>) -> R<String> {
        Services::default().call(op, a, b, c)
    }

    #[test]
    fn locales_canonicalize_and_refuse_bad_tags() {
        assert_eq!(
            call("canonicalize", r#"["EN-us","iw","en-US"]"#, None, None).unwrap(),
            r#"["en-US","he"]"#
        );
        assert_eq!(call("canonicalize", r#"["en_US"]"#, None, None), Err(range(BAD_LOCALE)));
        assert_eq!(call("canonicalize", r#"["a-b-c-d-e-f-g-h"]"#, None, None), Err(range(BAD_LOCALE)));
        assert!(call("canonicalize", "not json", None, None).is_err());
    }

    #[test]
    fn time_zones_are_checked_and_dst_is_applied() {
        let spec = r#"{"k":"dtf","locales":["en-US"],"timeZone":"Nowhere/Special","hour":"numeric"}"#;
        assert_eq!(
            call("resolve", spec, None, None),
            Err(range("Invalid time zone specified: Nowhere/Special"))
        );
        let s = Services::default();
        let spec = r#"{"k":"dtf","locales":["en-US"],"timeZone":"America/New_York","hour":"numeric","minute":"numeric","timeZoneName":"short"}"#;
        let record = s.call("resolve", spec, None, None).unwrap();
        // 2024-03-10T06:59:00Z is 1:59 EST; an hour later, 3:59 EDT.
        assert_eq!(s.call("format", &record, Some("1710053940000"), None).unwrap(), "1:59 AM EST");
        assert_eq!(s.call("format", &record, Some("1710057540000"), None).unwrap(), "3:59 AM EDT");
        assert_eq!(s.call("format", &record, Some("NaN"), None), Err(range("Invalid time value")));
        assert_eq!(s.call("format", &record, Some("1e300"), None), Err(range("Invalid time value")));
    }

    #[test]
    fn garbage_records_fail_cleanly() {
        for record in
            ["", "{}", "[]", r#"{"k":"nf","locale":"xx-invalid-!!"}"#, r#"{"k":"dtf","timeZone":7}"#]
        {
            let _ = call("format", record, Some("1"), None);
            let _ = call("parts", record, Some("x"), None);
            let _ = call("resolve", record, None, None);
        }
        assert!(call("bogus", "{}", None, None).is_err());
    }
}
