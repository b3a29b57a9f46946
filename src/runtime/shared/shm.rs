//! Shared memory for runtime objects: one anonymous memory file (memfd) per kernel, mapped
//! by the kernel and inherited by every worker process, so a lock or value is the same
//! bytes in all of them and a handle is just an offset. Nothing is left in /dev/shm, even
//! after a crash.
//!
//! Objects are allocated and freed by a TLSF allocator (the `rlsf` crate) whose state
//! lives in the arena's header, under a process-shared robust mutex. Its free lists hold
//! addresses, not offsets, so every process maps the arena at the same address (the way
//! PostgreSQL maps its shared memory in every backend): the creator picks it, and a worker
//! that cannot map there refuses to start rather than corrupt the allocator. Each object
//! starts with an [`ObjectHeader`] (its kind and reference count; see `lifetime`).

use std::cell::UnsafeCell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Environment variable through which a worker learns the inherited descriptor.
pub const FD_ENV: &str = "RHAI_KERNEL_SHM_FD";
/// Environment variable to change the size of the shared memory (in MiB).
pub const SIZE_ENV: &str = "RHAI_KERNEL_SHM_MIB";
const DEFAULT_SIZE_MIB: u64 = 256;
const MAGIC: u64 = 0x7268_6169_5f73_686d; // "rhai_shm"
/// Bytes at the start of the arena for its [`Header`]; objects come after.
const HEADER_AREA: u64 = 16 * 1024;
/// Addresses tried for the mapping, far from where Linux puts programs, heaps, libraries
/// and stacks (x86-64 and arm64 user space is 128 TiB or more).
const PREFERRED_ADDRESSES: [u64; 3] = [0x2000_0000_0000, 0x3000_0000_0000, 0x1000_0000_0000];

/// The allocator: first-level classes up to 8 GiB blocks, 16 second-level classes each.
type Allocator = rlsf::Tlsf<'static, u32, u16, 28, 16>;

/// What kind of object a block holds, written in its [`ObjectHeader`]: decoding a
/// reference checks it, and freeing an object may have to release what it refers to.
pub mod kind {
    pub const LOCK: u32 = 1;
    pub const VALUE: u32 = 2;
    pub const SHARED_ARRAY: u32 = 3;
    pub const SEMAPHORE: u32 = 4;
    pub const EVENT: u32 = 5;
    pub const CONDITION: u32 = 6;
    pub const BARRIER: u32 = 7;
    pub const RING: u32 = 8;
}

#[repr(C)]
struct Header {
    magic: u64,
    size: u64,
    /// Where every process maps the arena.
    address: u64,
    serial: AtomicU64,
    /// Numbers the processes that hold objects (see `lifetime`), apart from `serial` so
    /// that objects' names do not depend on them.
    incarnations: AtomicU64,
    /// Offset of the table of threads waiting for locks (see `deadlock`); 0 if none.
    waits_for: AtomicU64,
    /// Offset of the table of processes holding objects (see `lifetime`); 0 if none.
    holders: AtomicU64,
    /// Offset of the race detector's table, reserved when it is first used; 0 if never.
    races: AtomicU64,
    /// Bytes in allocated blocks, and how many script objects there are (statistics for
    /// `shared_memory()`).
    used: AtomicU64,
    objects: AtomicU64,
    /// Bytes reserved for the runtime's own tables, which are not objects.
    reserved: AtomicU64,
    allocator_lock: Monitor,
    allocator: UnsafeCell<Allocator>,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_AREA);

/// The first bytes of every object: what it is and how many references to it exist (one
/// per process holding it, plus one per message carrying it; see `lifetime`).
#[repr(C)]
pub struct ObjectHeader {
    pub refs: AtomicU32,
    pub kind: AtomicU32,
    /// Bytes asked for the whole block, for the statistics.
    bytes: u64,
}

const OBJECT_HEADER: u64 = std::mem::size_of::<ObjectHeader>() as u64;
const OBJECT_ALIGN: usize = 16;

pub struct Arena {
    base: *mut u8,
    size: u64,
    fd: RawFd,
}

// SAFETY: the mapping lives for the whole process and is only accessed through atomics,
// process-shared pthread objects, and the allocator under its process-shared mutex.
unsafe impl Send for Arena {}
unsafe impl Sync for Arena {}

static ARENA: OnceLock<Result<Arena, String>> = OnceLock::new();

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Maps `size` bytes of `fd` at `address` exactly, or anywhere when `address` is 0.
fn map(fd: RawFd, size: u64, address: u64) -> Result<*mut u8, String> {
    let flags = if address == 0 {
        libc::MAP_SHARED
    } else {
        libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE
    };
    // SAFETY: mapping a file descriptor we own, never over an existing mapping; the
    // result is checked.
    let base = unsafe {
        libc::mmap(
            address as *mut libc::c_void,
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(os_error("mmap of shared memory failed"));
    }
    if address != 0 && base as u64 != address {
        // A kernel too old for MAP_FIXED_NOREPLACE takes the address as a hint only.
        // SAFETY: unmaps the mapping just made, which nothing refers to yet.
        unsafe { libc::munmap(base, size as usize) };
        return Err(format!("shared memory could not be mapped at {address:#x}"));
    }
    Ok(base.cast())
}

fn create() -> Result<Arena, String> {
    let mib = std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_SIZE_MIB);
    let size = (mib << 20).max(HEADER_AREA * 4);
    let name = c"rhai-kernel-shared";
    // SAFETY: plain system calls with checked results.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os_error("memfd_create failed"));
    }
    // SAFETY: `fd` is the memfd just created; the result is checked.
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        return Err(os_error("sizing shared memory failed"));
    }
    let base = PREFERRED_ADDRESSES
        .iter()
        .find_map(|&address| map(fd, size, address).ok())
        .map_or_else(|| map(fd, size, 0), Ok)?;
    let header = base.cast::<Header>();
    // SAFETY: fresh zeroed mapping, large enough for the header; no other process knows
    // it yet.
    unsafe {
        (*header).magic = MAGIC;
        (*header).size = size;
        (*header).address = base as u64;
        Monitor::init(std::ptr::addr_of_mut!((*header).allocator_lock));
        std::ptr::write((*header).allocator.get(), Allocator::new());
        let pool = std::ptr::slice_from_raw_parts_mut(
            base.add(HEADER_AREA as usize),
            (size - HEADER_AREA) as usize,
        );
        (*(*header).allocator.get())
            .insert_free_block_ptr(std::ptr::NonNull::new_unchecked(pool))
            .ok_or("shared memory is too small")?;
    }
    let arena = Arena { base, size, fd };
    // Reserved before any worker exists, so every process finds them at the same offset.
    let table = crate::runtime::deadlock::reserve_table(&arena, size);
    arena.header().waits_for.store(table, Ordering::Release);
    let holders = crate::runtime::lifetime::reserve_table(&arena, size);
    arena.header().holders.store(holders, Ordering::Release);
    Ok(arena)
}

fn attach(fd: RawFd) -> Result<Arena, String> {
    // The header's first words say how large the arena is and where it must be mapped.
    let mut words = [0u64; 3];
    // SAFETY: reading into a local buffer of the given length; result checked.
    let read = unsafe { libc::pread(fd, words.as_mut_ptr().cast(), 24, 0) };
    if read != 24 || words[0] != MAGIC {
        return Err("inherited descriptor is not rhai-kernel shared memory".into());
    }
    let (size, address) = (words[1], words[2]);
    let base = map(fd, size, address).map_err(|e| {
        format!("{e}, where the parent process has it: this worker cannot share its objects")
    })?;
    // Keep it from leaking into programs this worker might exec, but the worker's own
    // children get it explicitly (see `inheritable_fd`).
    // SAFETY: a flag change on a descriptor this process owns.
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

/// How much of the shared memory is in use.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Bytes in objects.
    pub used: u64,
    /// Objects alive (a pipe's two directions count as two).
    pub objects: u64,
    /// Bytes for objects in all (the runtime's own tables excluded).
    pub size: u64,
}

impl Arena {
    fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0 of a live mapping.
        unsafe { &*self.base.cast::<Header>() }
    }

    /// Runs `f` on the allocator, with its process-shared lock held.
    fn with_allocator<R>(&self, f: impl FnOnce(&mut Allocator) -> R) -> R {
        let header = self.header();
        let _guard = header.allocator_lock.lock();
        // SAFETY: the lock gives this thread the only access, across processes; the
        // allocator's addresses are valid because every process maps the arena at the
        // same address.
        f(unsafe { &mut *header.allocator.get() })
    }

    fn full_error(&self) -> String {
        format!(
            "shared memory is full ({} MiB); set {SIZE_ENV} to a larger size in MiB",
            self.size >> 20
        )
    }

    /// Allocates a block of `size` bytes aligned to `align`; returns its offset. When
    /// memory is short, the objects of processes that have died are released first.
    fn allocate(&self, size: usize, align: usize) -> Result<u64, String> {
        let layout = std::alloc::Layout::from_size_align(size, align.max(8))
            .map_err(|_| self.full_error())?;
        for attempt in 0..2 {
            let block = self.with_allocator(|a| {
                a.allocate(layout)
                    .map(|ptr| ptr.as_ptr() as u64 - self.base as u64)
            });
            match block {
                Some(offset) => return Ok(offset),
                None if attempt == 0 => crate::runtime::lifetime::release_dead_processes(),
                None => {}
            }
        }
        Err(self.full_error())
    }

    /// Reserves `size` zeroed bytes aligned to `align` for the life of the arena (tables
    /// every process finds at a fixed offset); returns their offset.
    pub fn reserve(&self, size: usize, align: usize) -> Result<u64, String> {
        let offset = self.allocate(size, align)?;
        self.header()
            .reserved
            .fetch_add(size as u64, Ordering::Relaxed);
        // SAFETY: the block was just allocated, `size` bytes long.
        unsafe { std::ptr::write_bytes(self.base.add(offset as usize), 0, size) };
        Ok(offset)
    }

    /// Allocates an object of `kind` with `size` bytes, the first `zeroed` of them set to
    /// zero (a queue's buffer need not be), and one reference, owned by the caller;
    /// returns the object's offset.
    pub fn alloc_object(&self, kind: u32, size: usize, zeroed: usize) -> Result<u64, String> {
        let bytes = OBJECT_HEADER as usize + size;
        let block = self.allocate(bytes, OBJECT_ALIGN)?;
        let offset = block + OBJECT_HEADER;
        self.header()
            .used
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.header().objects.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the block was just allocated for the header and `size` bytes, and no one
        // else knows it.
        unsafe {
            std::ptr::write_bytes(self.base.add(offset as usize), 0, zeroed.min(size));
            std::ptr::write(
                self.at::<ObjectHeader>(block),
                ObjectHeader {
                    refs: AtomicU32::new(1),
                    kind: AtomicU32::new(kind),
                    bytes: bytes as u64,
                },
            );
        }
        Ok(offset)
    }

    /// The header of the object at `offset` (which must come from [`alloc_object`]).
    pub fn object_header(&self, offset: u64) -> &ObjectHeader {
        // SAFETY: objects start `OBJECT_HEADER` bytes after their block, inside the
        // mapping (checked by the callers with `contains`).
        unsafe { &*self.at::<ObjectHeader>(offset - OBJECT_HEADER) }
    }

    /// Gives an object's memory back. The caller owns its last reference.
    pub fn free_object(&self, offset: u64) {
        let block = offset - OBJECT_HEADER;
        let header = self.object_header(offset);
        let bytes = header.bytes;
        header.kind.store(0, Ordering::Release);
        self.header().objects.fetch_sub(1, Ordering::Relaxed);
        self.with_allocator(|a| {
            // SAFETY: the block came from this allocator and its last reference is gone.
            unsafe {
                let ptr = std::ptr::NonNull::new_unchecked(self.base.add(block as usize));
                a.deallocate(ptr, OBJECT_ALIGN);
            }
        });
        self.header().used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes and objects in use, and the bytes there are for objects.
    pub fn usage(&self) -> Usage {
        let header = self.header();
        Usage {
            used: header.used.load(Ordering::Relaxed),
            objects: header.objects.load(Ordering::Relaxed),
            size: self.size - HEADER_AREA - header.reserved.load(Ordering::Relaxed),
        }
    }

    /// Offset of the waits-for table reserved at creation (0 when it did not fit).
    pub fn waits_for_table(&self) -> u64 {
        self.header().waits_for.load(Ordering::Acquire)
    }

    /// Offset of the table of holding processes reserved at creation (0 when none).
    pub fn holders_table(&self) -> u64 {
        self.header().holders.load(Ordering::Acquire)
    }

    /// Offset of the race detector's table (0 until [`Arena::reserve_races_table`]).
    pub fn races_table(&self) -> u64 {
        self.header().races.load(Ordering::Acquire)
    }

    /// Reserves the race detector's table of `size` bytes the first time, initialised by
    /// `init` before any other process can see it; returns its offset.
    pub fn reserve_races_table(&self, size: usize, init: impl FnOnce(u64)) -> Result<u64, String> {
        // Only the kernel (or the script) reserves it, from one thread at a time.
        static RESERVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = RESERVING.lock().unwrap_or_else(|e| e.into_inner());
        let offset = self.races_table();
        if offset != 0 {
            return Ok(offset);
        }
        let offset = self.reserve(size, 64)?;
        init(offset);
        self.header().races.store(offset, Ordering::Release);
        Ok(offset)
    }

    /// A fresh number for naming objects (`Lock-3`), unique across processes.
    pub fn serial(&self) -> u64 {
        self.header().serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh number for a process that starts holding objects, unique across processes.
    pub fn incarnation(&self) -> u64 {
        self.header().incarnations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The address of the object at `offset`.
    ///
    /// # Safety
    /// `offset` must come from [`Arena::alloc_object`] or [`Arena::reserve`] for an
    /// object of type `T`.
    pub unsafe fn at<T>(&self, offset: u64) -> *mut T {
        self.base.add(offset as usize).cast()
    }

    /// Whether an object of `len` bytes at `offset` lies inside the mapping, after the
    /// header (for offsets that came from another process).
    pub fn contains(&self, offset: u64, len: usize) -> bool {
        offset >= HEADER_AREA + OBJECT_HEADER
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
        // SAFETY: `timespec` is plain integers, for which all zeroes is a valid value.
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
