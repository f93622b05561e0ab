//! Compile in one runtime, run in another. The isolate's context is created WITHOUT QuickJS's eval
//! intrinsic, so `eval`, `Function(...)` and every function kind's constructor fail inside QuickJS itself
//! ("eval is not supported"), whatever the guest does. A context without eval cannot compile source
//! either, so scripts are compiled to bytecode in a separate, per-thread compiler runtime that never runs
//! any code, and the bytecode is loaded into the isolate.

use std::cell::RefCell;

use rquickjs::{Context, Ctx, Runtime, Value, context::intrinsic, qjs};

/// A script failed to compile (QuickJS-side; oxc has usually caught syntax errors before).
#[derive(Debug, Clone)]
pub(crate) struct CompileError {
    pub(crate) name: String,
    pub(crate) message: String,
}

struct Compiler {
    // Field order matters: the context must drop before its runtime.
    ctx: Context,
    _rt: Runtime,
    compiled: u32,
}

/// Recycle the compiler now and then so atoms and caches it accumulated are released.
const RECYCLE_AFTER: u32 = 10_000;

thread_local! {
    static COMPILER: RefCell<Option<Compiler>> = const { RefCell::new(None) };
}

fn new_compiler() -> Result<Compiler, CompileError> {
    let internal = |e: rquickjs::Error| CompileError { name: "InternalError".into(), message: e.to_string() };
    let rt = Runtime::new().map_err(internal)?;
    // Code is capped at a few MiB by the limits; these bound what compiling it may take.
    rt.set_memory_limit(512 * 1024 * 1024);
    rt.set_max_stack_size(8 * 1024 * 1024);
    let ctx = Context::custom::<(intrinsic::Eval, intrinsic::RegExpCompiler)>(&rt).map_err(internal)?;
    Ok(Compiler { ctx, _rt: rt, compiled: 0 })
}

/// Compile a strict global script to QuickJS bytecode. `filename` is what stack traces will show.
pub(crate) fn compile(source: &str, filename: &str) -> Result<Vec<u8>, CompileError> {
    COMPILER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.compiled >= RECYCLE_AFTER) {
            *slot = None;
            *slot = Some(new_compiler()?);
        }
        let Some(compiler) = slot.as_mut() else {
            return Err(CompileError { name: "InternalError".into(), message: "no compiler".into() });
        };
        compiler.compiled += 1;
        compiler.ctx.with(|ctx| compile_in(&ctx, source, filename))
    })
}

/// Compile untrusted code in `rt`, the execution's own runtime, so that compiling is metered by its
/// allocator (the memory limit, and the CPU and wall-time limits checked on allocation) like running is.
/// A short-lived context with the eval intrinsic does the compiling and is dropped before any code runs.
pub(crate) fn compile_in_runtime(
    rt: &Runtime,
    source: &str,
    filename: &str,
) -> Result<Vec<u8>, CompileError> {
    let internal = |e: rquickjs::Error| CompileError { name: "InternalError".into(), message: e.to_string() };
    let ctx = Context::custom::<(intrinsic::Eval, intrinsic::RegExpCompiler)>(rt).map_err(internal)?;
    ctx.with(|ctx| compile_in(&ctx, source, filename))
}

fn compile_in(ctx: &Ctx<'_>, source: &str, filename: &str) -> Result<Vec<u8>, CompileError> {
    // QuickJS wants NUL-terminated input; `len` excludes the terminator, so interior NULs are data.
    let mut input = Vec::with_capacity(source.len() + 1);
    input.extend_from_slice(source.as_bytes());
    input.push(0);
    let mut name = filename.as_bytes().to_vec();
    name.retain(|b| *b != 0);
    name.push(0);
    let raw = ctx.as_raw().as_ptr();
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_STRICT | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // SAFETY: `input` and `name` are NUL-terminated and outlive the call; `raw` is the live context we are
    // inside of (`ctx.with`). The returned value is owned by us and freed below on every path.
    let compiled =
        unsafe { qjs::JS_Eval(raw, input.as_ptr().cast(), source.len() as _, name.as_ptr().cast(), flags) };
    // SAFETY: inspecting a value we own.
    if unsafe { qjs::JS_IsException(compiled) } {
        let err = ctx.catch();
        return Err(describe(&err));
    }
    let mut len: qjs::size_t = 0;
    // SAFETY: `compiled` is a live function-bytecode value; JS_WriteObject allocates the buffer with the
    // context's allocator, which we copy out of and free with js_free.
    let bytes = unsafe {
        let buf = qjs::JS_WriteObject(raw, &mut len, compiled, qjs::JS_WRITE_OBJ_BYTECODE as i32);
        qjs::JS_FreeValue(raw, compiled);
        if buf.is_null() {
            ctx.catch();
            return Err(CompileError {
                name: "InternalError".into(),
                message: "cannot serialise bytecode".into(),
            });
        }
        let out = std::slice::from_raw_parts(buf, len as usize).to_vec();
        qjs::js_free(raw, buf.cast());
        out
    };
    Ok(bytes)
}

fn describe(err: &Value<'_>) -> CompileError {
    let get = |key: &str| {
        err.as_object()
            .and_then(|o| o.get::<_, rquickjs::Coerced<String>>(key).ok())
            .map(|c| c.0)
            .unwrap_or_default()
    };
    let name = get("name");
    let message = get("message");
    if name.is_empty() && message.is_empty() {
        CompileError { name: "SyntaxError".into(), message: "the code could not be compiled".into() }
    } else {
        CompileError { name, message }
    }
}

/// Load bytecode into `ctx` and evaluate it, returning its completion value.
pub(crate) fn load<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Value<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: the buffer outlives the call; JS_ReadObject copies what it needs. Only bytecode we produced
    // ourselves with JS_WriteObject reaches here (never guest-supplied bytes).
    let function = unsafe {
        qjs::JS_ReadObject(
            raw,
            bytecode.as_ptr(),
            bytecode.len() as qjs::size_t,
            qjs::JS_READ_OBJ_BYTECODE as i32,
        )
    };
    // SAFETY: inspecting a value we own.
    if unsafe { qjs::JS_IsException(function) } {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: JS_EvalFunction takes ownership of `function`; the result is owned by the returned Value.
    let result = unsafe { qjs::JS_EvalFunction(raw, function) };
    // SAFETY: inspecting a value we own.
    if unsafe { qjs::JS_IsException(result) } {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: `result` is a live, owned value of this context.
    Ok(unsafe { Value::from_raw(ctx.clone(), result) })
}
