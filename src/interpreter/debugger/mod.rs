//! The debugger behind the Jupyter debug protocol: breakpoints by cell path, script threads
//! that stop in Rhai's debugger callback and wait there for the frontend, and what a stopped
//! thread shows (frames, scopes, variables).
//!
//! The kernel's control thread asks and resumes through [`Debugger`]; script threads (the
//! cell's and those of `spawn_thread` and thread pools) stop in [`hook`]. Only the engine
//! used while the debugger is started has the callback: with the debugger off, scripts run
//! on the usual engine at full speed.

pub mod cells;
mod evaluate;
mod frames;
mod hook;
mod stop;
mod types;
mod variables;

pub use types::{Event, Frame, Info, Placed, Resume, ScopeView, StopReason, CELL_THREAD};
pub use variables::VariableView;

use evaluate::{evaluation_engine, scope_entries, scope_of};
use rhai::{Dynamic, Engine, Scope, AST};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// The session's variables, shared with the debugger.
pub type SharedScope = Arc<Mutex<Scope<'static>>>;

/// The debugger of one kernel. Cloning shares it.
#[derive(Clone)]
pub struct Debugger {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// Started by the frontend (`initialize` … `disconnect`): the session then runs cells,
    /// and script threads start, on the debugging engine.
    active: AtomicBool,
    /// Bumped whenever the breakpoints change.
    breakpoints_version: AtomicU64,
    /// Some thread was asked to pause.
    pause_pending: AtomicBool,
    state: Mutex<State>,
    /// Stopped threads wait here for a command.
    commands: Condvar,
    events: Mutex<Option<EventSink>>,
    /// The session's variables, locked while a cell runs (`inspectVariables` reads them
    /// between cells).
    scope: Mutex<Option<SharedScope>>,
    seed: u32,
    prefix: String,
    /// An engine like the session's, without the callback, for expressions evaluated while
    /// stopped and for the values of runtime objects' properties.
    plain: OnceLock<Engine>,
}

/// Lines with a breakpoint, by path. Replaced as a whole when it changes: each script
/// thread keeps the one it read.
pub(crate) type Breakpoints = HashMap<String, BTreeSet<usize>>;

#[derive(Default)]
struct State {
    breakpoints: Arc<Breakpoints>,
    /// Code by path: cells dumped by the frontend and cells run while debugging.
    sources: HashMap<String, String>,
    /// The path of each cell the session keeps, by the name it ran under (`In[3]`).
    cell_paths: HashMap<String, String>,
    /// The path of the cell that defined each script function (from the session's
    /// origins of functions, which go back to before the debugger started).
    function_paths: HashMap<String, String>,
    /// Functions of all cells so far, for expressions evaluated while stopped.
    functions: Option<Arc<AST>>,
    /// The session's variables when the running cell started (the globals of frames in
    /// functions and threads).
    globals: Vec<(String, Dynamic)>,
    stopped: BTreeMap<i64, Stopped>,
    /// The thread of the last `stopped` event: the one the frontend shows.
    shown: Option<i64>,
    /// Threads asked to pause at their next line (`pause`).
    pause: BTreeSet<i64>,
    /// Names of the threads running on the debugging engine, by id.
    threads: BTreeMap<i64, String>,
    next_reference: i64,
    /// Frame ids of stopped threads: (thread, index from the newest).
    frames: HashMap<i64, (i64, usize)>,
    /// Containers `variables` lists, by reference.
    containers: HashMap<i64, variables::Container>,
    exception_filters: Vec<String>,
}

/// A thread waiting in the callback.
struct Stopped {
    reason: StopReason,
    description: String,
    frames: Vec<frames::FrameData>,
    frame_ids: Vec<i64>,
    command: Option<Command>,
}

/// What the control thread hands a stopped thread.
pub(crate) enum Command {
    Resume(Resume),
    Evaluate {
        frame: usize,
        expression: String,
        reply: crossbeam_channel::Sender<Result<Dynamic, String>>,
    },
}

impl State {
    fn reference(&mut self) -> i64 {
        self.next_reference += 1;
        self.next_reference
    }
}

impl Default for Debugger {
    fn default() -> Self {
        Self::new()
    }
}

impl Debugger {
    pub fn new() -> Self {
        let pid = std::process::id();
        let prefix = std::env::temp_dir()
            .join(format!("rhai-kernel-{pid}"))
            .to_string_lossy()
            .into_owned()
            + "/";
        Debugger {
            shared: Arc::new(Shared {
                active: AtomicBool::new(false),
                breakpoints_version: AtomicU64::new(0),
                pause_pending: AtomicBool::new(false),
                state: Mutex::new(State::default()),
                commands: Condvar::new(),
                events: Mutex::new(None),
                scope: Mutex::new(None),
                // Any fixed seed works: the frontend takes it from `debugInfo`.
                seed: 3_339_675_911,
                prefix,
                plain: OnceLock::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Where events go (the kernel's IOPub).
    pub fn on_event(&self, sink: impl Fn(Event) + Send + Sync + 'static) {
        *self.shared.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(sink));
    }

    pub fn is_started(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// `initialize` / `attach`: cells and threads started from now on run on the debugging
    /// engine.
    pub fn start(&self) {
        self.shared.active.store(true, Ordering::Release);
    }

    /// `disconnect`: breakpoints are cleared and every stopped thread runs on.
    pub fn stop(&self) {
        self.shared.active.store(false, Ordering::Release);
        let resumed: Vec<i64> = {
            let mut state = self.state();
            state.breakpoints = Arc::default();
            self.shared
                .breakpoints_version
                .fetch_add(1, Ordering::AcqRel);
            state.pause.clear();
            state.exception_filters.clear();
            let ids: Vec<i64> = state.stopped.keys().copied().collect();
            for stopped in state.stopped.values_mut() {
                stopped.command = Some(Command::Resume(Resume::Continue));
            }
            ids
        };
        self.shared.commands.notify_all();
        for thread in resumed {
            self.shared.emit(Event::Continued { thread });
        }
    }

    pub fn info(&self) -> Info {
        let state = self.state();
        let mut breakpoints: Vec<(String, Vec<usize>)> = state
            .breakpoints
            .iter()
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(path, lines)| (path.clone(), lines.iter().copied().collect()))
            .collect();
        breakpoints.sort();
        Info {
            started: self.is_started(),
            seed: self.shared.seed,
            prefix: self.shared.prefix.clone(),
            breakpoints,
            stopped_threads: state.stopped.keys().copied().collect(),
            exception_filters: state.exception_filters.clone(),
        }
    }

    /// The path the frontend knows `code` by (`dumpCell`); the code is kept for `source`.
    pub fn dump_cell(&self, code: &str) -> String {
        self.shared.remember(&mut self.state(), code)
    }

    /// The code behind a path, if it is a cell this kernel has seen.
    pub fn source(&self, path: &str) -> Option<String> {
        self.state().sources.get(path).cloned()
    }

    /// Replaces the breakpoints of one cell; each moves to the next line with code.
    pub fn set_breakpoints(&self, path: &str, lines: &[usize]) -> Vec<Placed> {
        let code = self.source(path);
        let code_lines = code
            .as_deref()
            .and_then(|code| cells::code_lines(self.shared.plain(), code));
        let placed: Vec<Placed> = lines
            .iter()
            .map(|&requested| Placed {
                requested,
                line: match &code_lines {
                    Some(code_lines) => cells::placed_line(code_lines, requested),
                    // Code not seen yet (a file, or a cell not dumped): kept as asked.
                    None => Some(requested),
                },
            })
            .collect();
        let set: BTreeSet<usize> = placed.iter().filter_map(|p| p.line).collect();
        {
            let mut state = self.state();
            let mut breakpoints = (*state.breakpoints).clone();
            breakpoints.insert(path.to_string(), set);
            state.breakpoints = Arc::new(breakpoints);
            self.shared
                .breakpoints_version
                .fetch_add(1, Ordering::AcqRel);
        }
        placed
    }

    pub fn set_exception_filters(&self, filters: Vec<String>) {
        self.state().exception_filters = filters;
    }

    /// The threads running on the debugging engine, and the cell's thread.
    pub fn threads(&self) -> Vec<(i64, String)> {
        let state = self.state();
        let mut threads = vec![(CELL_THREAD, "MainThread".to_string())];
        threads.extend(
            state
                .threads
                .iter()
                .filter(|(id, _)| **id != CELL_THREAD)
                .map(|(id, name)| (*id, name.clone())),
        );
        threads
    }

    /// The frames of a stopped thread, newest first.
    pub fn stack_trace(&self, thread: i64) -> Option<Vec<Frame>> {
        let state = self.state();
        let stopped = state.stopped.get(&thread)?;
        Some(
            stopped
                .frames
                .iter()
                .zip(&stopped.frame_ids)
                .map(|(frame, id)| Frame {
                    id: *id,
                    name: frame.name.clone(),
                    path: frame.path.clone(),
                    line: frame.line,
                    column: frame.column,
                })
                .collect(),
        )
    }

    /// The scopes of a frame: its locals, and the session's variables.
    pub fn scopes(&self, frame_id: i64) -> Option<Vec<ScopeView>> {
        let mut state = self.state();
        let (thread, index) = *state.frames.get(&frame_id)?;
        let frame = state.stopped.get(&thread)?.frames.get(index)?.clone();
        let scopes = [("Locals", Some(frame.locals)), ("Globals", frame.globals)];
        let views = scopes
            .into_iter()
            .filter_map(|(name, entries)| {
                let entries = entries?;
                let reference = state.reference();
                let count = entries.len();
                state
                    .containers
                    .insert(reference, variables::Container::scope(thread, entries));
                Some(ScopeView {
                    name,
                    reference,
                    count,
                })
            })
            .collect();
        Some(views)
    }

    /// The variables inside a reference (a scope, an array, a map, a runtime object).
    pub fn variables(&self, reference: i64) -> Option<Vec<VariableView>> {
        let mut state = self.state();
        let container = state.containers.get(&reference)?.clone();
        let children = container.children(self.shared.plain());
        Some(
            children
                .into_iter()
                .map(|(name, value)| {
                    variables::view(
                        &mut state,
                        self.shared.plain(),
                        container.thread,
                        name,
                        value,
                    )
                })
                .collect(),
        )
    }

    /// Lets a stopped thread go on; returns the thread resumed.
    ///
    /// A request for a thread that is not stopped goes to the thread the frontend shows:
    /// JupyterLab forgets the shown thread before it sends `continue`, and then asks for
    /// its default thread instead. An error when no thread is stopped.
    pub fn resume(&self, thread: i64, how: Resume) -> Result<i64, String> {
        let resumed = {
            let mut state = self.state();
            let target = if state.stopped.contains_key(&thread) {
                Some(thread)
            } else {
                state
                    .shown
                    .filter(|shown| state.stopped.contains_key(shown))
                    .or_else(|| state.stopped.keys().next_back().copied())
            };
            let target = target.ok_or_else(|| format!("thread {thread} is not stopped"))?;
            if let Some(stopped) = state.stopped.get_mut(&target) {
                stopped.command = Some(Command::Resume(how));
            }
            target
        };
        self.shared.commands.notify_all();
        Ok(resumed)
    }

    /// Stops a running thread at its next line.
    pub fn pause(&self, thread: i64) {
        self.state().pause.insert(thread);
        self.shared.pause_pending.store(true, Ordering::Release);
    }

    /// Evaluates an expression in a stopped thread's frame (on that thread, where its
    /// variables are), or, with no frame, with the session's variables of the last cell.
    pub fn evaluate(&self, frame_id: Option<i64>, expression: &str) -> Result<Dynamic, String> {
        let target = frame_id.and_then(|id| self.state().frames.get(&id).copied());
        let Some((thread, index)) = target else {
            // On copies of the session's variables: a cell may be running meanwhile.
            let mut scope = scope_of(self.session_variables());
            return self.shared.evaluate_detached(expression, &mut scope);
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        {
            let mut state = self.state();
            let stopped = state
                .stopped
                .get_mut(&thread)
                .ok_or_else(|| format!("thread {thread} is not stopped"))?;
            if stopped.command.is_some() {
                return Err(format!("thread {thread} is resuming"));
            }
            stopped.command = Some(Command::Evaluate {
                frame: index,
                expression: expression.to_string(),
                reply,
            });
        }
        self.shared.commands.notify_all();
        answer
            .recv()
            .map_err(|_| "the thread resumed before it evaluated".to_string())?
    }

    /// A view of a value for the protocol (with a reference when it has children).
    pub fn view(&self, name: String, value: Dynamic) -> VariableView {
        let mut state = self.state();
        variables::view(&mut state, self.shared.plain(), 0, name, value)
    }

    /// The session's variables: as they are between cells, as they were when the running
    /// cell started.
    fn session_variables(&self) -> Vec<(String, Dynamic)> {
        let scope = self
            .shared
            .scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let current = scope
            .as_ref()
            .and_then(|s| s.try_lock().ok().map(|scope| scope_entries(&scope)));
        current.unwrap_or_else(|| self.state().globals.clone())
    }

    /// The session's variables as views (`inspectVariables`).
    pub fn inspect(&self) -> Vec<VariableView> {
        let entries = self.session_variables();
        let mut state = self.state();
        entries
            .into_iter()
            .map(|(name, value)| variables::view(&mut state, self.shared.plain(), 0, name, value))
            .collect()
    }

    /// A variable of the session, by name (`richInspectVariables` outside a frame).
    pub fn global(&self, name: &str) -> Option<Dynamic> {
        self.session_variables()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A variable of a stopped thread's frame, by name.
    pub fn frame_variable(&self, frame_id: i64, name: &str) -> Option<Dynamic> {
        let state = self.state();
        let (thread, index) = *state.frames.get(&frame_id)?;
        let frame = state.stopped.get(&thread)?.frames.get(index)?;
        frame
            .locals
            .iter()
            .chain(frame.globals.iter().flatten())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    // ---- The session's side -------------------------------------------------------------

    /// The session's variables, for `inspectVariables` between cells.
    pub fn share_scope(&self, scope: SharedScope) {
        *self.shared.scope.lock().unwrap_or_else(|e| e.into_inner()) = Some(scope);
    }

    /// A cell is about to run (with the debugger started). `sources` are the cells the
    /// session keeps (those defining functions, and this one) by name, `origins` the cell
    /// each function was last defined in: the lines of each map to that cell's path, also
    /// for cells run before the debugger started. The session's variables as they are now
    /// are the globals of frames in functions and threads.
    pub fn cell_started(
        &self,
        sources: &[(String, Arc<str>)],
        origins: &HashMap<String, String>,
        scope: &Scope,
    ) {
        let globals = scope_entries(scope);
        let mut state = self.state();
        for (name, code) in sources {
            let path = self.shared.remember(&mut state, code);
            state.cell_paths.insert(name.clone(), path);
        }
        let function_paths = origins
            .iter()
            .filter_map(|(function, cell)| {
                let path = state.cell_paths.get(cell)?;
                Some((function.clone(), path.clone()))
            })
            .collect();
        state.function_paths = function_paths;
        state.globals = globals;
    }

    /// The cell ended on this thread: a step does not go on into the next cell.
    pub fn cell_finished(&self) {
        hook::reset_thread();
    }

    /// The functions of all cells so far, for expressions evaluated while stopped.
    pub fn set_functions(&self, functions: &AST) {
        self.state().functions = Some(Arc::new(functions.clone_functions_only()));
    }

    /// An engine like `engine_factory()`'s with the debugger's callback.
    pub fn debugging_engine(&self, mut engine: Engine) -> Engine {
        hook::install(&mut engine, self.shared.clone());
        engine
    }
}

impl Shared {
    /// Keeps `code` for `source` requests under the path the frontend knows it by, and
    /// returns that path.
    fn remember(&self, state: &mut State, code: &str) -> String {
        let path = cells::cell_path(&self.prefix, self.seed, code);
        state.sources.insert(path.clone(), code.to_string());
        path
    }

    /// Made when first needed: a kernel whose debugger is never used pays nothing for it.
    fn plain(&self) -> &Engine {
        self.plain.get_or_init(evaluation_engine)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: Event) {
        if let Event::Stopped { thread, .. } = &event {
            self.state().shown = Some(*thread);
        }
        let sink = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }
}
