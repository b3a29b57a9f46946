//! The options of `explore` (and `prove`, `play`): read from a script's map, checked, with
//! a clear error for a wrong one.

use super::strategy::Strategy;
use rhai::{EvalAltResult, FnPtr, Map};

/// What `explore` was asked for.
pub(super) struct Options {
    pub(super) strategy: Strategy,
    pub(super) bound: String,
    pub(super) max_schedules: i64,
    pub(super) max_steps: usize,
    pub(super) expect: Option<FnPtr>,
    pub(super) show: bool,
}

pub(super) fn int_option(
    options: &Map,
    key: &str,
    default: i64,
) -> Result<i64, Box<EvalAltResult>> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_int()
            .map_err(|t| format!("explore: option '{key}' must be an int, not {t}").into()),
    }
}

/// Option `key` of `who` (`explore`, `play`) that must be a function, if given.
pub(super) fn fn_option(
    options: &Map,
    who: &str,
    key: &str,
) -> Result<Option<FnPtr>, Box<EvalAltResult>> {
    match options.get(key) {
        None => Ok(None),
        Some(v) if v.is_fnptr() => Ok(Some(v.clone().cast::<FnPtr>())),
        Some(v) => Err(format!(
            "{who}: option '{key}' must be a function, not {}",
            v.type_name()
        )
        .into()),
    }
}

/// Option `key` of `who` that must be a bool, `default` when not given.
pub(super) fn bool_option(
    options: &Map,
    who: &str,
    key: &str,
    default: bool,
) -> Result<bool, Box<EvalAltResult>> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .map_err(|t| format!("{who}: option '{key}' must be a bool, not {t}").into()),
    }
}

pub(super) fn parse_options(options: &Map) -> Result<Options, Box<EvalAltResult>> {
    const KNOWN: [&str; 7] = [
        "preemptions",
        "max_schedules",
        "max_steps",
        "strategy",
        "seed",
        "expect",
        "show",
    ];
    if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "explore: unknown option '{unknown}' (known: {})",
            KNOWN.join(", ")
        )
        .into());
    }
    let preemptions = int_option(options, "preemptions", 2)?;
    if !(0..=1000).contains(&preemptions) {
        return Err("explore: 'preemptions' must be between 0 and 1000".into());
    }
    let seed = int_option(options, "seed", 1)? as u64;
    // A bound on preemptions is a depth-first search's: asking for one asks for it.
    let default = if options.contains_key("preemptions") {
        "dfs"
    } else {
        "dpor"
    };
    let name = match options.get("strategy") {
        None => default.to_string(),
        Some(v) => v
            .clone()
            .into_string()
            .map_err(|t| format!("explore: option 'strategy' must be a string, not {t}"))?,
    };
    let (strategy, bound) = match name.as_str() {
        "dpor" => (
            Strategy::Dpor(Box::default()),
            "dpor: independent steps in one order only".to_string(),
        ),
        "dfs" => (
            Strategy::dfs(preemptions as u32),
            format!("dfs, at most {preemptions} preemptions"),
        ),
        "random" => (
            Strategy::Random {
                rng: super::strategy::Rng::new(seed),
            },
            format!("random, seed {seed}"),
        ),
        "pct" => (
            Strategy::pct(seed, preemptions as u32 + 1),
            format!("pct, depth {}, seed {seed}", preemptions + 1),
        ),
        other => {
            return Err(format!(
                "explore: unknown strategy '{other}' (\"dpor\", \"dfs\", \"random\" or \"pct\")"
            )
            .into())
        }
    };
    let max_schedules = int_option(options, "max_schedules", 1000)?;
    let max_steps = int_option(options, "max_steps", 10_000)?;
    if max_schedules < 1 || max_steps < 1 {
        return Err("explore: 'max_schedules' and 'max_steps' must be at least 1".into());
    }
    let expect = fn_option(options, "explore", "expect")?;
    let show = bool_option(options, "explore", "show", true)?;
    Ok(Options {
        strategy,
        bound,
        max_schedules,
        max_steps: max_steps as usize,
        expect,
        show,
    })
}
