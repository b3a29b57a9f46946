//! A memory limit on scripts, so a runaway `s += s` or an ever-growing array ends in a
//! clear error instead of the kernel being killed for using all the machine's memory.
//!
//! Rhai's own size limits re-measure whole arrays after every operation (30-40 times
//! slower loops), so instead the progress hook samples this process's resident memory
//! every few thousand operations, and after every large allocation (a doubling string
//! needs few operations to fill the memory), and stops the script once it is over.

use crate::runtime::{attention, cgroup};
use rhai::{Dynamic, EvalAltResult};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;

/// Allocations of at least this size are counted, so the next operation samples memory.
const LARGE_ALLOCATION: usize = 1 << 20;

/// A large allocation: the next operation of any thread samples memory.
fn counted_large() {
    attention::raise(attention::LARGE_ALLOCATION);
}

/// The system allocator, counting large allocations (a single comparison for the rest).
pub struct CountingAllocator;

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_ALLOCATION {
            counted_large();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_ALLOCATION {
            counted_large();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= LARGE_ALLOCATION {
            counted_large();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// The environment variable that sets the limit, in MiB (0: no limit).
pub const MEMORY_ENV: &str = "RHAI_KERNEL_MAX_MEMORY_MIB";
/// Without the variable: this share of the machine's memory (or of the cgroup's, in a
/// container that has less), so that even the operation
/// that crosses the limit (which may double a value) leaves room.
const DEFAULT_SHARE: u64 = 4;
/// Operations between two samples: a sample reads /proc, a few microseconds.
const SAMPLE_EVERY: u64 = 1 << 14;

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// The limit in bytes, if any.
pub fn memory_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        match std::env::var(MEMORY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(0) => None,
            Some(mib) => Some(mib << 20),
            None => {
                // SAFETY: sysconf has no preconditions.
                let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
                let host = (pages > 0).then(|| pages as u64 * page_size());
                default_memory_limit(host, cgroup::memory_limit())
            }
        }
    })
}

/// The default limit for a machine with `host` bytes of memory in a cgroup limited to
/// `cgroup` bytes: a share of the smaller, and at least 512 MiB where that is at most half
/// of it (a container of 256 MiB gets 128 MiB, not more than it has).
pub fn default_memory_limit(host: Option<u64>, cgroup: Option<u64>) -> Option<u64> {
    let memory = match (host, cgroup) {
        (Some(host), Some(cgroup)) => host.min(cgroup),
        (one, other) => one.or(other)?,
    };
    Some((memory / DEFAULT_SHARE).max(MINIMUM_DEFAULT.min(memory / 2)))
}

const MINIMUM_DEFAULT: u64 = 512 << 20;

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// Called from the progress hook with the operation count: an error once the process is
/// over its memory limit.
#[inline]
pub fn check_memory(ops: u64) -> Option<Dynamic> {
    // Taken before the sample: a large allocation after this raises it again, and the
    // one before is in the memory this sample sees.
    let large = attention::take(attention::LARGE_ALLOCATION);
    if !large && !sample_due(ops) {
        return None;
    }
    sample_memory()
}

/// Whether the operation numbered `ops` samples memory in any case.
#[inline(always)]
pub fn sample_due(ops: u64) -> bool {
    ops.is_multiple_of(SAMPLE_EVERY)
}

#[inline(never)]
fn sample_memory() -> Option<Dynamic> {
    let limit = memory_limit()?;
    let used = resident_bytes()?;
    (used > limit).then(|| {
        Dynamic::from(format!(
            "{OUT_OF_MEMORY}: this process uses {} MiB, over its limit of {} MiB (set {MEMORY_ENV} to change it); free large values, e.g. `big = ();`",
            used >> 20,
            limit >> 20
        ))
    })
}

/// Whether a script was stopped by the memory check (rather than an interrupt).
pub fn is_memory_error(err: &EvalAltResult) -> bool {
    matches!(err, EvalAltResult::ErrorTerminated(value, _)
        if value.clone().into_string().is_ok_and(|text| text.starts_with(OUT_OF_MEMORY)))
}

const OUT_OF_MEMORY: &str = "out of memory";

#[cfg(test)]
mod tests {
    use super::default_memory_limit;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn the_default_is_a_quarter_of_the_smaller_of_host_and_cgroup() {
        assert_eq!(default_memory_limit(Some(16 * GIB), None), Some(4 * GIB));
        assert_eq!(
            default_memory_limit(Some(16 * GIB), Some(2 * GIB)),
            Some(512 * MIB)
        );
        assert_eq!(
            default_memory_limit(Some(GIB), Some(8 * GIB)),
            Some(512 * MIB)
        );
        assert_eq!(default_memory_limit(None, Some(4 * GIB)), Some(GIB));
        assert_eq!(default_memory_limit(None, None), None);
    }

    #[test]
    fn the_floor_never_exceeds_half_of_a_small_container() {
        assert_eq!(
            default_memory_limit(Some(16 * GIB), Some(1536 * MIB)),
            Some(512 * MIB)
        );
        assert_eq!(
            default_memory_limit(Some(16 * GIB), Some(256 * MIB)),
            Some(128 * MIB)
        );
    }
}
