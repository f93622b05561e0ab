//! The rule checks. They run on the program *after* TypeScript stripping, with fresh semantic
//! analysis, so they see exactly the JavaScript that will run: `declare const process: any`,
//! bodiless `function process(): void;` overloads or type-only names cannot make a host global
//! look like a local, and `<any>globalThis` is plain `globalThis`. Spans still point into the
//! submitted source. Import/export declarations are checked on the original program instead
//! (`module_syntax`), because the TypeScript transform drops unused imports.

use oxc::ast::ast::{
    AccessorProperty, Argument, AssignmentTargetPropertyIdentifier, AssignmentTargetPropertyProperty,
    BinaryExpression, BindingProperty, CallExpression, ChainElement, ComputedMemberExpression, Decorator,
    Expression, Function, IdentifierReference, ImportExpression, ImportMeta, MemberExpression,
    ModuleDeclaration, Program, PropertyDefinition, PropertyKey, SimpleAssignmentTarget, Statement,
    StaticBlock, StaticMemberExpression, ThisExpression, UnaryExpression, UnaryOperator, WithStatement,
};
use std::{cell::RefCell, collections::HashMap};

use oxc::ast_visit::{Visit, walk};
use oxc::semantic::Semantic;
use oxc::span::{GetSpan, Span};
use oxc::syntax::scope::ScopeFlags;

use super::fold::{BUDGET, Folder, Key, unresolved};
use super::rules::{self, GLOBAL_OBJECT_NAMES, TIMERS, forbidden_global};

/// A rule violation at a byte offset of the submitted source.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) rule: &'static str,
    pub(crate) offset: u32,
    pub(crate) message: String,
    /// In code the TypeScript transform generated (empty span): reported only if nothing in the
    /// written code is, since its position is meaningless (e.g. `module` from `export =`).
    pub(crate) synthetic: bool,
}

impl Violation {
    pub(crate) fn new(rule: &'static str, span: Span, message: String) -> Self {
        Self { rule, offset: span.start, message, synthetic: span.is_empty() }
    }

    fn rank(&self) -> (bool, u32) {
        (self.synthetic, self.offset)
    }
}

/// The earlier of two optional violations.
pub(crate) fn earliest(a: Option<Violation>, b: Option<Violation>) -> Option<Violation> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.rank() < a.rank() { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Inherited `Object.prototype` members that hand out or modify the object they are read from:
/// `globalThis.valueOf()` is the global object, `globalThis.__defineGetter__("x", f)` defines a
/// global.
const GLOBAL_SELF_METHODS: &[&str] =
    &["valueOf", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__"];

const CONSTRUCTOR_WHY: &str = "constructor chains such as `(async () => {}).constructor` or \
     `[].map.constructor` reach the Function constructor, which compiles strings into code";

/// Top-level `import`/`export` declarations (TypeScript `import x = require()` and `export =`
/// included), checked before the TypeScript transform removes unused imports.
pub(crate) fn module_syntax(program: &Program<'_>) -> Option<Violation> {
    program.body.iter().find_map(|statement| {
        let what = match statement {
            Statement::ImportDeclaration(_) | Statement::TSImportEqualsDeclaration(_) => "`import`",
            s if s.is_module_declaration() => "`export`",
            _ => return None,
        };
        let message = format!(
            "{what} declarations are not allowed: the sandbox has no modules; write a script body \
             (top-level `await` and `return` work) and reach tools through `mcp`"
        );
        Some(Violation::new(rules::NO_IMPORT, statement.span(), message))
    })
}

/// The first `with` statement, if any (reported instead of the strict-mode syntax error).
pub(crate) fn find_with(program: &Program<'_>) -> Option<Violation> {
    #[derive(Default)]
    struct FindWith(Option<Span>);
    impl<'a> Visit<'a> for FindWith {
        fn visit_with_statement(&mut self, it: &WithStatement<'a>) {
            if self.0.is_none() {
                self.0 = Some(it.span);
            }
        }
    }
    let mut finder = FindWith::default();
    finder.visit_program(program);
    finder.0.map(with_violation)
}

fn with_violation(span: Span) -> Violation {
    let message = "`with` statements are not allowed: they make every name lookup dynamic".into();
    Violation::new(rules::NO_WITH, span, message)
}

/// Runs every rule over the (transformed) program. `function_form` is true when the program is a
/// single function expression: then top-level `this` is the global object.
pub(crate) fn check<'a>(
    program: &Program<'a>,
    semantic: &Semantic<'a>,
    function_form: bool,
) -> Option<Violation> {
    let mut checker = Checker {
        semantic,
        folder: Folder { semantic },
        function_form,
        this_depth: 0,
        first: None,
        global_members: RefCell::default(),
    };
    checker.visit_program(program);
    checker.first
}

struct Checker<'s, 'a> {
    semantic: &'s Semantic<'a>,
    folder: Folder<'s, 'a>,
    function_form: bool,
    /// Non-arrow functions (and class member bodies) we are inside: each has its own `this`.
    this_depth: u32,
    first: Option<Violation>,
    /// `is_global_member` by node (address) and `this` depth: each level of a member chain asks about
    /// the chain below it, so without this a long chain is checked in quadratic time.
    global_members: RefCell<HashMap<(usize, u32), bool>>,
}

impl<'a> Checker<'_, 'a> {
    fn report(&mut self, rule: &'static str, span: Span, message: String) {
        let violation = Violation::new(rule, span, message);
        if self.first.as_ref().is_none_or(|v| violation.rank() < v.rank()) {
            self.first = Some(violation);
        }
    }

    fn unresolved(&self, id: &IdentifierReference<'a>) -> bool {
        unresolved(self.semantic, id)
    }

    /// Whether `this` here is the global object: at the top level of the function form, whose
    /// function is evaluated by a global script.
    fn this_is_global(&self) -> bool {
        self.function_form && self.this_depth == 0
    }

    /// `globalThis`, `window`, … (unresolved), top-level `this` in the function form, and member
    /// chains that name the global object again (`globalThis.globalThis`, `window["self"]`).
    fn is_global_object(&self, expr: &Expression<'a>) -> bool {
        match expr.without_parentheses() {
            Expression::Identifier(id) => {
                GLOBAL_OBJECT_NAMES.contains(&id.name.as_str()) && self.unresolved(id)
            }
            Expression::ThisExpression(_) => self.this_is_global(),
            Expression::ChainExpression(chain) => match chain.expression.as_member_expression() {
                Some(member) => self.is_global_member(member),
                None => false,
            },
            e => e.as_member_expression().is_some_and(|m| self.is_global_member(m)),
        }
    }

    fn is_global_member(&self, member: &MemberExpression<'a>) -> bool {
        let key = (std::ptr::from_ref(member) as usize, self.this_depth);
        let known = self.global_members.borrow().get(&key).copied();
        if let Some(known) = known {
            return known;
        }
        let global = self.is_global_member_uncached(member);
        self.global_members.borrow_mut().insert(key, global);
        global
    }

    fn is_global_member_uncached(&self, member: &MemberExpression<'a>) -> bool {
        let names_global = match member {
            MemberExpression::StaticMemberExpression(m) => {
                GLOBAL_OBJECT_NAMES.contains(&m.property.name.as_str())
            }
            MemberExpression::ComputedMemberExpression(m) => {
                let keys = self.folder.key_candidates(&m.expression);
                keys.iter().any(|k| match k {
                    Key::Name(n) => GLOBAL_OBJECT_NAMES.contains(&n.as_str()),
                    // Could be any name: assume the worst (the key itself is refused in `check_key`).
                    Key::Exhausted => true,
                    Key::Long | Key::Unknown => false,
                })
            }
            MemberExpression::PrivateFieldExpression(_) => false,
        };
        names_global && self.is_global_object(member.object())
    }

    /// Whether a member chain (`a.b.c`) is rooted at the global object.
    fn rooted_at_global(&self, mut expr: &Expression<'a>) -> bool {
        loop {
            if self.is_global_object(expr) {
                return true;
            }
            expr = match expr.without_parentheses() {
                Expression::ChainExpression(chain) => match chain.expression.as_member_expression() {
                    Some(member) => member.object(),
                    None => return false,
                },
                e => match e.as_member_expression() {
                    Some(member) => member.object(),
                    None => return false,
                },
            };
        }
    }

    /// Visits the computed keys of a chain that names the global object, but not its root, which
    /// is allowed there.
    fn visit_global_chain(&mut self, expr: &Expression<'a>) {
        let member = match expr.without_parentheses() {
            Expression::ChainExpression(chain) => chain.expression.as_member_expression(),
            e => e.as_member_expression(),
        };
        if let Some(member) = member {
            if let MemberExpression::ComputedMemberExpression(m) = member {
                self.visit_expression(&m.expression);
            }
            self.visit_global_chain(member.object());
        }
    }

    /// `x.constructor === Y` and `x.constructor.name`: reads of `constructor` whose value can only be
    /// compared or named, never called or kept, so they cannot reach the Function constructor. Benign
    /// code uses them for type checks; everything else about `.constructor` is still refused (and the
    /// engine has no working Function constructor anyway: layer 2).
    fn inert_constructor_read(&mut self, expr: &Expression<'a>) -> bool {
        match expr.without_parentheses() {
            Expression::StaticMemberExpression(m) if m.property.name == "constructor" => {
                if self.is_global_object(&m.object) {
                    return false;
                }
                self.visit_expression(&m.object);
                true
            }
            _ => false,
        }
    }

    /// Property names that are forbidden on any object (`eval`, `constructor`) or on the global
    /// object (`process`, `require`, …).
    fn check_name(&mut self, name: &str, span: Span, on_global: bool) {
        if on_global && GLOBAL_OBJECT_NAMES.contains(&name) {
            // Reached only where this member is not itself read from (see `visit_global_chain`):
            // `const g = globalThis.self` aliases the global object.
            self.report_global_write(span, &format!("using the global object (`.{name}`) as a value"));
        } else if on_global && GLOBAL_SELF_METHODS.contains(&name) {
            let what = format!("`.{name}` on the global object (it returns or changes the global object)");
            self.report_global_write(span, &what);
        } else if name == "eval" {
            let message = "access to `eval` is not allowed: it compiles strings into code".into();
            self.report(rules::NO_EVAL, span, message);
        } else if name == "constructor" {
            let message = format!("access to the `constructor` property is not allowed: {CONSTRUCTOR_WHY}");
            self.report(rules::NO_FUNCTION_CONSTRUCTOR, span, message);
        } else if let Some((rule, why)) = forbidden_global(name).filter(|_| on_global) {
            let message = format!("`{name}` on the global object is not available: {why}");
            self.report(rule, span, message);
        }
    }

    /// A computed key: every constant candidate is checked. Keys only known at runtime pass: the
    /// isolate has no `eval`, `Function` or host objects to find (layer 2). A constant too long to
    /// fold is refused: it could spell any name.
    fn check_key(&mut self, key: &Expression<'a>, on_global: bool) {
        let span = key.span();
        for candidate in self.folder.key_candidates(key) {
            match candidate {
                Key::Name(name) => self.check_name(&name, span, on_global),
                Key::Exhausted => self.report_too_complex(span, "computed property name"),
                Key::Long | Key::Unknown => {}
            }
        }
    }

    /// A constant expression the folder gave up on (more than `BUDGET` steps): it is refused rather
    /// than passed, so a long chain of constants cannot hide a forbidden name.
    fn report_too_complex(&mut self, span: Span, what: &str) {
        let message = format!(
            "this {what} is built from a chain of constants too long to check (more than {BUDGET} \
             folding steps); write it more directly"
        );
        self.report(rules::UNSUPPORTED_SYNTAX, span, message);
    }

    fn check_property_key(&mut self, key: &PropertyKey<'a>) {
        match key {
            PropertyKey::StaticIdentifier(id) => self.check_name(id.name.as_str(), id.span, false),
            PropertyKey::PrivateIdentifier(_) => {}
            key => {
                if let Some(expr) = key.as_expression() {
                    self.check_key(expr, false);
                }
            }
        }
    }

    /// Arguments naming `constructor` in calls of `Reflect` and `Object` methods
    /// (`Reflect.get(f, "constructor")`, `Object.getOwnPropertyDescriptor(p, "constructor")`).
    /// Other calls may pass the word as data (`mcp.docs.search("constructor")`).
    fn check_reflection(&mut self, call: &CallExpression<'a>) {
        let member = match call.callee.without_parentheses() {
            Expression::ChainExpression(chain) => chain.expression.as_member_expression(),
            e => e.as_member_expression(),
        };
        let reflective = member.is_some_and(|m| match m.object().without_parentheses() {
            Expression::Identifier(id) => {
                matches!(id.name.as_str(), "Reflect" | "Object") && self.unresolved(id)
            }
            Expression::StaticMemberExpression(o) => {
                matches!(o.property.name.as_str(), "Reflect" | "Object") && self.is_global_object(&o.object)
            }
            _ => false,
        });
        if !reflective {
            return;
        }
        for argument in &call.arguments {
            let exprs: Vec<&Expression<'a>> = match argument {
                Argument::SpreadElement(spread) => match spread.argument.without_parentheses() {
                    Expression::ArrayExpression(array) => {
                        array.elements.iter().filter_map(|e| e.as_expression()).collect()
                    }
                    _ => Vec::new(),
                },
                argument => argument.as_expression().into_iter().collect(),
            };
            for expr in exprs {
                let keys = self.folder.key_candidates(expr);
                if keys.contains(&Key::Exhausted) {
                    self.report_too_complex(expr.span(), "argument");
                    continue;
                }
                let names_constructor = keys.iter().any(|k| matches!(k, Key::Name(n) if n == "constructor"));
                if names_constructor {
                    let message = format!(
                        "passing the property name \"constructor\" to `Reflect` or `Object` methods \
                         is not allowed: {CONSTRUCTOR_WHY}"
                    );
                    self.report(rules::NO_FUNCTION_CONSTRUCTOR, expr.span(), message);
                }
            }
        }
    }

    /// `setTimeout("code")` and friends, called directly or on the global object.
    fn check_timer(&mut self, call: &CallExpression<'a>) {
        let mut callee = call.callee.without_parentheses();
        // `(0, setTimeout)("code")`
        while let Expression::SequenceExpression(sequence) = callee {
            let Some(last) = sequence.expressions.last() else { return };
            callee = last.without_parentheses();
        }
        let callee = match callee {
            Expression::ChainExpression(chain) => match chain.expression.as_member_expression() {
                Some(member) => self.timer_member(member),
                None => None,
            },
            Expression::Identifier(id) if self.unresolved(id) => {
                TIMERS.iter().find(|t| **t == id.name.as_str()).copied()
            }
            e => e.as_member_expression().and_then(|m| self.timer_member(m)),
        };
        let Some(timer) = callee else { return };
        let first = match call.arguments.first() {
            Some(Argument::SpreadElement(spread)) => match spread.argument.without_parentheses() {
                Expression::ArrayExpression(array) => array.elements.first().and_then(|e| e.as_expression()),
                _ => None,
            },
            Some(argument) => argument.as_expression(),
            None => None,
        };
        let Some(first) = first else { return };
        match self.folder.is_stringish(first) {
            Some(false) => {}
            Some(true) => {
                let message = format!(
                    "`{timer}` with a string argument compiles the string into code; pass a function instead"
                );
                self.report(rules::NO_STRING_TIMER, first.span(), message);
            }
            None => self.report_too_complex(first.span(), &format!("`{timer}` argument")),
        }
    }

    fn timer_member(&self, member: &MemberExpression<'a>) -> Option<&'static str> {
        if !self.is_global_object(member.object()) {
            return None;
        }
        let names: Vec<String> = match member {
            MemberExpression::StaticMemberExpression(m) => vec![m.property.name.to_string()],
            MemberExpression::ComputedMemberExpression(m) => self
                .folder
                .key_candidates(&m.expression)
                .into_iter()
                .filter_map(|k| if let Key::Name(n) = k { Some(n) } else { None })
                .collect(),
            MemberExpression::PrivateFieldExpression(_) => Vec::new(),
        };
        TIMERS.iter().find(|t| names.iter().any(|n| n == **t)).copied()
    }

    fn report_global_write(&mut self, span: Span, what: &str) {
        let message = format!(
            "{what} is not allowed: the global object (`globalThis`, `window`, `self`, `global`) may \
             only be read from, as in `globalThis.JSON`"
        );
        self.report(rules::NO_GLOBAL_WRITE, span, message);
    }
}

impl<'a> Visit<'a> for Checker<'_, 'a> {
    fn visit_identifier_reference(&mut self, id: &IdentifierReference<'a>) {
        let name = id.name.as_str();
        if name == "eval" {
            let message = "`eval` is not allowed: it compiles strings into code".into();
            self.report(rules::NO_EVAL, id.span, message);
            return;
        }
        if !self.unresolved(id) {
            return;
        }
        if let Some((rule, why)) = forbidden_global(name) {
            self.report(rule, id.span, format!("`{name}` is not available: {why}"));
        } else if GLOBAL_OBJECT_NAMES.contains(&name) {
            let what = format!("using `{name}` other than to read one of its properties");
            self.report_global_write(id.span, &what);
        } else {
            let reference = id.reference_id.get().map(|r| self.semantic.scoping().get_reference(r));
            if reference.is_some_and(|r| r.is_write()) {
                let what = format!("assigning to the undeclared variable `{name}` (an implicit global)");
                self.report_global_write(id.span, &what);
            }
        }
    }

    fn visit_this_expression(&mut self, it: &ThisExpression) {
        if self.this_is_global() {
            let what = "using top-level `this` (the global object, in a function expression evaluated \
                        by the script) other than to read one of its properties";
            self.report_global_write(it.span, what);
        }
    }

    fn visit_binary_expression(&mut self, it: &BinaryExpression<'a>) {
        if it.operator.is_equality() {
            for operand in [&it.left, &it.right] {
                if !self.inert_constructor_read(operand) {
                    self.visit_expression(operand);
                }
            }
            return;
        }
        walk::walk_binary_expression(self, it);
    }

    fn visit_static_member_expression(&mut self, it: &StaticMemberExpression<'a>) {
        if it.property.name == "name" && self.inert_constructor_read(&it.object) {
            return;
        }
        let on_global = self.is_global_object(&it.object);
        self.check_name(it.property.name.as_str(), it.property.span, on_global);
        if on_global {
            self.visit_global_chain(&it.object);
        } else {
            self.visit_expression(&it.object);
        }
    }

    fn visit_computed_member_expression(&mut self, it: &ComputedMemberExpression<'a>) {
        let on_global = self.is_global_object(&it.object);
        self.check_key(&it.expression, on_global);
        if on_global {
            self.visit_global_chain(&it.object);
        } else {
            self.visit_expression(&it.object);
        }
        self.visit_expression(&it.expression);
    }

    fn visit_simple_assignment_target(&mut self, it: &SimpleAssignmentTarget<'a>) {
        if let Some(member) = it.as_member_expression()
            && self.rooted_at_global(member.object())
        {
            self.report_global_write(member.span(), "assigning to a property of the global object");
        }
        walk::walk_simple_assignment_target(self, it);
    }

    fn visit_unary_expression(&mut self, it: &UnaryExpression<'a>) {
        if it.operator == UnaryOperator::Delete {
            let member = match it.argument.without_parentheses() {
                Expression::ChainExpression(chain) => match &chain.expression {
                    ChainElement::CallExpression(_) | ChainElement::TSNonNullExpression(_) => None,
                    element => element.as_member_expression(),
                },
                e => e.as_member_expression(),
            };
            if member.is_some_and(|m| self.rooted_at_global(m.object())) {
                self.report_global_write(it.span, "deleting a property of the global object");
            }
        }
        walk::walk_unary_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        self.check_timer(it);
        self.check_reflection(it);
        walk::walk_call_expression(self, it);
    }

    fn visit_binding_property(&mut self, it: &BindingProperty<'a>) {
        self.check_property_key(&it.key);
        walk::walk_binding_property(self, it);
    }

    fn visit_assignment_target_property_identifier(&mut self, it: &AssignmentTargetPropertyIdentifier<'a>) {
        self.check_name(it.binding.name.as_str(), it.binding.span, false);
        walk::walk_assignment_target_property_identifier(self, it);
    }

    fn visit_assignment_target_property_property(&mut self, it: &AssignmentTargetPropertyProperty<'a>) {
        self.check_property_key(&it.name);
        walk::walk_assignment_target_property_property(self, it);
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        let message = "dynamic `import()` is not allowed: the sandbox has no modules".into();
        self.report(rules::NO_IMPORT, it.span, message);
        walk::walk_import_expression(self, it);
    }

    fn visit_import_meta(&mut self, it: &ImportMeta) {
        let message = "`import.meta` is not allowed: the sandbox has no modules".into();
        self.report(rules::NO_IMPORT, it.span, message);
    }

    fn visit_module_declaration(&mut self, it: &ModuleDeclaration<'a>) {
        let message = "`import`/`export` declarations are not allowed: the sandbox has no modules".into();
        self.report(rules::NO_IMPORT, it.span(), message);
        walk::walk_module_declaration(self, it);
    }

    fn visit_decorator(&mut self, it: &Decorator<'a>) {
        let message = "decorators are not supported by the sandbox's JavaScript engine".into();
        self.report(rules::UNSUPPORTED_SYNTAX, it.span, message);
        walk::walk_decorator(self, it);
    }

    fn visit_with_statement(&mut self, it: &WithStatement<'a>) {
        let v = with_violation(it.span);
        self.report(v.rule, it.span, v.message);
        walk::walk_with_statement(self, it);
    }

    // `this` scoping: non-arrow functions, class field initialisers and static blocks get their
    // own `this`; computed keys, decorators and `extends` keep the outer one.
    fn visit_function(&mut self, it: &Function<'a>, flags: ScopeFlags) {
        self.this_depth += 1;
        walk::walk_function(self, it, flags);
        self.this_depth -= 1;
    }

    fn visit_property_definition(&mut self, it: &PropertyDefinition<'a>) {
        self.visit_decorators(&it.decorators);
        self.visit_property_key(&it.key);
        if let Some(value) = &it.value {
            self.this_depth += 1;
            self.visit_expression(value);
            self.this_depth -= 1;
        }
    }

    fn visit_accessor_property(&mut self, it: &AccessorProperty<'a>) {
        self.visit_decorators(&it.decorators);
        self.visit_property_key(&it.key);
        if let Some(value) = &it.value {
            self.this_depth += 1;
            self.visit_expression(value);
            self.this_depth -= 1;
        }
    }

    fn visit_static_block(&mut self, it: &StaticBlock<'a>) {
        self.this_depth += 1;
        walk::walk_static_block(self, it);
        self.this_depth -= 1;
    }
}
