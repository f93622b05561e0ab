// Runs every case of cases.js (the Intl table) on Node and writes what Node does to expected.json (next
// to this file): per case, the returned value (`result`) or the thrown error's name and message (`threw`),
// and the console output as [stream, text] lines.
//
//   TZ=UTC node executor/tests/intl/node_expect.mjs
//
// The sandbox has no host locale or time zone (its defaults are en-US and UTC), so Node must run with the
// same defaults: the script refuses to run otherwise. Node must have full ICU (the default build).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = dirname(fileURLToPath(import.meta.url));
const defaults = new Intl.DateTimeFormat().resolvedOptions();
if (defaults.timeZone !== "UTC" || defaults.locale !== "en-US") {
  console.error(`run with TZ=UTC and an en-US locale (LANG=C or en_US.UTF-8): Node has ${defaults.timeZone}, ${defaults.locale}`);
  process.exit(1);
}
const AsyncFunction = (async () => {}).constructor;
const cases = [];
for (const block of readFileSync(join(dir, "cases.js"), "utf8").split(/^\/\/ @name /m).slice(1)) {
  const [name, ...body] = block.split("\n");
  cases.push([name.trim(), body.join("\n")]);
}
const out = {};
for (const [name, code] of cases) {
  const lines = [];
  const capture = (stream) => (chunk) => {
    for (const l of String(chunk).replace(/\n$/, "").split("\n")) lines.push([stream, l]);
    return true;
  };
  const [so, se] = [process.stdout.write, process.stderr.write];
  process.stdout.write = capture("out");
  process.stderr.write = capture("err");
  let entry;
  try {
    const value = await new AsyncFunction(code)();
    entry = { result: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
  } catch (e) {
    entry = { threw: { name: e?.name, message: e?.message } };
  } finally {
    process.stdout.write = so;
    process.stderr.write = se;
  }
  entry.console = lines;
  out[name] = entry;
}
writeFileSync(join(dir, "expected.json"), JSON.stringify({ node: process.version, cases: out }, null, 1) + "\n");
console.log(`${cases.length} cases, Node ${process.version}: wrote expected.json`);
