//! Expressions the frontend asks for (the Evaluate box, hovers, property reads of the
//! variables panel), run on their own engine with a time budget.

use super::Shared;
use rhai::{Dynamic, Engine, Scope};

/// How long an expression the frontend asks for may run: it runs on the control thread or
/// on a stopped thread, and must not hang either.
const EVALUATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

thread_local! {
    /// When the expression running on this thread must stop.
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// The engine of expressions and property reads: the session's natives, without the
/// debugger's callback, and ended by its time budget instead of the kernel's interrupt
/// (which may still be pending from the cell it interrupted).
pub(super) fn evaluation_engine() -> Engine {
    let mut engine = crate::interpreter::engine::new_engine();
    engine.on_progress(|ops| {
        crate::runtime::gil::on_operation(ops);
        let late = DEADLINE.with(|d| d.get().is_some_and(|end| std::time::Instant::now() > end));
        late.then(|| Dynamic::from(format!("stopped after {} s", EVALUATION_BUDGET.as_secs())))
    });
    engine
}

/// A scope's variables, oldest first, the newest of each name only.
pub(super) fn scope_entries(scope: &Scope) -> Vec<(String, Dynamic)> {
    let mut seen = std::collections::HashSet::new();
    let mut entries: Vec<(String, Dynamic)> = scope
        .iter_raw()
        .filter(|(name, ..)| seen.insert(name.to_string()))
        .map(|(name, _, value)| (name.to_string(), value.flatten_clone()))
        .collect();
    entries.reverse();
    entries
}

/// A scope of copies of `entries`, for expressions that must not change the originals.
pub(super) fn scope_of(entries: Vec<(String, Dynamic)>) -> Scope<'static> {
    let mut scope = Scope::new();
    for (name, value) in entries {
        scope.push_dynamic(name, value);
    }
    scope
}

impl Shared {
    /// Evaluates with the plain engine and the functions of all cells, in `scope`.
    pub(super) fn evaluate_detached(
        &self,
        expression: &str,
        scope: &mut Scope,
    ) -> Result<Dynamic, String> {
        let functions = self.state().functions.clone();
        let ast = self
            .plain()
            .compile_with_scope(scope, expression)
            .map_err(|e| e.to_string())?;
        let program = match functions {
            Some(functions) => functions.merge(&ast),
            None => ast,
        };
        DEADLINE.with(|d| d.set(Some(std::time::Instant::now() + EVALUATION_BUDGET)));
        let result = self.plain().eval_ast_with_scope::<Dynamic>(scope, &program);
        DEADLINE.with(|d| d.set(None));
        result.map_err(|e| e.to_string())
    }
}
