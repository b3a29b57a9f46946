//! What a pool call is given besides its function: its items (an array or a range) and
//! the options of `map` (`chunksize`, `progress`), with Python's default chunk size.

use rhai::{Dynamic, EvalAltResult};

/// Options of `map`: `#{chunksize: k, progress: true}`.
pub(super) struct Options {
    pub(super) chunksize: Option<usize>,
    pub(super) progress: bool,
}

pub(super) fn options(map: &rhai::Map) -> Result<Options, Box<EvalAltResult>> {
    let mut options = Options {
        chunksize: None,
        progress: false,
    };
    for (key, value) in map {
        match key.as_str() {
            "chunksize" => {
                let k = value.as_int().map_err(|_| "chunksize must be an int")?;
                if k < 1 {
                    return Err("chunksize must be at least 1".into());
                }
                options.chunksize = Some(k as usize);
            }
            "progress" => {
                options.progress = value
                    .as_bool()
                    .map_err(|_| "progress must be true or false")?
            }
            other => return Err(format!("unknown option '{other}' (chunksize, progress)").into()),
        }
    }
    Ok(options)
}

/// The items of an array or a range.
pub(super) fn items_of(xs: Dynamic) -> Result<Vec<Dynamic>, Box<EvalAltResult>> {
    if xs.is_array() {
        return Ok(xs.into_array().unwrap_or_default());
    }
    if let Some(r) = xs.clone().try_cast::<std::ops::Range<i64>>() {
        return Ok(r.map(Dynamic::from_int).collect());
    }
    if let Some(r) = xs.clone().try_cast::<std::ops::RangeInclusive<i64>>() {
        return Ok(r.map(Dynamic::from_int).collect());
    }
    Err(format!(
        "expected an array or a range of items, got {}",
        xs.type_name()
    )
    .into())
}

/// Python's default: about four chunks per worker.
pub(super) fn default_chunksize(items: usize, workers: usize) -> usize {
    items.div_ceil((workers * 4).max(1)).max(1)
}
