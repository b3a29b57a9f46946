//! The memory and process limits of the control group (cgroup) this process runs in, so
//! that the default limits of a kernel in a container (a JupyterHub pod, a Binder session,
//! `docker run --memory`) follow the container's limits rather than the host's.
//!
//! Both cgroup versions are read. The process's cgroup comes from `/proc/self/cgroup`, the
//! place where each hierarchy is mounted from `/proc/self/mountinfo`; a limit set on any
//! ancestor (up to the mount point) applies too, so the smallest along the path wins.
//! Unreadable or garbled files are ignored: the limit is then the host's.

use std::path::{Path, PathBuf};

/// For tests only: a directory standing for `/`, under which `proc/self/cgroup`,
/// `proc/self/mountinfo` and the cgroup mount points are read instead of the real ones.
pub const ROOT_ENV: &str = "RHAI_KERNEL_CGROUP_ROOT";

/// cgroup v1 writes "no limit" as a huge number (`LONG_MAX` rounded down to a page);
/// anything this large is no limit.
const UNLIMITED: u64 = 1 << 62;

/// The cgroup's memory limit in bytes (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`).
pub fn memory_limit() -> Option<u64> {
    limit_at(&root(), "memory", "memory.max", "memory.limit_in_bytes")
}

/// The cgroup's limit on tasks, threads included (`pids.max`, in both versions).
pub fn pids_limit() -> Option<u64> {
    limit_at(&root(), "pids", "pids.max", "pids.max")
}

fn root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `path` (absolute) under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The smallest limit of `controller` over the v2 and v1 hierarchies this process is in.
pub fn limit_at(root: &Path, controller: &str, v2_file: &str, v1_file: &str) -> Option<u64> {
    let cgroups = std::fs::read_to_string(under(root, "/proc/self/cgroup")).ok()?;
    let mounts = std::fs::read_to_string(under(root, "/proc/self/mountinfo")).ok()?;
    let mounts: Vec<Mount> = mounts.lines().filter_map(Mount::parse).collect();
    let mut smallest: Option<u64> = None;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (version2, file) = if controllers.is_empty() {
            (true, v2_file)
        } else if controllers.split(',').any(|c| c == controller) {
            (false, v1_file)
        } else {
            continue;
        };
        let Some(mount) = mounts.iter().find(|m| m.serves(version2, controller)) else {
            continue;
        };
        if let Some(limit) = smallest_on_path(root, mount, path, file) {
            smallest = Some(smallest.map_or(limit, |s| s.min(limit)));
        }
    }
    smallest
}

/// The smallest limit in `file` from the cgroup directory up to the mount point.
fn smallest_on_path(root: &Path, mount: &Mount, path: &str, file: &str) -> Option<u64> {
    // The cgroup path is relative to the hierarchy's root; the mount shows the part of it
    // below `mount.root` (a container's cgroup namespace often mounts its own cgroup as /).
    let relative = match path.strip_prefix(mount.root.as_str()) {
        Some(rest) if mount.root == "/" || rest.is_empty() || rest.starts_with('/') => rest,
        // Not below the mount's root: the mount point itself is the closest we can read.
        _ => "",
    };
    let top = under(root, &mount.point);
    let mut dir = top.join(relative.trim_start_matches('/'));
    let mut smallest: Option<u64> = None;
    loop {
        if let Some(limit) = read_limit(&dir.join(file)) {
            smallest = Some(smallest.map_or(limit, |s| s.min(limit)));
        }
        if dir == top || !dir.pop() || !dir.starts_with(&top) {
            break;
        }
    }
    smallest
}

/// A limit file's value: `None` for "max", a huge number, a missing file or garbage.
fn read_limit(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let value: u64 = text.trim().parse().ok()?;
    (value < UNLIMITED).then_some(value)
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup hierarchy.
struct Mount {
    /// The directory of the hierarchy that is mounted (`/` unless a namespace hides the rest).
    root: String,
    point: String,
    version2: bool,
    /// The v1 controllers of the hierarchy (from the super options).
    controllers: Vec<String>,
}

impl Mount {
    /// `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
    fn parse(line: &str) -> Option<Mount> {
        let (before, after) = line.split_once(" - ")?;
        let before: Vec<&str> = before.split(' ').collect();
        let after: Vec<&str> = after.split(' ').collect();
        let (root, point) = (before.get(3)?, before.get(4)?);
        let fstype = *after.first()?;
        let version2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => return None,
        };
        let controllers = after
            .get(2)
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        Some(Mount {
            root: unescape(root),
            point: unescape(point),
            version2,
            controllers,
        })
    }

    fn serves(&self, version2: bool, controller: &str) -> bool {
        self.version2 == version2 && (version2 || self.controllers.iter().any(|c| c == controller))
    }
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_MOUNT: &str = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (path, text) in files {
            let path = under(dir.path(), path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn memory(root: &Path) -> Option<u64> {
        limit_at(root, "memory", "memory.max", "memory.limit_in_bytes")
    }

    fn pids(root: &Path) -> Option<u64> {
        limit_at(root, "pids", "pids.max", "pids.max")
    }

    #[test]
    fn version_2_limits_are_read_from_the_process_cgroup() {
        let root = fake(&[
            ("/proc/self/cgroup", "0::/kubepods/pod1\n"),
            ("/proc/self/mountinfo", V2_MOUNT),
            ("/sys/fs/cgroup/kubepods/pod1/memory.max", "1073741824\n"),
            ("/sys/fs/cgroup/kubepods/pod1/pids.max", "1024\n"),
        ]);
        assert_eq!(memory(root.path()), Some(1 << 30));
        assert_eq!(pids(root.path()), Some(1024));
    }

    #[test]
    fn max_means_no_limit() {
        let root = fake(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/proc/self/mountinfo", V2_MOUNT),
            ("/sys/fs/cgroup/memory.max", "max\n"),
            ("/sys/fs/cgroup/pids.max", "max\n"),
        ]);
        assert_eq!(memory(root.path()), None);
        assert_eq!(pids(root.path()), None);
    }

    #[test]
    fn a_limit_on_an_ancestor_applies_and_the_smallest_wins() {
        let root = fake(&[
            ("/proc/self/cgroup", "0::/user.slice/session/kernel\n"),
            ("/proc/self/mountinfo", V2_MOUNT),
            ("/sys/fs/cgroup/user.slice/memory.max", "2147483648\n"),
            ("/sys/fs/cgroup/user.slice/session/memory.max", "max\n"),
            (
                "/sys/fs/cgroup/user.slice/session/kernel/memory.max",
                "max\n",
            ),
            ("/sys/fs/cgroup/user.slice/session/kernel/pids.max", "500\n"),
            ("/sys/fs/cgroup/user.slice/session/pids.max", "100\n"),
        ]);
        assert_eq!(memory(root.path()), Some(2 << 30));
        assert_eq!(pids(root.path()), Some(100));
    }

    #[test]
    fn version_1_hierarchies_are_found_by_controller() {
        let root = fake(&[
            (
                "/proc/self/cgroup",
                "12:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n",
            ),
            (
                "/proc/self/mountinfo",
                "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                 39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
            ),
            // The memory hierarchy is mounted at the container's own cgroup.
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "536870912\n"),
            ("/sys/fs/cgroup/pids/docker/abc/pids.max", "64\n"),
        ]);
        assert_eq!(memory(root.path()), Some(512 << 20));
        assert_eq!(pids(root.path()), Some(64));
    }

    #[test]
    fn version_1_unlimited_is_no_limit() {
        let root = fake(&[
            ("/proc/self/cgroup", "4:memory:/\n"),
            (
                "/proc/self/mountinfo",
                "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        assert_eq!(memory(root.path()), None);
    }

    #[test]
    fn garbage_is_ignored() {
        let root = fake(&[
            ("/proc/self/cgroup", "0::/a\nnonsense\n::\n"),
            (
                "/proc/self/mountinfo",
                "garbage\n30 23 0:26 / /sys/fs/cgroup\n",
            ),
            ("/sys/fs/cgroup/a/memory.max", "lots\n"),
        ]);
        assert_eq!(memory(root.path()), None);
        let root = fake(&[
            ("/proc/self/cgroup", "0::/a\n"),
            ("/proc/self/mountinfo", V2_MOUNT),
            ("/sys/fs/cgroup/a/memory.max", "-5\n"),
            ("/sys/fs/cgroup/a/pids.max", "\u{0}\u{1}\n"),
        ]);
        assert_eq!(memory(root.path()), None);
        assert_eq!(pids(root.path()), None);
        // No files at all: no limit.
        let empty = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(memory(empty.path()), None);
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\b"), r"/a\b");
        let root = fake(&[
            ("/proc/self/cgroup", "0::/\n"),
            (
                "/proc/self/mountinfo",
                "30 23 0:26 / /cg\\040roups rw shared:4 - cgroup2 cgroup2 rw\n",
            ),
            ("/cg roups/pids.max", "42\n"),
        ]);
        assert_eq!(pids(root.path()), Some(42));
    }
}
