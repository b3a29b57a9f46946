//! Shared memory for runtime objects: one anonymous memory file (memfd) per kernel, mapped
//! by the kernel and inherited by every worker process, so a lock or value is the same
//! bytes in all of them and a handle is just an offset. Nothing is left in /dev/shm, even
//! after a crash. Allocation is a lock-free bump pointer; pages are only touched when used.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Environment variable through which a worker learns the inherited descriptor.
pub const FD_ENV: &str = "RHAI_KERNEL_SHM_FD";
/// Environment variable to change the size of the shared memory (in MiB).
pub const SIZE_ENV: &str = "RHAI_KERNEL_SHM_MIB";
const DEFAULT_SIZE_MIB: u64 = 256;
const MAGIC: u64 = 0x7268_6169_5f73_686d; // "rhai_shm"

#[repr(C)]
struct Header {
    magic: u64,
    size: u64,
    next: AtomicU64,
    serial: AtomicU64,
    /// Offset of the table of threads waiting for locks (see `deadlock`); 0 if none.
    waits_for: AtomicU64,
}

pub struct Arena {
    base: *mut u8,
    size: u64,
    fd: RawFd,
}

// SAFETY: the mapping lives for the whole process and is only accessed through atomics
// and process-shared pthread objects.
unsafe impl Send for Arena {}
unsafe impl Sync for Arena {}

static ARENA: OnceLock<Result<Arena, String>> = OnceLock::new();

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn map(fd: RawFd, size: u64) -> Result<*mut u8, String> {
    // SAFETY: mapping a file descriptor we own; the result is checked.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(os_error("mmap of shared memory failed"));
    }
    Ok(base.cast())
}

fn create() -> Result<Arena, String> {
    let mib = std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_SIZE_MIB);
    let size = mib << 20;
    let name = c"rhai-kernel-shared";
    // SAFETY: plain system calls with checked results.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os_error("memfd_create failed"));
    }
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        return Err(os_error("sizing shared memory failed"));
    }
    let base = map(fd, size)?;
    let header = base.cast::<Header>();
    // SAFETY: fresh zeroed mapping, large enough for the header.
    unsafe {
        (*header).magic = MAGIC;
        (*header).size = size;
        (*header).next.store(4096, Ordering::Release);
    }
    let arena = Arena { base, size, fd };
    // Reserved before any worker exists, so every process finds it at the same offset.
    let table = super::deadlock::reserve_table(&arena, size);
    arena.header().waits_for.store(table, Ordering::Release);
    Ok(arena)
}

fn attach(fd: RawFd) -> Result<Arena, String> {
    // SAFETY: fstat into a zeroed struct; result checked.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(os_error("inherited shared memory is not usable"));
    }
    let size = stat.st_size as u64;
    let base = map(fd, size)?;
    // SAFETY: the creator wrote the header before any worker was started.
    if unsafe { (*base.cast::<Header>()).magic } != MAGIC {
        return Err("inherited descriptor is not rhai-kernel shared memory".into());
    }
    // Keep it from leaking into programs this worker might exec, but the worker's own
    // children get it explicitly (see `inheritable_fd`).
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(Arena { base, size, fd })
}

/// The process's shared memory: inherited from the parent process, or created on first use.
pub fn arena() -> Result<&'static Arena, String> {
    ARENA
        .get_or_init(
            || match std::env::var(FD_ENV).ok().and_then(|v| v.parse().ok()) {
                Some(fd) => attach(fd),
                None => create(),
            },
        )
        .as_ref()
        .map_err(Clone::clone)
}

impl Arena {
    fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0 of a live mapping.
        unsafe { &*self.base.cast::<Header>() }
    }

    /// Reserves `size` zeroed bytes aligned to `align`; returns their offset.
    pub fn alloc(&self, size: usize, align: usize) -> Result<u64, String> {
        let align = align.max(8) as u64;
        let next = &self.header().next;
        let mut current = next.load(Ordering::Acquire);
        loop {
            let start = current.div_ceil(align) * align;
            let end = start + size as u64;
            if end > self.size {
                return Err(format!(
                    "shared memory is full ({} MiB); set {SIZE_ENV} to a larger size in MiB",
                    self.size >> 20
                ));
            }
            match next.compare_exchange_weak(current, end, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(start),
                Err(actual) => current = actual,
            }
        }
    }

    /// Offset of the waits-for table reserved at creation (0 when it did not fit).
    pub fn waits_for_table(&self) -> u64 {
        self.header().waits_for.load(Ordering::Acquire)
    }

    /// A fresh number for naming objects (`Lock-3`), unique across processes.
    pub fn serial(&self) -> u64 {
        self.header().serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The address of the object at `offset`.
    ///
    /// # Safety
    /// `offset` must come from [`Arena::alloc`] for an object of type `T`.
    pub unsafe fn at<T>(&self, offset: u64) -> *mut T {
        self.base.add(offset as usize).cast()
    }

    /// Whether `offset..offset+len` lies inside the mapping (for offsets that came from
    /// another process).
    pub fn contains(&self, offset: u64, len: usize) -> bool {
        offset >= 4096
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.size)
    }

    /// The descriptor a child process must inherit.
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

/// A process-shared, robust mutex with a condition variable: the building block of every
/// synchronisation object. Critical sections under it are a few instructions long; a
/// holder that dies is detected by the robust mutex and the state stays usable.
#[repr(C)]
pub struct Monitor {
    mutex: libc::pthread_mutex_t,
    cond: libc::pthread_cond_t,
}

pub struct MonitorGuard<'a> {
    monitor: &'a Monitor,
}

impl Monitor {
    /// Initialises a monitor in place (in freshly allocated, zeroed shared memory).
    ///
    /// # Safety
    /// `this` must point to writable memory for a `Monitor` that no one uses yet.
    pub unsafe fn init(this: *mut Monitor) {
        let mut mattr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut mattr);
        libc::pthread_mutexattr_setpshared(&mut mattr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut mattr, libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutex_init(&mut (*this).mutex, &mattr);
        libc::pthread_mutexattr_destroy(&mut mattr);
        let mut cattr: libc::pthread_condattr_t = std::mem::zeroed();
        libc::pthread_condattr_init(&mut cattr);
        libc::pthread_condattr_setpshared(&mut cattr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_condattr_setclock(&mut cattr, libc::CLOCK_MONOTONIC);
        libc::pthread_cond_init(&mut (*this).cond, &cattr);
        libc::pthread_condattr_destroy(&mut cattr);
    }

    fn mutex_ptr(&self) -> *mut libc::pthread_mutex_t {
        std::ptr::addr_of!(self.mutex).cast_mut()
    }

    fn cond_ptr(&self) -> *mut libc::pthread_cond_t {
        std::ptr::addr_of!(self.cond).cast_mut()
    }

    /// Locks the monitor; if the previous holder died inside it, the state is marked
    /// consistent again (its critical sections leave the state valid at every step).
    pub fn lock(&self) -> MonitorGuard<'_> {
        // SAFETY: the mutex was initialised by `init` in shared memory that stays mapped.
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex_ptr()) };
        if rc == libc::EOWNERDEAD {
            unsafe { libc::pthread_mutex_consistent(self.mutex_ptr()) };
        }
        MonitorGuard { monitor: self }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        // SAFETY: initialised condition variable.
        unsafe { libc::pthread_cond_signal(self.cond_ptr()) };
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        // SAFETY: initialised condition variable.
        unsafe { libc::pthread_cond_broadcast(self.cond_ptr()) };
    }
}

impl MonitorGuard<'_> {
    /// Waits for a notification, at most `timeout` (letting other script threads run).
    pub fn wait(&mut self, timeout: Duration) {
        super::gil::release_for_wait();
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; the mutex is held by this guard.
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
            let nanos = now.tv_nsec as u64 + timeout.subsec_nanos() as u64;
            let deadline = libc::timespec {
                tv_sec: now.tv_sec
                    + timeout.as_secs() as libc::time_t
                    + (nanos / 1_000_000_000) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as _,
            };
            let rc = libc::pthread_cond_timedwait(
                self.monitor.cond_ptr(),
                self.monitor.mutex_ptr(),
                &deadline,
            );
            if rc == libc::EOWNERDEAD {
                libc::pthread_mutex_consistent(self.monitor.mutex_ptr());
            }
        }
    }
}

impl Drop for MonitorGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.monitor.mutex_ptr()) };
    }
}
