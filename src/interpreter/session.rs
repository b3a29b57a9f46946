//! A persistent Rhai session: variables, constants and functions survive from cell to cell.

use super::debugger::{Debugger, SharedScope};
use super::errors::{render_traceback, ScriptError};
use super::{completeness, completion, engine, inspection, magics};
use super::{Completeness, Completion, Interpreter, LanguageInfo};
use crate::runtime::display::mime_bundle;
use crate::runtime::launch;
use crate::runtime::observe::names::Names;
use crate::runtime::sink::{self, MimeBundle};
use rhai::{Dynamic, Engine, Scope, AST};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

/// The state a notebook accumulates: one engine, one scope, and the functions of every
/// cell run so far (merged into one function library).
pub struct RhaiSession {
    engine: Engine,
    /// Shared with the debugger, which reads it between cells.
    scope: SharedScope,
    debugger: Debugger,
    /// The engine with the debugger's callback, made when the debugger first starts; script
    /// threads share it.
    debugging_engine: Option<Arc<Engine>>,
    functions: AST,
    /// Which cell (source name) each script function was last defined in.
    function_origins: HashMap<String, String>,
    /// Source text of cells that define functions, plus the latest cell, in the order
    /// they ran (worker processes recompile them to get the same functions).
    sources: Vec<(String, Arc<str>)>,
    /// The evaluator of `%%rust` cells, started by the first one.
    #[cfg(feature = "rust")]
    rust: super::rust_cells::RustCells,
    /// The value of the `%%rust` cell that just ran, for `execute`.
    rust_result: Option<MimeBundle>,
    /// Name and code of the last `%%rust` cell, for its tracebacks.
    rust_source: Option<(String, String)>,
}

impl Default for RhaiSession {
    fn default() -> Self {
        Self::new()
    }
}

impl RhaiSession {
    pub fn new() -> Self {
        crate::runtime::engines::install_engine(engine::new_engine);
        let scope: SharedScope = Arc::new(Mutex::new(Scope::new()));
        let debugger = Debugger::new();
        debugger.share_scope(scope.clone());
        RhaiSession {
            engine: engine::new_engine(),
            scope,
            debugger,
            debugging_engine: None,
            functions: AST::empty(),
            function_origins: HashMap::new(),
            sources: Vec::new(),
            #[cfg(feature = "rust")]
            rust: super::rust_cells::RustCells::new(),
            rust_result: None,
            rust_source: None,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// For embedders that register extra natives.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The session's variables (locked while a cell runs).
    pub fn scope(&self) -> MutexGuard<'_, Scope<'static>> {
        self.scope.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn scope_mut(&mut self) -> MutexGuard<'_, Scope<'static>> {
        self.scope()
    }

    /// The session's debugger (the kernel's control thread drives it).
    pub fn debugger(&self) -> Debugger {
        self.debugger.clone()
    }

    /// The script functions defined so far.
    pub fn functions(&self) -> &AST {
        &self.functions
    }

    /// Source text of a cell or file by name, for tracebacks.
    pub fn source_text(&self, name: &str) -> Option<String> {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, code)| code.to_string())
            .or_else(|| {
                self.rust_source
                    .as_ref()
                    .filter(|(n, _)| n == name)
                    .map(|(_, code)| code.clone())
            })
    }

    /// How a value is shown as a result: a runtime object (an `Exploration`, a lock…) as
    /// its own `to_string` writes it, not by its Rust type's name.
    fn shown(&self, value: &Dynamic) -> MimeBundle {
        let mut bundle = mime_bundle(value);
        if let Some(text) = engine::object_text(&self.engine, value) {
            bundle.insert("text/plain".into(), serde_json::Value::String(text));
        }
        bundle
    }

    /// Runs code and returns the raw value of its last expression.
    pub fn run(&mut self, code: &str, source_name: &str) -> Result<Dynamic, ScriptError> {
        if let Some((magic, body)) = magics::split(code) {
            return match magic {
                "%%time" => magics::time(|| self.run(&body, source_name)),
                "%%timeline" => {
                    let (result, recording) =
                        crate::runtime::timeline::capture(|| self.run(&body, source_name));
                    recording.show();
                    result
                }
                "%%races" => {
                    let result = crate::runtime::races::capture(|| self.run(&body, source_name));
                    // The objects are named after the session's variables, as they are now.
                    let mut names = Names::default();
                    for (name, _, value) in self.scope().iter_raw() {
                        names.add(name, value);
                    }
                    result.show(&names)
                }
                "%%rust" => self.run_rust(&body, source_name).map(|_| Dynamic::UNIT),
                other => Err(ScriptError::other(
                    "UsageError",
                    format!(
                        "Cell magic `{other}` not found (available: {})",
                        magics::MAGICS.join(", ")
                    ),
                    source_name,
                )),
            };
        }
        if let Some(name) = inspection::help_query(code) {
            return self.page_help(name, source_name).map(|_| Dynamic::UNIT);
        }
        let compiled = self.engine.compile_with_scope(&self.scope(), code);
        let mut ast = compiled.map_err(|e| ScriptError::from_parse(&e, source_name))?;
        ast.set_source(source_name);
        self.forget_unused_sources();
        self.sources.retain(|(name, _)| name != source_name);
        self.sources
            .push((source_name.to_string(), Arc::from(code)));
        launch::set_function_sources(self.sources.iter().map(|(_, code)| code.clone()).collect());
        for f in ast.iter_functions() {
            self.function_origins
                .insert(f.name.to_string(), source_name.to_string());
        }
        // Earlier cells' functions first, so this cell's definitions replace them; then
        // the constants of earlier cells, so they are `global::` constants here too.
        let prelude = self.constants_prelude(&ast);
        let mut program = self.functions.merge(&prelude).merge(&ast);
        program.set_source(source_name);
        // Functions are hoisted in Rhai, so they exist even if the cell later fails.
        self.functions = program.clone_functions_only();

        let engine = self.engine_for();
        let engine: &Engine = match &engine {
            Some(debugging) => debugging,
            None => &self.engine,
        };
        let scope = &self.scope;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut scope = scope.lock().unwrap_or_else(|e| e.into_inner());
            engine.eval_ast_with_scope::<Dynamic>(&mut scope, &program)
        }));
        crate::runtime::sched::leaving();
        self.debugger.cell_finished();
        self.compact_scope();
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let origins = &self.function_origins;
                let mut error =
                    ScriptError::from_eval(&err, source_name, |f| origins.get(f).cloned());
                super::shared_vars::place_argument_race(&mut error, &ast, source_name);
                Err(error)
            }
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ScriptError::other(
                    "ErrorSystem",
                    format!("internal error in a native function: {detail}"),
                    source_name,
                ))
            }
        }
    }

    /// The engine a cell runs on: with the debugger started, the debugging engine (which
    /// script threads then start on too, and which learns the cell's path and functions);
    /// else `None`, the usual engine.
    fn engine_for(&mut self) -> Option<Arc<Engine>> {
        if !self.debugger.is_started() {
            crate::runtime::engines::set_traced_engine(None);
            return None;
        }
        let debugger = &self.debugger;
        let engine = self
            .debugging_engine
            .get_or_insert_with(|| Arc::new(debugger.debugging_engine(engine::new_engine())))
            .clone();
        crate::runtime::engines::set_traced_engine(Some(engine.clone()));
        self.debugger
            .cell_started(&self.sources, &self.function_origins, &self.scope());
        self.debugger.set_functions(&self.functions);
        Some(engine)
    }

    /// Runs a `%%rust` cell; its value is kept for `execute`.
    fn run_rust(&mut self, body: &str, source_name: &str) -> Result<(), ScriptError> {
        self.rust_source = Some((source_name.to_string(), body.to_string()));
        #[cfg(feature = "rust")]
        {
            self.rust_result = self.rust.execute(body, source_name, sink::current())?;
            Ok(())
        }
        #[cfg(not(feature = "rust"))]
        Err(ScriptError::other(
            "UsageError",
            magics::NO_RUST_CELLS,
            source_name,
        ))
    }

    fn page_help(&self, name: &str, source_name: &str) -> Result<(), ScriptError> {
        match inspection::describe(self, name) {
            Some(text) => {
                match sink::current() {
                    Some(sink) => sink.page(&text),
                    None => sink::write(sink::Stream::Stdout, &text),
                }
                Ok(())
            }
            None => Err(ScriptError::other(
                "ErrorVariableNotFound",
                format!("Object `{name}` not found."),
                source_name,
            )),
        }
    }

    /// Statements `const N = N;` for each constant of earlier cells. Rhai makes a
    /// top-level constant a `global::` constant (for functions, threads and processes)
    /// only while the script that declares it runs; re-declaring them with their values
    /// at the top of each cell makes a notebook behave as one script. A later cell's
    /// `const N` replaces the value, as a later declaration in a script does.
    fn constants_prelude(&self, cell: &AST) -> AST {
        // Without functions nothing can read `global::` (Rhai does not collect constants
        // then either), and re-declaring would only copy the values.
        if cell.iter_functions().next().is_none()
            && self.functions.iter_functions().next().is_none()
        {
            return AST::empty();
        }
        let mut seen = std::collections::HashSet::new();
        let mut names = Vec::new();
        // Newest entry first: a name whose newest entry is a `let` is not a constant.
        let scope = self.scope();
        for (name, constant, _) in scope.iter_raw() {
            if seen.insert(name) && constant && rhai::is_valid_identifier(name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return AST::empty();
        }
        let code: String = names
            .iter()
            .rev()
            .map(|name| format!("const {name} = {name};\n"))
            .collect();
        // Cannot fail for identifiers in scope; without it only `global::` is affected.
        self.engine
            .compile_with_scope(&scope, code)
            .unwrap_or_default()
    }

    /// Keeps only sources that define functions still in use (for tracebacks and for
    /// worker processes).
    fn forget_unused_sources(&mut self) {
        let origins = &self.function_origins;
        self.sources
            .retain(|(name, _)| origins.values().any(|o| o == name));
    }

    /// Each `let` pushes a new entry even when the name exists; drop shadowed entries so
    /// a long session's scope stays as large as the set of names.
    fn compact_scope(&mut self) {
        let mut scope = self.scope();
        let total = scope.len();
        let mut seen = std::collections::HashSet::new();
        let unique = scope
            .iter_raw()
            .filter(|(name, ..)| seen.insert(*name))
            .count();
        if unique == total {
            return;
        }
        let mut keep: Vec<(String, bool, Dynamic)> = Vec::with_capacity(unique);
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<(String, bool, Dynamic)> = scope
            .iter_raw()
            .map(|(name, constant, value)| (name.to_string(), constant, value.clone()))
            .collect();
        // `iter_raw` lists the newest entry first: keep the first of each name.
        for (name, constant, value) in entries {
            if seen.insert(name.clone()) {
                keep.push((name, constant, value));
            }
        }
        scope.clear();
        for (name, constant, value) in keep.into_iter().rev() {
            if constant {
                scope.push_constant_dynamic(name, value);
            } else {
                scope.push_dynamic(name, value);
            }
        }
    }
}

impl Interpreter for RhaiSession {
    fn execute(
        &mut self,
        code: &str,
        source_name: &str,
    ) -> Result<Option<MimeBundle>, ScriptError> {
        self.rust_result = None;
        let value = self.run(code, source_name)?;
        if let Some(bundle) = self.rust_result.take() {
            return Ok(Some(bundle));
        }
        Ok((!value.is_unit()).then(|| self.shown(&value)))
    }

    fn evaluate(&mut self, expression: &str) -> Result<MimeBundle, ScriptError> {
        let source = "<expression>";
        let compiled = self
            .engine
            .compile_expression_with_scope(&self.scope(), expression);
        let ast = compiled.map_err(|e| ScriptError::from_parse(&e, source))?;
        let program = self.functions.merge(&ast);
        let outcome = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope(), &program);
        crate::runtime::sched::leaving();
        outcome
            .map(|v| self.shown(&v))
            .map_err(|e| ScriptError::from_eval(&e, source, |_| None))
    }

    fn complete(&self, code: &str, cursor: usize) -> Completion {
        #[cfg(feature = "rust")]
        if matches!(magics::split(code), Some(("%%rust", _))) {
            if let Some(completion) = self.rust.complete(code, cursor) {
                return completion;
            }
        }
        completion::complete(self, code, cursor)
    }

    fn inspect(&self, code: &str, cursor: usize, detail_level: u8) -> Option<String> {
        inspection::inspect(self, code, cursor, detail_level)
    }

    fn is_complete(&self, code: &str) -> Completeness {
        completeness::check(&self.engine, code)
    }

    fn language_info(&self) -> LanguageInfo {
        LanguageInfo {
            name: "rhai",
            version: rhai_version(),
            mimetype: "text/x-rhai",
            file_extension: ".rhai",
            pygments_lexer: "rust",
            codemirror_mode: "rust",
        }
    }

    fn traceback(&self, error: &ScriptError, colour: bool) -> Vec<String> {
        render_traceback(error, |name| self.source_text(name), colour)
    }
}

/// The version of the embedded Rhai crate, taken from the lock file at build time.
pub fn rhai_version() -> String {
    option_env!("RHAI_VERSION").unwrap_or("1").to_string()
}
