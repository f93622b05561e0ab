//! Property test for the nesting pre-scan: on random valid programs full of brackets hidden in
//! strings, templates, comments and regular expressions (next to divisions), the estimate must
//! bound the real AST depth oxc builds. A lexing mistake in the pre-scan (say, a regular
//! expression read as division) would show up here as an estimate far below the real depth.

use oxc::allocator::Allocator;
use oxc::ast::AstKind;
use oxc::ast_visit::Visit;
use oxc::parser::{ParseOptions, Parser};
use oxc::span::SourceType;

use super::depth::{Scan, scan};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn expr(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 {
        return ["1", "a", "'(['", "/[(]/g", "`{`"][rng.below(5)].to_owned();
    }
    let e = |rng: &mut Rng| expr(rng, depth - 1);
    // One side of binary forms is a leaf, so programs stay small while nesting deeply.
    let leaf = |rng: &mut Rng| expr(rng, 0);
    match rng.below(16) {
        0 => format!("({})", e(rng)),
        1 => format!("[{}, {}]", e(rng), leaf(rng)),
        2 => format!("({{ a: {} }})", e(rng)),
        3 => format!("{} / {}", leaf(rng), e(rng)),
        4 => format!("/[/(\\[{{\"'`]\\/(/.test({})", e(rng)),
        5 => format!("\"([{{`\\\"'\" + {}", e(rng)),
        6 => format!("`(${{{}}})[${{'}}'}}`", e(rng)),
        7 => format!("f({})", e(rng)),
        8 => format!("({}).b", e(rng)),
        9 => format!("!{}", e(rng)),
        10 => format!("(x) / 2 / {}", e(rng)),
        11 => format!("{} ? {} : {}", leaf(rng), e(rng), leaf(rng)),
        12 => format!("((x) => {})", e(rng)),
        13 => format!("(async () => {{ if (a) /[)]/.test('x'); return {} }})", e(rng)),
        14 => format!("/* ((( `{{ */ {}", e(rng)),
        _ => format!("{}\n// ))) }}}}\n+ {}", leaf(rng), e(rng)),
    }
}

/// Deepest nesting of AST nodes.
fn ast_depth(source: &str) -> Option<u32> {
    #[derive(Default)]
    struct Depth(u32, u32);
    impl<'a> Visit<'a> for Depth {
        fn enter_node(&mut self, _: AstKind<'a>) {
            self.0 += 1;
            self.1 = self.1.max(self.0);
        }
        fn leave_node(&mut self, _: AstKind<'a>) {
            self.0 -= 1;
        }
    }
    let allocator = Allocator::default();
    let options = ParseOptions { allow_return_outside_function: true, ..ParseOptions::default() };
    let ret =
        Parser::new(&allocator, source, SourceType::ts().with_module(true)).with_options(options).parse();
    if ret.panicked || ret.diagnostics.has_errors() {
        return None;
    }
    let mut depth = Depth::default();
    depth.visit_program(&ret.program);
    Some(depth.1)
}

#[test]
fn estimate_bounds_the_real_depth() {
    let mut rng = Rng(0x5eed);
    for _ in 0..400 {
        let depth = 10 + rng.below(40) as u32;
        let source = format!("x = {};\nif (a) /[}}]/.test('(');\n", expr(&mut rng, depth));
        let real = ast_depth(&source);
        assert!(real.is_some(), "generated invalid code:\n{source}");
        let real = real.unwrap_or_default();
        let scanned = scan(&source);
        assert!(matches!(scanned, Scan::Depth(_)), "pre-scan refused:\n{source}");
        let Scan::Depth(estimate) = scanned else { return };
        // An AST level needs at most a few nodes per token of the estimate.
        assert!(real <= 6 * estimate + 8, "estimate {estimate} for real depth {real}:\n{source}");
    }
}
