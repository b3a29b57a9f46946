//! The race detector: `check_races(f)` runs `f` for real, in parallel, and follows which
//! operations happen before which (vector clocks; edges from spawn and join, lock,
//! semaphore, event, condition, barrier, queue and pipe operations, `add`, and pool tasks)
//! across threads and processes. Two accesses to a shared value or array element, at
//! least one a write, that nothing orders are a data race, reported once per pair of
//! places with how often it happened. `%%races` runs a cell under it, and `explore` runs
//! it on every schedule.

mod clock;
mod report;
mod table;

use crate::runtime::actors::current_thread_name;
use crate::runtime::display::show_rich;
use crate::runtime::launch;
use crate::runtime::observe::names::Names;
use crate::runtime::sched::{self, Detail, Object, Observer, Observing, Op};
use crate::runtime::shm::arena;
use crate::runtime::sink::{self, Stream};
pub use report::Counted;
use rhai::plugin::*;
use rhai::{Array, FnPtr, Map};
use std::sync::Arc;
use table::Table;
pub use table::{Lost, Race};

/// What a worker is called in reports: as `thread_name()` says, and a thread inside a
/// process names its process too (`Thread-1 in Process-2 (work)`).
fn worker_name() -> String {
    match (launch::process_label(), current_thread_name()) {
        (Some(process), Some(thread)) => format!("{thread} in {process}"),
        _ => crate::runtime::actors::worker_name(),
    }
}

/// The observer every process of a check installs: all its state is in the table.
struct Detector(&'static Table);

impl Observer for Detector {
    fn before(&self, op: &Op) {
        self.0.before(op, worker_name);
    }

    fn after(&self, op: &Op, _detail: Detail) {
        self.0.after(op, worker_name);
    }

    fn hand_over(&self, object: Object) {
        self.0.hand_over(&object, worker_name);
    }

    fn take_over(&self, object: Object) {
        self.0.take_over(&object, worker_name);
    }

    fn begin(&self, object: Object, name: &str) {
        self.0.begin(Some(&object), name);
    }
}

/// A check in progress in the process that started it; dropping it ends the check.
pub struct Check {
    table: &'static Table,
    _observing: Observing,
}

impl Check {
    /// Starts a check with the calling thread as its first worker.
    pub fn start() -> Result<Check, Box<EvalAltResult>> {
        let table = Table::get()?;
        table.start_check()?;
        let check = Check {
            table,
            _observing: sched::observe(Arc::new(Detector(table))),
        };
        table.begin(None, &worker_name());
        Ok(check)
    }

    /// Starts the next run of the check (another explored schedule), the calling thread
    /// again its first worker.
    pub fn next_run(&self) {
        self.table.next_run();
        self.table.begin(None, &worker_name());
    }

    /// The races found so far.
    pub fn races(&self) -> (Vec<Race>, Lost) {
        self.table.races()
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        self.table.stop();
    }
}

/// In a worker process: follows its operations while a check is on (until the guard is
/// dropped); `None` when no check is on.
pub fn attach_worker() -> Option<Observing> {
    let table = Table::if_active(arena().ok()?)?;
    Some(sched::observe(Arc::new(Detector(table))))
}

/// Shows races as ThreadSanitizer-like reports (HTML in a notebook, text elsewhere).
/// `counted` says what each race's count counts.
pub fn show(races: &[Race], lost: &Lost, counted: Counted) {
    show_rich(
        "text/html",
        report::html(races, lost, counted),
        report::text(races, lost, counted),
    );
}

/// Races as scripts see them: an array of `#{object, first, second, count}`.
pub fn to_array(races: &[Race]) -> Array {
    races.iter().map(report::to_map).collect()
}

/// Names every race after the variables in `names`.
fn name_all(races: &mut [Race], names: &Names) {
    races.iter_mut().for_each(|r| r.name_by(names));
}

/// What a cell run under the detector (`%%races`) gave: its value, and the races.
pub struct Captured<R> {
    value: R,
    races: Result<(Vec<Race>, Lost), String>,
}

impl<R> Captured<R> {
    /// Shows the races (or why the detector could not run), naming objects by `names`;
    /// gives the cell's value.
    pub fn show(mut self, names: &Names) -> R {
        match &mut self.races {
            Ok((races, lost)) => {
                name_all(races, names);
                show(races, lost, Counted::Times);
            }
            Err(e) => sink::write(Stream::Stderr, &format!("%%races: {e}\n")),
        }
        self.value
    }
}

/// Runs `work` (a cell, for `%%races`) under the race detector.
pub fn capture<R>(work: impl FnOnce() -> R) -> Captured<R> {
    let check = match Check::start() {
        Ok(check) => check,
        Err(e) => {
            return Captured {
                value: work(),
                races: Err(e.to_string()),
            }
        }
    };
    let value = work();
    let races = Ok(check.races());
    Captured { value, races }
}

fn check_with(
    ctx: &NativeCallContext,
    f: &FnPtr,
    show_races: bool,
) -> Result<Array, Box<EvalAltResult>> {
    if sched::controller().is_some() {
        return Err(
            "check_races cannot run inside an exploration (explore checks every \
                    schedule for races itself)"
                .into(),
        );
    }
    let check = Check::start()?;
    let result = f.call_within_context::<Dynamic>(ctx, ());
    let (mut races, lost) = check.races();
    drop(check);
    let mut names = Names::default();
    names.capture(ctx, f, &[]);
    name_all(&mut races, &names);
    if show_races {
        show(&races, &lost, Counted::Times);
    }
    // An error of `f` comes after the races it may have caused.
    let _value = result?;
    Ok(to_array(&races))
}

#[export_module]
pub mod races_api {
    use super::*;

    /// Runs `f` (a function that starts threads and/or processes) for real, with the
    /// race detector on: it follows what happens before what — spawn and join, lock,
    /// semaphore, event, condition, barrier, queue and pipe operations, `add`, pool tasks
    /// — and reports every two accesses to a shared value or `shared_array` element, at
    /// least one a write, that nothing orders. Shows the races like ThreadSanitizer and returns
    /// them: an array of `#{object, first, second, count}`, `first` and `second` being
    /// `#{op, worker, source, line, column, locks}`.
    ///
    /// ```rhai
    /// let counter = value(0);
    /// let races = check_races(|| {
    ///     let a = spawn_thread(|| counter.value += 1);
    ///     let b = spawn_thread(|| counter.value += 1);
    ///     a.join(); b.join();
    /// });
    /// races.len()   // 1: read and write of counter.value, unordered
    /// ```
    #[rhai_fn(return_raw)]
    pub fn check_races(ctx: NativeCallContext, f: FnPtr) -> Result<Array, Box<EvalAltResult>> {
        check_with(&ctx, &f, true)
    }

    /// `check_races(f, #{ show: false })`: the same without showing the reports.
    #[rhai_fn(name = "check_races", return_raw)]
    pub fn check_races_options(
        ctx: NativeCallContext,
        f: FnPtr,
        options: Map,
    ) -> Result<Array, Box<EvalAltResult>> {
        if let Some(unknown) = options.keys().find(|k| k.as_str() != "show") {
            return Err(format!("check_races: unknown option '{unknown}' (known: show)").into());
        }
        let show_races = match options.get("show") {
            None => true,
            Some(v) => v
                .as_bool()
                .map_err(|t| format!("check_races: option 'show' must be a bool, not {t}"))?,
        };
        check_with(&ctx, &f, show_races)
    }
}
