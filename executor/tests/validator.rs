//! The validator (layer 1): every rule with bypass variants (escapes, computed and folded names,
//! optional chaining, aliases, TypeScript-only declarations), exact rule ids and positions,
//! innocent code that must pass, the two code forms, TypeScript stripping, position mapping,
//! size limits and pathological input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcp_guard_sandbox::validator::{Prepared, Rejection, ValidateOptions, rules, validate};

fn options() -> ValidateOptions {
    ValidateOptions { max_code_bytes: 4 << 20 }
}

fn ok(code: &str) -> Prepared {
    match validate(code, &options()) {
        Ok(prepared) => prepared,
        Err(r) => {
            panic!("expected {code:?} to pass, got {} at {}:{}: {}", r.rule, r.line, r.column, r.message)
        }
    }
}

fn rejected(code: &str) -> Rejection {
    match validate(code, &options()) {
        Ok(p) => panic!("expected {code:?} to be rejected, got script {:?}", p.script),
        Err(r) => r,
    }
}

/// Each case: (code, line, column). All must be rejected by `rule` at exactly that position.
fn expect(rule: &str, cases: &[(&str, u32, u32)]) {
    for &(code, line, column) in cases {
        let r = rejected(code);
        assert_eq!((r.rule.as_str(), r.line, r.column), (rule, line, column), "{code:?} → {}", r.message);
        assert!(!r.message.is_empty() && !r.message.contains('\n'), "{code:?}: {:?}", r.message);
    }
}

#[test]
fn eval_in_every_spelling() {
    expect(
        rules::NO_EVAL,
        &[
            ("eval('1')", 1, 1),
            ("const e = eval; e('1')", 1, 11),
            ("(0, eval)('1')", 1, 5),
            ("(eval)(\"1\")", 1, 2),
            ("\\u0065val('1')", 1, 1),
            ("e\\u0076al('1')", 1, 1),
            ("\\u{65}val('1')", 1, 1),
            ("globalThis.eval('1')", 1, 12),
            ("globalThis.\\u0065val('1')", 1, 12),
            ("globalThis?.eval('1')", 1, 13),
            ("globalThis?.[\"eval\"]('1')", 1, 14),
            ("globalThis['ev' + 'al']('1')", 1, 12),
            ("globalThis[`ev${'al'}`]('1')", 1, 12),
            ("globalThis['\\x65val']('1')", 1, 12),
            ("window['eval']", 1, 8),
            ("self.eval", 1, 6),
            ("const k = 'ev'; const k2 = k + 'al';\nglobalThis[k2]('1')", 2, 12),
            ("globalThis[String.fromCharCode(101, 118, 97, 108)]", 1, 12),
            ("globalThis[['ev', 'al'].join('')]", 1, 12),
            ("globalThis[cond ? 'x' : 'eval']", 1, 12),
            ("globalThis.globalThis.eval", 1, 23),
            ("const { eval: e } = globalThis", 1, 9),
            ("obj.eval('1')", 1, 5),
        ],
    );
}

#[test]
fn function_constructor_and_constructor_chains() {
    expect(
        rules::NO_FUNCTION_CONSTRUCTOR,
        &[
            ("new Function('return 1')", 1, 5),
            ("Function('return 1')()", 1, 1),
            ("Function.prototype.constructor", 1, 1),
            ("Reflect.construct(Function, ['return 1'])", 1, 19),
            ("globalThis.Function('x')", 1, 12),
            ("globalThis['Func' + 'tion']('x')", 1, 12),
            ("(async () => {}).constructor('return 1')", 1, 18),
            ("(async function () {}).constructor('return 1')", 1, 24),
            ("(function* () {}).constructor('x')", 1, 19),
            ("[].map.constructor('return 1')()", 1, 8),
            ("Object.getPrototypeOf(async () => {}).constructor", 1, 39),
            ("Object.getPrototypeOf(function* () {}).constructor", 1, 40),
            ("({}).constructor.constructor('return 1')()", 1, 6),
            ("f['constructor']", 1, 3),
            ("f['con' + 'structor']", 1, 3),
            ("f[`constructor`]", 1, 3),
            ("f[`con${'struc'}tor`]", 1, 3),
            ("f['\\u0063onstructor']", 1, 3),
            ("f.\\u0063onstructor", 1, 3),
            ("f?.constructor", 1, 4),
            ("const k = 'constructor'; f[k]", 1, 28),
            ("f[['con', 'structor'].join('')]", 1, 3),
            ("f[String.fromCharCode(99, 111, 110, 115, 116, 114, 117, 99, 116, 111, 114)]", 1, 3),
            ("const { constructor: c } = () => {}", 1, 9),
            ("const { constructor } = () => {}", 1, 9),
            ("const { ['constr' + 'uctor']: c } = () => {}", 1, 10),
            ("let c; ({ constructor: c } = () => {})", 1, 11),
            ("Reflect.get(() => {}, 'constructor')('return 1')", 1, 23),
            ("Object.getOwnPropertyDescriptor(Object.getPrototypeOf(f), 'constructor')", 1, 59),
            ("Reflect.get(f, ...['constructor'])", 1, 20),
            ("globalThis.Reflect.get(f, 'constructor')", 1, 27),
            ("Object.getOwnPropertyDescriptors(p)['constructor']", 1, 37),
            ("Object.getPrototypeOf(async () => {})['constr' + 'uctor']('return 1')", 1, 39),
            // Near the allowed type checks, but the constructor escapes the comparison or the name.
            ("(v.constructor === v.constructor ? v.constructor : 0)('x')", 1, 38),
            ("const F = v.constructor; F === Object", 1, 13),
            ("v.constructor.name.constructor('x')", 1, 20),
            ("(v.constructor.name, v.constructor)('x')", 1, 24),
            ("v.constructor.name = 'x'; v.constructor", 1, 29),
            ("f[v.constructor === Object ? 'constructor' : 'x']", 1, 3),
            ("v.constructor['name']", 1, 3),
            ("v?.constructor === Object", 1, 4),
        ],
    );
}

/// Reads of `constructor` that can only be compared or named (type checks models write) pass: the value
/// never reaches code that could call it. The engine has no working Function constructor either.
#[test]
fn constructor_reads_that_are_only_compared_or_named_pass() {
    for code in [
        "const v = {}; return v.constructor === Object",
        "const v = []; return v.constructor !== Array && (v.constructor == Object)",
        "class Report {} return new Report().constructor.name",
        "return [1, 'a', {}].map((v) => v.constructor.name)",
        "const v = {}; return (v.constructor) === Object",
    ] {
        ok(code);
    }
}

#[test]
fn imports_and_exports() {
    expect(
        rules::NO_IMPORT,
        &[
            ("import fs from 'fs'", 1, 1),
            ("import { readFileSync } from 'fs'; readFileSync('/etc/passwd')", 1, 1),
            ("import * as evil from 'evil'", 1, 1),
            ("import 'evil'", 1, 1),
            ("import type { T } from 'types'", 1, 1),
            ("import fs = require('fs')", 1, 1),
            ("export {}", 1, 1),
            ("export const x = 1", 1, 1),
            ("export default 1", 1, 1),
            ("export * from 'fs'", 1, 1),
            ("const x = 1;\nexport = x", 2, 1),
            ("const fs = await import('fs')", 1, 18),
            ("import('node:fs')", 1, 1),
            ("const u = import.meta.url", 1, 11),
        ],
    );
}

#[test]
fn require_and_host_globals() {
    expect(
        rules::NO_REQUIRE,
        &[
            ("require('child_process').execSync('rm -rf /')", 1, 1),
            ("const fs = require('fs'); fs.readFileSync('/home/user/.ssh/id_rsa', 'utf8')", 1, 12),
            ("const r = require; r('fs')", 1, 11),
            ("re\\u0071uire('fs')", 1, 1),
            ("globalThis.require('fs')", 1, 12),
            ("declare function require(m: string): any;\nrequire('fs')", 2, 1),
        ],
    );
    expect(
        rules::NO_PROCESS,
        &[
            ("process.env", 1, 1),
            ("console.log(process.env.GITHUB_TOKEN)", 1, 13),
            ("const { env } = process", 1, 17),
            ("globalThis.process.env", 1, 12),
            ("globalThis['pro' + 'cess'].env", 1, 12),
            ("window[`process`]", 1, 8),
            ("pr\\u006fcess.env", 1, 1),
            ("typeof process", 1, 8),
            // TypeScript-only declarations do not exist at runtime: `process` stays the host global.
            ("declare const process: any;\nprocess.env", 2, 1),
            ("declare global { var process: any }\nprocess.env", 2, 1),
            ("function process(): void;\nprocess.env", 2, 1),
            ("namespace process {}\nprocess.env", 2, 1),
            ("interface process {}\nprocess.env", 2, 1),
        ],
    );
    expect(
        rules::NO_DENO,
        &[("Deno.readFile('/etc/passwd')", 1, 1), ("globalThis.Deno.env.get('X')", 1, 12)],
    );
    expect(rules::NO_BUN, &[("Bun.file('/etc/passwd')", 1, 1), ("self['Bun']", 1, 6)]);
    expect(
        rules::NO_MODULE,
        &[
            ("module.exports = {}", 1, 1),
            ("exports.x = 1", 1, 1),
            ("console.log(__dirname)", 1, 13),
            ("console.log(__filename)", 1, 13),
            ("globalThis.module", 1, 12),
        ],
    );
}

#[test]
fn with_statements() {
    expect(
        rules::NO_WITH,
        &[
            ("with (obj) {}", 1, 1),
            ("with (Math) { max(1, 2) }", 1, 1),
            ("const o = {};\n  with (o) x;", 2, 3),
        ],
    );
}

#[test]
fn string_timers() {
    expect(
        rules::NO_STRING_TIMER,
        &[
            ("setTimeout('alert(1)', 1)", 1, 12),
            ("setTimeout(\"a\" + \"b\")", 1, 12),
            ("setInterval(`x = 1`, 1)", 1, 13),
            ("setImmediate('x')", 1, 14),
            ("setTimeout('a' + code, 1)", 1, 12),
            ("const code = 'x()'; setTimeout(code, 1)", 1, 32),
            ("globalThis.setTimeout('x', 1)", 1, 23),
            ("setTimeout(String.fromCharCode(120), 1)", 1, 12),
            ("setTimeout(['x', '()'].join(''), 1)", 1, 12),
            ("setTimeout(String.raw`x`, 1)", 1, 12),
            ("(setTimeout)('x', 1)", 1, 14),
            ("(0, setTimeout)('x', 1)", 1, 17),
            ("setTimeout?.('x', 1)", 1, 14),
        ],
    );
}

#[test]
fn global_object_writes_and_values() {
    expect(
        rules::NO_GLOBAL_WRITE,
        &[
            ("globalThis.x = 1", 1, 1),
            ("globalThis['x'] = 1", 1, 1),
            ("globalThis.x += 1", 1, 1),
            ("globalThis.x ||= 1", 1, 1),
            ("globalThis.x++", 1, 1),
            ("--window.x", 1, 3),
            ("delete globalThis.x", 1, 1),
            ("delete globalThis?.x", 1, 1),
            ("[globalThis.x] = [1]", 1, 2),
            ("({ a: globalThis.x } = { a: 1 })", 1, 7),
            ("for (globalThis.x of [1]) {}", 1, 6),
            ("globalThis.globalThis.x = 1", 1, 1),
            ("globalThis.JSON.parse = null", 1, 1),
            ("window['self'].x = 1", 1, 1),
            ("globalThis = {}", 1, 1),
            ("Object.defineProperty(globalThis, 'x', { value: 1 })", 1, 23),
            ("Object.assign(globalThis, { x: 1 })", 1, 15),
            ("Reflect.set(globalThis, 'x', 1)", 1, 13),
            ("Object.setPrototypeOf(globalThis, null)", 1, 23),
            ("const g = globalThis; g.x = 1", 1, 11),
            ("const g = globalThis; g.eval('1')", 1, 11),
            ("const { fetch } = globalThis", 1, 19),
            ("f(window)", 1, 3),
            ("(0, globalThis).x", 1, 5),
            ("const g = globalThis.self; g.x = 1", 1, 22),
            ("f(window['window'])", 1, 10),
            ("const g = globalThis.valueOf(); g.x = 1", 1, 22),
            ("globalThis.__defineSetter__('x', () => {})", 1, 12),
            ("const p = globalThis.__proto__", 1, 22),
            ("undeclared = 5", 1, 1),
            ("x += 1", 1, 1),
            ("[a] = [1]", 1, 2),
            ("for (k in {}) {}", 1, 6),
            ("const o = <any>globalThis;", 1, 16),
            // In the function form, top-level `this` is the global object.
            ("async (mcp) => { this.x = 1 }", 1, 18),
            ("async (mcp) => { return this }", 1, 25),
        ],
    );
}

#[test]
fn syntax_errors_have_positions() {
    expect(
        rules::SYNTAX_ERROR,
        &[
            ("const x = ;", 1, 11),
            // A redeclaration points at the first declaration (the diagnostic's first label).
            ("let a = 1;\nlet a = 2;", 1, 5),
            ("function f() {\n  await x;\n}", 2, 3),
            ("delete x;", 1, 8),
            ("const s = 'unterminated", 1, 11),
            ("if (a) {", 1, 9),
        ],
    );
}

#[test]
fn size_and_emptiness() {
    let small = ValidateOptions { max_code_bytes: 10 };
    let r = validate("return 'this is too long'", &small).unwrap_err();
    assert_eq!((r.rule.as_str(), r.line, r.column), (rules::CODE_TOO_LARGE, 1, 1));
    assert!(r.message.contains("25") && r.message.contains("10"), "{}", r.message);
    assert!(validate("return 1", &small).is_ok());
    for code in ["", "   ", "\n\t\n", "\u{FEFF} "] {
        assert_eq!(rejected(code).rule, rules::EMPTY_CODE, "{code:?}");
    }
    assert_eq!(rejected("// just a comment\n/* and another */").rule, rules::EMPTY_CODE);
}

#[test]
fn innocent_code_passes() {
    for code in [
        "return obj.evaluate",
        "return foo.process_id",
        "const module = 1; return module",
        "const process = { env: {} }; return process.env",
        "function require(x) { return x } return require('fs')",
        "let globalThis = {}; globalThis.x = 1",
        "const self = this; return self",
        "console.log('eval'); console.log(\"process\", 'Function', `require`)",
        "const s = 'eval'; return s.length",
        "return JSON.stringify({ a: [1, 2] })",
        "return Object.keys({ a: 1 }).map((k) => k.toUpperCase())",
        "const m = new Map(); m.set('a', 1); return [...m.entries()]",
        "class Point { constructor(x) { this.x = x } get double() { return this.x * 2 } static of(x) { return new Point(x) } }\nreturn Point.of(2).double",
        "class A { #secret = 1; static #count = 0; m() { return this.#secret } static { A.#count++ } }",
        "const r = await mcp.demo.echo({ msg: 'hi' }); return r?.msg ?? 'none'",
        "function* gen() { yield 1; yield* [2, 3] } return [...gen()]",
        "async function* agen() { yield 1 } for await (const x of agen()) console.log(x)",
        "const o = { constructor: 1, eval: 2 }; return o",
        "const { a, b: [c] = [] } = { a: 1 }; return a",
        "let n = 0; n += 1; n++; return n",
        "return globalThis.JSON.parse('1')",
        "return globalThis.self.JSON.stringify(window.window.Math.PI)",
        "return window.Math.max(1, 2) + self.Number('3')",
        "return typeof globalThis.fetch",
        "const k = 'fetch'; return typeof globalThis[k]",
        "setTimeout(() => {}, 10); setInterval(function () {}, 10)",
        "await new Promise((resolve) => setTimeout(resolve, 1))",
        "const re = /a(b)c/g; return 'abc'.replace(re, '$1')",
        "const x = 4 / 2 / 1; const y = (x) / 2; return `${x}/${y}`",
        "outer: for (const i of [1]) { for (const j of [2]) { continue outer } }",
        "try { throw new Error('x') } catch { } finally { }",
        "label: { break label }",
        "return [1, 2, 3].reduce((a, b) => a + b, 0)",
        "const date = new Date(0); return date.toISOString()",
        "return this",
        "return arguments.length",
        "async (mcp) => { const r = await mcp.demo.add({ a: 1, b: 2 }); return r.sum }",
        "(async function main(mcp) { return this })",
        "namespace N { export const y = 1 } return N.y",
        "const e = { eval: 1, process: 2 }; return e",
        "console.log('constructor'); return mcp.docs.search('constructor')",
    ] {
        ok(code);
    }
}

#[test]
fn typescript_is_stripped() {
    let code = "interface Point { x: number; y: number }
type Pair<T> = [T, T];
enum Color { Red = 1, Green }
declare const external: string;
abstract class Shape { abstract area(): number }
class Square extends Shape { constructor(private side: number) { super() } area(): number { return this.side ** 2 } }
function dist<T extends Point>(p: T): number { return Math.sqrt(p.x * p.x + p.y * p.y) }
const pair: Pair<number> = [1, 2];
const p = { x: 3, y: 4 } as Point;
const q = <Point>p;
const n = p!.x satisfies number;
return { d: dist<Point>(p), pair, green: Color.Green, q, n, s: new Square(2).area() };";
    let script = ok(code).script;
    for type_syntax in [
        "interface",
        "type Pair",
        ": number",
        "<T",
        "Point>",
        " as ",
        "satisfies",
        "declare",
        "abstract",
        "private",
        "!.",
    ] {
        assert!(!script.contains(type_syntax), "{type_syntax:?} left in:\n{script}");
    }
    assert!(script.contains("Color.Green") && script.contains("Math.sqrt"), "{script}");
    assert!(script.contains("this.side = side"), "parameter properties are lowered:\n{script}");
}

#[test]
fn modern_syntax_is_kept() {
    let script = ok("const a = obj?.b ?? 1; let c; c ||= 2; class K { #p = 1; static s = 2 }\nconst f = async () => { for await (const x of g()) {} }; return 2n ** 3n").script;
    for kept in ["?.", "??", "||=", "#p", "static s", "async () =>", "for await", "2n ** 3n"] {
        assert!(script.contains(kept), "{kept:?} was lowered:\n{script}");
    }
}

#[test]
fn body_form_script_shape() {
    let prepared = ok("const x: number = await mcp.demo.echo({});\nreturn x;");
    assert_eq!(
        prepared.script,
        "\"use strict\";\n(async function () {const x = await mcp.demo.echo({});\nreturn x;\n\n})"
    );
    // A directive or more than one statement keeps the body form.
    assert!(ok("'use strict'; async () => 1").script.starts_with("\"use strict\";\n(async function () {"));
    assert!(ok("const f = 1; async () => f").script.starts_with("\"use strict\";\n(async function () {"));
    // A function declaration is a statement of the body, not the function form.
    assert!(
        ok("async function main(mcp) { return 1 }")
            .script
            .starts_with("\"use strict\";\n(async function () {")
    );
}

#[test]
fn function_form_script_shape() {
    assert_eq!(
        ok("async (mcp: Mcp) => { return 1 }").script,
        "\"use strict\";\n(async (mcp) => {\n\treturn 1;\n}\n)"
    );
    assert_eq!(ok("async () => 'no params'").script, "\"use strict\";\n(async () => \"no params\"\n)");
    assert_eq!(
        ok("(async function main(mcp) { return 2 }) // trailing comment").script,
        "\"use strict\";\n((async function main(mcp) {\n\treturn 2;\n})\n)"
    );
    // Type declarations next to the function disappear, leaving the function form.
    assert_eq!(
        ok("interface Args { n: number }\n(mcp: any, args?: Args) => args?.n").script,
        "\"use strict\";\n((mcp, args) => args?.n\n)"
    );
}

#[test]
fn positions_map_back_to_typescript_source() {
    let source =
        "interface Point {\n  x: number;\n}\nconst p: Point = { x: 1 };\nthrow new Error(\"boom \" + p.x);\n";
    let prepared = ok(source);
    let lines: Vec<&str> = prepared.script.lines().collect();
    assert_eq!(lines[1], "(async function () {const p = { x: 1 };");
    assert_eq!(lines[2], "throw new Error(\"boom \" + p.x);");
    let map = &prepared.positions;
    // `throw` on script line 3 is source line 5; `new` and `p` keep their columns.
    assert_eq!(map.original(3, 1), Some((5, 1)));
    assert_eq!(map.original(3, 7), Some((5, 7)));
    assert_eq!(map.original(3, 27), Some((5, 27)));
    // `const` right after the wrapper prefix on script line 2 is source line 4.
    assert_eq!(map.original(2, 21), Some((4, 1)));
    // Wrapper code maps to nothing: the prelude, the prefix, the closing line.
    assert_eq!(map.original(1, 1), None);
    assert_eq!(map.original(2, 5), None);
    assert_eq!(map.original(lines.len() as u32, 1), None);
    assert_eq!(map.original(0, 0), None);
}

#[test]
fn positions_in_the_function_form_and_with_astral_characters() {
    let prepared = ok("async (mcp) => {\n  const s = '😀😀';\n  throw new Error(s);\n}");
    let lines: Vec<&str> = prepared.script.lines().collect();
    assert_eq!(lines[1], "(async (mcp) => {");
    assert_eq!(lines[3], "\tthrow new Error(s);");
    assert_eq!(prepared.positions.original(4, 2), Some((3, 3)));
    assert_eq!(prepared.positions.original(4, 8), Some((3, 9)));
    // Columns count characters, not UTF-16 units or bytes: `t` follows two emoji.
    let prepared = ok("const s = '😀😀', t = s;\nreturn t");
    let line2: Vec<char> = prepared.script.lines().nth(1).unwrap().chars().collect();
    let t_column = line2.windows(5).position(|w| w.iter().collect::<String>() == "t = s").unwrap() as u32 + 1;
    assert_eq!(prepared.positions.original(2, t_column), Some((1, 17)));
    // Cloning is cheap and the map is usable from other threads.
    let map = prepared.positions.clone();
    std::thread::spawn(move || assert_eq!(map.original(3, 1), Some((2, 1)))).join().unwrap();
}

#[test]
fn nesting_limits() {
    // Accepted nesting, close to the limit, runs on the validator's big stack without crashing.
    for code in [
        format!("return {}1{}", "(".repeat(4000), ")".repeat(4000)),
        format!("return {}1{}", "[".repeat(4000), "]".repeat(4000)),
        format!("{}{}", "{".repeat(4000), "}".repeat(4000)),
        format!("let x: {}1{}", "[".repeat(4000), "]".repeat(4000)),
        format!("let x: {}number{}", "Array<".repeat(32), ">".repeat(32)),
        format!("{}return 1", "if (a) ".repeat(4000)),
        format!("return a{}", ".b".repeat(4000)),
        format!("return 1{}", " + 1".repeat(4000)),
    ] {
        let result = validate(&code, &options());
        assert!(
            result.is_ok() || result.as_ref().is_err_and(|r| r.rule == rules::SYNTAX_ERROR),
            "{:?}",
            result.err()
        );
    }
    // Generics nested deeper than any real type (the pre-scan cannot tell a type's `<` from a
    // comparison's) are refused up front, like the comparisons that make TypeScript parsing exponential.
    for code in [
        format!("let x: {}number{}", "Array<".repeat(2700), ">".repeat(2700)),
        format!("return {}", "a<".repeat(40)),
        format!("return a < {}1{}", "[".repeat(20), "]".repeat(20)),
    ] {
        let r = validate(&code, &options()).unwrap_err();
        assert_eq!(r.rule, rules::UNSUPPORTED_SYNTAX, "{r:?}");
        assert!(r.message.contains("`<` open"), "{r:?}");
    }
    // What ordinary code does with `<` stays accepted.
    for code in [
        "for (let i = 0; i < 10; i++) { for (let j = 0; j < i; j++) {} } return 1",
        "const m = new Map<string, Array<Set<number>>>(); return m.size < 1 && [1, 2].every((x) => x < 3)",
        "const a = 1, b = 2; if (a < b && b < 3 && a < f([{ x: [1] }])) return 1; function f(x: unknown) { return 2 }",
    ] {
        assert!(validate(code, &options()).is_ok(), "{code}: {:?}", validate(code, &options()).err());
    }
    // 1 MB of pathological nesting is rejected quickly, without crashing.
    for unit in
        ["(", "[", "{", "`${", "a=>", "!", "-", "+a", ".a", "if(a)", "a?b:", "Array<", "x=", "new ", "await "]
    {
        let code = format!("return {}", unit.repeat((1 << 20) / unit.len()));
        let r = rejected(&code);
        // Open `<` hit their own, smaller limit first.
        let rule = if unit.contains('<') { rules::UNSUPPORTED_SYNTAX } else { rules::TOO_DEEPLY_NESTED };
        assert_eq!(r.rule, rule, "{unit}: {}", r.message);
        assert_eq!(r.line, 1);
    }
    let r = rejected(&format!("const a = 1;\nreturn {}", "(".repeat(100_000)));
    assert_eq!((r.rule.as_str(), r.line, r.column), (rules::TOO_DEEPLY_NESTED, 2, 7 + 4096));
    // Long but flat code is fine: statements and elements reset the estimate.
    ok(&"x.push(1);\n".repeat(20_000).replace("x.push", "[].push"));
    ok(&format!("return [{}]", "1, ".repeat(100_000)));
}

/// The fuzz input on which oxc recovered from an error inside a speculative TypeScript parse without
/// reporting it (and printed `0t`, which is not JavaScript) is refused: by the open-`<` limit now, and
/// the validator parses its own output as a second net (`pipeline::tests`).
#[test]
fn the_input_the_parser_recovered_from_silently_is_refused() {
    let code =
        include_str!("../../fuzz/regressions/validator/crash-71f7b662f2caa68a2816a93c9795a2b135b4bd80");
    let r = rejected(code);
    assert!([rules::SYNTAX_ERROR, rules::UNSUPPORTED_SYNTAX].contains(&r.rule.as_str()), "{r:?}");
}

#[test]
fn unsupported_syntax_is_refused_not_guessed() {
    expect(
        rules::UNSUPPORTED_SYNTAX,
        &[
            ("function f() {}\n/re/.test('x')", 2, 1),
            ("for (const x of /a/.exec('a')) {}", 1, 17),
            ("const v = x as Array<number> / 2", 1, 30),
            ("return 1 <!-- 2", 1, 10),
            ("@sealed class A {}", 1, 1),
            ("class A { @log m() {} }", 1, 11),
        ],
    );
    // The usual division and regular expression positions work.
    ok(
        "if (a) /re/.test('x'); const n = (1) / 2; const m = [4][0] / 2; let i = 0; i++ / 2; const r = x! / 2",
    );
    ok("const s = 'a'.replace(/\\//g, '') + `/${'/'}/`; // a / comment\nreturn s / 1");
}

#[test]
fn many_hostile_inputs_never_panic() {
    let samples = [
        "\u{FFFD}\u{0}",
        "`${",
        "'\\",
        "/*",
        "/[/",
        "#!x\n",
        "\\u{110000}",
        "a\u{2028}b",
        "}}}}",
        ")))",
        "<!--",
        "class { constructor() { super() } }",
        "enum E { A = 'x'.length }",
        "@dec class A {}",
        "declare module 'x' { export const y: number }",
        "using x = f()",
        "import.meta",
        "new.target",
        "x => { return }\n/x/",
        "a\n++b",
        "`${`${`${1}`}`}`",
        "({})[0]/1/",
        "`\\u{` + 1",
        "\u{2028}\u{2029}",
    ];
    for code in samples {
        let _ = validate(code, &options());
        for cut in 0..code.len() {
            if let Some(prefix) = code.get(..cut) {
                let _ = validate(prefix, &options());
            }
        }
    }
}

#[test]
fn rule_ids_are_stable() {
    assert_eq!(
        rules::ALL,
        &[
            "code-too-large",
            "empty-code",
            "syntax-error",
            "too-deeply-nested",
            "unsupported-syntax",
            "no-eval",
            "no-function-constructor",
            "no-import",
            "no-require",
            "no-with",
            "no-string-timer",
            "no-process",
            "no-deno",
            "no-bun",
            "no-module",
            "no-global-write",
            "internal-error",
        ]
    );
}

/// A constant chain longer than the folder's step budget must not let a forbidden name through: when
/// the folder gives up, the key is refused (fail closed), not waved through as "unknown at runtime".
#[test]
fn exhausted_constant_folding_fails_closed() {
    let chain = |n: usize, tail: &str| {
        let mut code = String::from("const a0 = \"ev\";\n");
        for i in 1..=n {
            code.push_str(&format!("const a{i} = a{};\n", i - 1));
        }
        code.push_str(tail);
        code
    };
    for n in [300, 5000] {
        for tail in [
            format!("globalThis[a{n} + \"al\"]('1')"),
            format!("const o = {{}}; o[a{n} + \"al\"]"),
            format!("const k = `${{a{n}}}al`; [][k]"),
            format!("setTimeout(a{n}, 1)"),
            format!("Reflect.get(() => {{}}, a{n} + 'al')"),
        ] {
            let code = chain(n, &tail);
            let r = rejected(&code);
            assert_ne!(r.rule, rules::INTERNAL_ERROR, "{tail}: {}", r.message);
            assert!(!r.message.is_empty() && !r.message.contains('\n'), "{tail}: {:?}", r.message);
        }
    }
    // The same chain that is never used as a computed key or timer argument is fine, and so is a long
    // benign program that folds many short keys.
    ok(&chain(5000, "return a5000.length"));
    let mut benign = String::from("const o = { alpha: 1, beta: 2 };\nlet total = 0;\n");
    for i in 0..5000 {
        benign.push_str(&format!("const k{i} = 'al' + 'pha'; total += o[k{i}] + o['be' + 'ta'] + {i};\n"));
    }
    benign.push_str("setTimeout(() => {}, 1);\nreturn total");
    ok(&benign);
}
