//! Constant folding, just enough to see through computed property names and timer arguments:
//! `obj["con" + "structor"]`, `` globalThis[`ev${"al"}`] ``, `const k = "eval"; g[k]`,
//! `String.fromCharCode(101, 118, 97, 108)`, `["ev", "al"].join("")`.
//!
//! Identifier names and string values in the oxc AST are already unescaped, so `"\u0065val"` is
//! `eval` here without extra work.

use oxc::ast::AstKind;
use oxc::ast::ast::{
    Argument, ArrayExpressionElement, BinaryOperator, BindingPattern, Expression, IdentifierReference,
    LogicalExpression,
};
use oxc::semantic::Semantic;

/// Folded strings longer than this cannot be any name we look for, so they are not kept.
const MAX_LEN: usize = 64;
/// Steps allowed per folded expression: bounds time on `const b = a + a; const c = b + b; …`.
/// Running out is not "unknown at runtime": the callers refuse the expression (fail closed), since a
/// long `const a1 = a0; const a2 = a1; …` chain could otherwise hide `eval` from every rule.
pub(crate) const BUDGET: u32 = 256;

/// The steps left for one folded expression, and whether folding ran out of them.
struct Budget {
    left: u32,
    exhausted: bool,
}

impl Budget {
    fn new() -> Self {
        Budget { left: BUDGET, exhausted: false }
    }

    /// Takes one step, or records exhaustion and returns `None`.
    fn step(&mut self) -> Option<()> {
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                Some(())
            }
            None => {
                self.exhausted = true;
                None
            }
        }
    }
}

/// A JavaScript primitive value produced by folding.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    /// A string longer than `MAX_LEN`.
    LongStr,
    Num(f64),
    Bool(bool),
    Null,
    Undefined,
}

impl Value {
    fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::LongStr)
    }

    /// `ToString`, or `None` for a long string.
    fn to_js_string(&self) -> Option<String> {
        Some(match self {
            Value::Str(s) => s.clone(),
            Value::LongStr => return None,
            Value::Num(n) => number_to_string(*n),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            Value::Undefined => "undefined".into(),
        })
    }

    fn to_number(&self) -> f64 {
        match self {
            Value::Num(n) => *n,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Null => 0.0,
            Value::Str(_) | Value::LongStr | Value::Undefined => f64::NAN,
        }
    }
}

fn string(s: String) -> Value {
    if s.len() > MAX_LEN { Value::LongStr } else { Value::Str(s) }
}

/// Number to string. Exact for integers below 1e21 (the only numbers that can help spell a
/// name); other values only need to be some string of digits, which no name we check contains.
fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else if n == n.trunc() && n.abs() < 1e21 {
        format!("{n:.0}").replace("-0", "0")
    } else {
        format!("{n}")
    }
}

/// The statically known property name of a computed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Name(String),
    /// A constant string too long to be a name we check.
    Long,
    /// Not a constant.
    Unknown,
    /// Folding ran out of steps (`BUDGET`): it may be any name, so callers must refuse it.
    Exhausted,
}

pub(crate) struct Folder<'s, 'a> {
    pub(crate) semantic: &'s Semantic<'a>,
}

impl<'a> Folder<'_, 'a> {
    /// Possible property names of a computed key. Branches of `?:`, `||`, `&&`, `??` and the last
    /// expression of a sequence are all candidates (`obj[c ? "x" : "constructor"]`).
    pub(crate) fn key_candidates(&self, expr: &Expression<'a>) -> Vec<Key> {
        let mut out = Vec::new();
        let mut budget = Budget::new();
        self.candidates(expr, &mut out, &mut budget);
        if budget.exhausted {
            out.push(Key::Exhausted);
        }
        out
    }

    fn candidates(&self, expr: &Expression<'a>, out: &mut Vec<Key>, budget: &mut Budget) {
        if budget.step().is_none() {
            return;
        }
        match expr {
            Expression::ParenthesizedExpression(e) => self.candidates(&e.expression, out, budget),
            Expression::ConditionalExpression(e) => {
                self.candidates(&e.consequent, out, budget);
                self.candidates(&e.alternate, out, budget);
            }
            Expression::LogicalExpression(e) => self.logical_candidates(e, out, budget),
            Expression::SequenceExpression(e) => match e.expressions.last() {
                Some(last) => self.candidates(last, out, budget),
                None => out.push(Key::Unknown),
            },
            Expression::AssignmentExpression(e) => self.candidates(&e.right, out, budget),
            _ => out.push(match self.eval(expr, budget) {
                Some(Value::LongStr) => Key::Long,
                Some(v) => v.to_js_string().map_or(Key::Long, Key::Name),
                None => Key::Unknown,
            }),
        }
    }

    fn logical_candidates(&self, e: &LogicalExpression<'a>, out: &mut Vec<Key>, budget: &mut Budget) {
        self.candidates(&e.left, out, budget);
        self.candidates(&e.right, out, budget);
    }

    /// Whether `expr` evaluates to a string: a string or template literal, a `+` with a string
    /// operand, or anything folding to a string (the arguments `setTimeout` would compile). `None`
    /// when folding ran out of steps before it could tell: callers must refuse the expression.
    pub(crate) fn is_stringish(&self, expr: &Expression<'a>) -> Option<bool> {
        let mut budget = Budget::new();
        let stringish = self.stringish(expr, &mut budget);
        if stringish || !budget.exhausted { Some(stringish) } else { None }
    }

    fn stringish(&self, expr: &Expression<'a>, budget: &mut Budget) -> bool {
        if budget.step().is_none() {
            return false;
        }
        match expr {
            Expression::StringLiteral(_) | Expression::TemplateLiteral(_) => true,
            Expression::TaggedTemplateExpression(e) => self.is_global_member(&e.tag, "String", "raw"),
            Expression::ParenthesizedExpression(e) => self.stringish(&e.expression, budget),
            Expression::BinaryExpression(e) if e.operator == BinaryOperator::Addition => {
                self.stringish(&e.left, budget) || self.stringish(&e.right, budget)
            }
            Expression::ConditionalExpression(e) => {
                self.stringish(&e.consequent, budget) || self.stringish(&e.alternate, budget)
            }
            Expression::LogicalExpression(e) => {
                self.stringish(&e.left, budget) || self.stringish(&e.right, budget)
            }
            Expression::SequenceExpression(e) => {
                e.expressions.last().is_some_and(|last| self.stringish(last, budget))
            }
            Expression::Identifier(id) => match self.const_init(id) {
                Some(init) => self.stringish(init, budget),
                None => false,
            },
            _ => self.eval(expr, budget).is_some_and(|v| v.is_string()),
        }
    }

    fn eval(&self, expr: &Expression<'a>, budget: &mut Budget) -> Option<Value> {
        budget.step()?;
        match expr {
            Expression::StringLiteral(s) => Some(string(s.value.as_str().to_owned())),
            Expression::NumericLiteral(n) => Some(Value::Num(n.value)),
            Expression::BooleanLiteral(b) => Some(Value::Bool(b.value)),
            Expression::NullLiteral(_) => Some(Value::Null),
            Expression::ParenthesizedExpression(e) => self.eval(&e.expression, budget),
            Expression::TemplateLiteral(t) => {
                let mut out = String::new();
                for (i, quasi) in t.quasis.iter().enumerate() {
                    out.push_str(quasi.value.cooked.as_ref()?.as_str());
                    if let Some(e) = t.expressions.get(i) {
                        out.push_str(&self.eval(e, budget)?.to_js_string()?);
                    }
                    if out.len() > MAX_LEN {
                        return Some(Value::LongStr);
                    }
                }
                Some(string(out))
            }
            Expression::BinaryExpression(e) if e.operator == BinaryOperator::Addition => {
                let (l, r) = (self.eval(&e.left, budget)?, self.eval(&e.right, budget)?);
                if l.is_string() || r.is_string() {
                    match (l.to_js_string(), r.to_js_string()) {
                        (Some(l), Some(r)) => Some(string(l + &r)),
                        _ => Some(Value::LongStr),
                    }
                } else {
                    Some(Value::Num(l.to_number() + r.to_number()))
                }
            }
            Expression::Identifier(id) if id.name == "undefined" && self.unresolved(id) => {
                Some(Value::Undefined)
            }
            Expression::Identifier(id) => self.eval(self.const_init(id)?, budget),
            Expression::CallExpression(call) => {
                if self.is_global_member(&call.callee, "String", "fromCharCode") {
                    let mut units = Vec::with_capacity(call.arguments.len());
                    for arg in &call.arguments {
                        let n = self.eval(arg.as_expression()?, budget)?.to_number();
                        // ToUint16
                        let unit = if n.is_finite() { n.trunc().rem_euclid(65536.0) } else { 0.0 };
                        units.push(unit as u16);
                    }
                    String::from_utf16(&units).ok().map(string)
                } else {
                    self.eval_join(&call.callee, &call.arguments, budget)
                }
            }
            _ => None,
        }
    }

    /// `[…].join(sep)` over foldable elements.
    fn eval_join(
        &self,
        callee: &Expression<'a>,
        args: &[Argument<'a>],
        budget: &mut Budget,
    ) -> Option<Value> {
        let Expression::StaticMemberExpression(member) = callee.without_parentheses() else {
            return None;
        };
        let Expression::ArrayExpression(array) = member.object.without_parentheses() else {
            return None;
        };
        if member.property.name != "join" {
            return None;
        }
        let sep = match args.first() {
            None => ",".to_owned(),
            Some(arg) => match self.eval(arg.as_expression()?, budget)? {
                Value::Undefined => ",".to_owned(),
                v => v.to_js_string()?,
            },
        };
        let mut parts = Vec::with_capacity(array.elements.len());
        for element in &array.elements {
            let value = match element {
                ArrayExpressionElement::SpreadElement(_) => return None,
                ArrayExpressionElement::Elision(_) => Value::Undefined,
                _ => self.eval(element.as_expression()?, budget)?,
            };
            parts.push(match value {
                Value::Null | Value::Undefined => String::new(),
                v => v.to_js_string()?,
            });
        }
        Some(string(parts.join(&sep)))
    }

    fn unresolved(&self, id: &IdentifierReference<'a>) -> bool {
        unresolved(self.semantic, id)
    }

    /// `object.property` where `object` is an unresolved global (e.g. `String.fromCharCode`).
    fn is_global_member(&self, expr: &Expression<'a>, object: &str, property: &str) -> bool {
        matches!(expr.without_parentheses(), Expression::StaticMemberExpression(m)
            if m.property.name == property
                && matches!(m.object.without_parentheses(),
                    Expression::Identifier(id) if id.name == object && self.unresolved(id)))
    }

    /// The initializer of the `const` an identifier refers to, if it is a plain
    /// `const name = init` that is never written.
    pub(crate) fn const_init(&self, id: &IdentifierReference<'a>) -> Option<&'a Expression<'a>> {
        let scoping = self.semantic.scoping();
        let symbol = scoping.get_reference(id.reference_id.get()?).symbol_id()?;
        if !scoping.symbol_flags(symbol).is_const_variable() || scoping.symbol_is_mutated(symbol) {
            return None;
        }
        let AstKind::VariableDeclarator(declarator) = self.semantic.symbol_declaration(symbol).kind() else {
            return None;
        };
        match &declarator.id {
            BindingPattern::BindingIdentifier(_) => declarator.init.as_ref(),
            _ => None,
        }
    }
}

/// Whether an identifier reference resolves to no declaration (a global, or nothing).
pub(crate) fn unresolved(semantic: &Semantic<'_>, id: &IdentifierReference<'_>) -> bool {
    match id.reference_id.get() {
        None => true,
        Some(reference) => semantic.scoping().get_reference(reference).symbol_id().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::number_to_string;

    #[test]
    fn numbers() {
        assert_eq!(number_to_string(1.0), "1");
        assert_eq!(number_to_string(-0.0), "0");
        assert_eq!(number_to_string(1.5), "1.5");
        assert_eq!(number_to_string(f64::NAN), "NaN");
    }
}
