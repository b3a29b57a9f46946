//! The engines script threads run on: the session's (installed once), or while the
//! debugger is on, the session's engine with the debugger, so that breakpoints stop
//! threads too.

use rhai::{Engine, EvalAltResult, NativeCallContext};
use std::sync::{Arc, OnceLock, RwLock};

static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();

/// Provides the engine that script threads run on (configured like the session's; the
/// first call wins).
pub fn install_engine(factory: impl FnOnce() -> Engine) {
    ENGINE.get_or_init(|| Arc::new(factory()));
}

/// While set, script threads start on this engine instead: the session's engine with a
/// debugger, so that breakpoints stop threads too.
static TRACED_ENGINE: RwLock<Option<Arc<Engine>>> = RwLock::new(None);

/// Sets (or, with `None`, clears) the engine script threads start on while debugging.
pub fn set_traced_engine(engine: Option<Arc<Engine>>) {
    *TRACED_ENGINE.write().unwrap_or_else(|e| e.into_inner()) = engine;
}

/// The name a script knows a value's type by (`Thread`, not the Rust type's path).
pub fn script_type_name(value: &rhai::Dynamic) -> String {
    script_engine()
        .map(|engine| engine.map_type_name(value.type_name()).to_string())
        .unwrap_or_else(|_| value.type_name().to_string())
}

pub fn script_engine() -> Result<Arc<Engine>, Box<EvalAltResult>> {
    if let Some(engine) = TRACED_ENGINE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return Ok(engine.clone());
    }
    ENGINE
        .get()
        .cloned()
        .ok_or_else(|| "script threads are not available in this host".into())
}

/// The engine a thread started by `ctx`'s caller runs on. The traced engine only for a
/// caller that runs on it: Rhai's script calls on an engine with a debugger expect one in
/// the caller's global state, which a caller on another engine (the debugger's `evaluate`,
/// or a thread started before debugging began) does not have, and Rhai panicked.
pub(crate) fn engine_for(ctx: &NativeCallContext) -> Result<Arc<Engine>, Box<EvalAltResult>> {
    let traced = TRACED_ENGINE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match traced {
        Some(engine) if !std::ptr::eq(ctx.engine(), Arc::as_ptr(&engine)) => ENGINE
            .get()
            .cloned()
            .ok_or_else(|| "script threads are not available in this host".into()),
        _ => script_engine(),
    }
}
