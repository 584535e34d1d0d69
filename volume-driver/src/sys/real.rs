//! The real [`Sys`]: Linux syscalls through `nix` (mount, umount2, chown, chmod, statfs,
//! openat2) and `std::fs`. Never runs a program. Owns no policy: the service decides what to call.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use crate::sys::{DirUsage, FsInfo, Ownership, Sys};

/// Linux implementation of [`Sys`].
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSys;

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Open directory `path` without following a symlink in its last component, or `..`: the
/// parent is the plugin's own root (trusted, opened normally); the name inside it is resolved
/// with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)`, so a symlink planted in the data or
/// mount root (e.g. by a container that holds a bind volume over it) is refused (`ELOOP`), never
/// followed. `O_PATH` fds serve as mount sources and targets (`/proc/self/fd/N`); `readable`
/// gives a real fd for `fchown`/`fchmod`/`fsync`.
fn open_dir_nofollow(path: &Path, readable: bool) -> io::Result<std::os::fd::OwnedFd> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let pfd = nix::fcntl::open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let access = if readable {
        OFlag::O_RDONLY
    } else {
        OFlag::O_PATH
    };
    let how = OpenHow::new()
        .flags(access | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    nix::fcntl::openat2(&pfd, Path::new(name), how).map_err(|e| {
        let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if e == Errno::ELOOP || link {
            io::Error::other(format!(
                "{} is a symbolic link: refused (never followed)",
                path.display()
            ))
        } else {
            errno(e)
        }
    })
}

/// The path of an open fd, for mount(2) (the magic link names exactly that directory).
fn fd_path(fd: &std::os::fd::OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// fsync the directory holding `path`, so a create or rename in it survives power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => fs::File::open(p)?.sync_all(),
        None => Ok(()),
    }
}

/// Owner and mode through an fd opened without following symlinks.
fn apply(path: &Path, own: Ownership) -> io::Result<()> {
    if own.uid.is_none() && own.gid.is_none() && own.mode.is_none() {
        return Ok(());
    }
    let fd = open_dir_nofollow(path, true)?;
    if own.uid.is_some() || own.gid.is_some() {
        nix::unistd::fchown(&fd, own.uid.map(Uid::from_raw), own.gid.map(Gid::from_raw))
            .map_err(errno)?;
    }
    if let Some(mode) = own.mode {
        // chmod after chown: chown clears set-id bits.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(errno)?;
    }
    Ok(())
}

/// Create a mount point directory if missing (mode 0755) and open it without following a
/// symlink: mounts go onto this fd, never onto a path a planted symlink could redirect.
fn ensure_mountpoint(target: &Path) -> io::Result<std::os::fd::OwnedFd> {
    match fs::create_dir(target) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    open_dir_nofollow(target, false)
}

/// Mount points listed in a mountinfo text that lie strictly below `root`.
pub fn parse_mountinfo_under(text: &str, root: &Path) -> BTreeSet<PathBuf> {
    common::mountinfo::parse(text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(root) && p.as_path() != root)
        .collect()
}

/// The host path of `inner` (a path inside the plugin) from a mountinfo text, when the
/// filesystem holding it is also visible below `host_root` (the host's `/`): the mount `T`
/// holding `inner` has a device and a root within it; a mount `M` below `host_root` of the
/// same device whose root contains `T`'s root shows the same directory at
/// `M.mountpoint − host_root + (T.root − M.root) + (inner − T.mountpoint)`.
pub fn host_path_from_mountinfo(text: &str, inner: &Path, host_root: &Path) -> Option<String> {
    let mounts = common::mountinfo::parse(text);
    // The last (topmost) mount whose mount point is the longest prefix of `inner`.
    let t = mounts
        .iter()
        .filter(|m| inner.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())?;
    let rest = inner.strip_prefix(&t.mount_point).ok()?;
    mounts
        .iter()
        .filter(|m| {
            m.device == t.device
                && m.mount_point.starts_with(host_root)
                && t.root.starts_with(&m.root)
        })
        .find_map(|m| {
            let under = m.mount_point.strip_prefix(host_root).ok()?;
            let within = t.root.strip_prefix(&m.root).ok()?;
            let p = Path::new("/").join(under).join(within).join(rest);
            Some(p.to_string_lossy().trim_end_matches('/').to_string()).map(|s| {
                if s.is_empty() {
                    "/".to_string()
                } else {
                    s
                }
            })
        })
}

impl Sys for LinuxSys {
    fn make_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn make_volume_dir(&self, path: &Path, own: Ownership) -> io::Result<bool> {
        let existed = match fs::create_dir(path) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !fs::symlink_metadata(path)?.is_dir() {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                true
            }
            Err(e) => return Err(e),
        };
        // A new directory gets 0755 unless a mode was asked for (umask must not decide).
        let own = Ownership {
            mode: own.mode.or(if existed { None } else { Some(0o755) }),
            ..own
        };
        apply(path, own)?;
        if !existed {
            sync_parent(path)?;
        }
        Ok(existed)
    }

    fn remove_tree(&self, path: &Path) -> io::Result<()> {
        // std's remove_dir_all does not follow symlinks (CVE-2022-21658 fix).
        match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)?;
        sync_parent(to)?;
        if from.parent() != to.parent() {
            sync_parent(from)?;
        }
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        // A symlink is not a volume directory, whatever it points to.
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn bind(&self, source: &Path, target: &Path) -> io::Result<()> {
        let src = open_dir_nofollow(source, false)?;
        let tgt = ensure_mountpoint(target)?;
        nix::mount::mount(
            Some(fd_path(&src).as_str()),
            fd_path(&tgt).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(errno)
    }

    fn bind_host_dir(&self, root: &Path, host_path: &str, target: &Path) -> io::Result<()> {
        let (fd, resolved) = open_in_root(root, host_path)?;
        if resolved != host_path {
            return Err(io::Error::other(format!(
                "now resolves to {resolved} (a symlink changed since the volume was created)"
            )));
        }
        let tgt = ensure_mountpoint(target)?;
        // Mount the very directory we resolved (through its fd), not a path a symlink swap could
        // redirect between the check and the mount.
        let src = fd_path(&fd);
        nix::mount::mount(
            Some(src.as_str()),
            fd_path(&tgt).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(errno)
    }

    fn mount_tmpfs(&self, target: &Path, size: Option<u64>, own: Ownership) -> io::Result<()> {
        let tgt = ensure_mountpoint(target)?;
        let mut data = Vec::new();
        if let Some(s) = size {
            data.push(format!("size={s}"));
        }
        if let Some(u) = own.uid {
            data.push(format!("uid={u}"));
        }
        if let Some(g) = own.gid {
            data.push(format!("gid={g}"));
        }
        data.push(format!("mode={:o}", own.mode.unwrap_or(0o755)));
        nix::mount::mount(
            Some("outboard-volume"),
            fd_path(&tgt).as_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.join(",").as_str()),
        )
        .map_err(errno)
    }

    fn release_mountpoint(&self, target: &Path) -> io::Result<()> {
        // Bounded: a handful of stacked mounts at most.
        for _ in 0..16 {
            // UMOUNT_NOFOLLOW: a symlink planted at the mount point never makes this detach a
            // mount elsewhere.
            match nix::mount::umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
                Ok(()) => continue,
                Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
                Err(e) => return Err(errno(e)),
            }
        }
        match fs::remove_dir(target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // The directory is still a mount point in a copy of the tree (the `/host` rbind
            // taken at plugin start holds one after a restart): the volume is unmounted here,
            // which is what matters; the empty directory is reused by the next mount.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn mounts_under(&self, root: &Path) -> io::Result<BTreeSet<PathBuf>> {
        let text = fs::read_to_string("/proc/self/mountinfo")?;
        Ok(parse_mountinfo_under(&text, root))
    }

    fn host_path_of(&self, inner: &Path, host_root: &Path) -> io::Result<Option<String>> {
        let text = fs::read_to_string("/proc/self/mountinfo")?;
        Ok(host_path_from_mountinfo(&text, inner, host_root))
    }

    fn fs_info(&self, path: &Path) -> io::Result<FsInfo> {
        let s = nix::sys::statfs::statfs(path).map_err(errno)?;
        let t = s.filesystem_type();
        use nix::sys::statfs as f;
        let fs_type = if t == f::TMPFS_MAGIC {
            "tmpfs".to_string()
        } else if t == f::EXT4_SUPER_MAGIC {
            "ext4".to_string()
        } else if t == f::XFS_SUPER_MAGIC {
            "xfs".to_string()
        } else if t == f::BTRFS_SUPER_MAGIC {
            "btrfs".to_string()
        } else if t == f::OVERLAYFS_SUPER_MAGIC {
            "overlay".to_string()
        } else {
            format!("filesystem type {:#x}", t.0)
        };
        let bsize = s.block_size() as u64;
        Ok(FsInfo {
            fs_type,
            total: s.blocks().saturating_mul(bsize),
            used: s
                .blocks()
                .saturating_sub(s.blocks_free())
                .saturating_mul(bsize),
        })
    }

    fn dir_usage(&self, path: &Path, max_entries: u64) -> io::Result<DirUsage> {
        let top = fs::symlink_metadata(path)?;
        let dev = top.dev();
        let mut usage = DirUsage {
            bytes: top.blocks() * 512,
            entries: 1,
            complete: true,
        };
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for entry in rd.flatten() {
                if usage.entries >= max_entries {
                    usage.complete = false;
                    return Ok(usage);
                }
                let Ok(m) = entry.metadata() else { continue };
                usage.entries += 1;
                usage.bytes += m.blocks() * 512;
                if m.is_dir() && m.dev() == dev {
                    stack.push(entry.path());
                }
            }
        }
        Ok(usage)
    }

    fn resolve_in_root(&self, root: &Path, path: &str) -> io::Result<String> {
        open_in_root(root, path).map(|(_, p)| p)
    }
}

/// Open directory `path` resolved with `root` as `/`; return the fd and the resolved path
/// relative to `root` (absolute, e.g. `/srv/data`).
fn open_in_root(root: &Path, path: &str) -> io::Result<(std::os::fd::OwnedFd, String)> {
    let rootfd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(&rootfd, path, how).map_err(errno)?;
    let full = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let rel = full.strip_prefix(root).map_err(|_| {
        io::Error::other(format!(
            "resolved outside the host root: {}",
            full.display()
        ))
    })?;
    Ok((fd, format!("/{}", rel.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let text = "\
36 35 98:0 / /mnt/volumes rw,noatime master:1 - ext3 /dev/root rw
37 36 98:0 /data/v1 /mnt/volumes/v1 rw - ext4 /dev/sda rw
38 36 0:40 / /mnt/volumes/with\\040space rw - tmpfs tmpfs rw
39 35 0:41 / /mnt/volumesX rw - tmpfs tmpfs rw
";
        let got = parse_mountinfo_under(text, Path::new("/mnt/volumes"));
        let want: BTreeSet<PathBuf> = ["/mnt/volumes/v1", "/mnt/volumes/with space"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn resolve_in_root_stays_inside() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("srv/data")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("srv/escape")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("srv/data/up")).unwrap();
        let s = LinuxSys;
        assert_eq!(s.resolve_in_root(r, "/srv/data").unwrap(), "/srv/data");
        assert_eq!(s.resolve_in_root(r, "/srv/data/../../etc").unwrap(), "/etc");
        // An absolute symlink resolves inside the root, not on the real /.
        assert_eq!(s.resolve_in_root(r, "/srv/escape").unwrap(), "/etc");
        assert_eq!(s.resolve_in_root(r, "/srv/data/up").unwrap(), "/");
        assert!(s.resolve_in_root(r, "/nope").is_err());
    }

    /// Needs root (mount): a symlink planted in the data root or at a mount point is refused,
    /// never followed, and release never detaches a mount a symlink points to.
    #[test]
    fn symlinks_in_our_roots_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let mnt = root.path().join("mnt");
        let elsewhere = root.path().join("elsewhere");
        for d in [&data, &mnt, &elsewhere] {
            fs::create_dir(d).unwrap();
        }
        fs::write(elsewhere.join("secret"), b"s").unwrap();
        let s = LinuxSys;
        // A symlink as a volume's data directory.
        std::os::unix::fs::symlink(&elsewhere, data.join("v1")).unwrap();
        assert!(!s.is_dir(&data.join("v1")).unwrap());
        let e = s.bind(&data.join("v1"), &mnt.join("v1")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(s
            .make_volume_dir(&data.join("v1"), Ownership::default())
            .is_err());
        // A symlink as a mount point: nothing is mounted over its target.
        fs::create_dir(data.join("v2")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, mnt.join("v2")).unwrap();
        assert!(s.bind(&data.join("v2"), &mnt.join("v2")).is_err());
        assert!(s
            .mount_tmpfs(&mnt.join("v2"), None, Ownership::default())
            .is_err());
        assert!(elsewhere.join("secret").exists());
        // A real mount elsewhere, and a symlink to it at a mount point: release leaves it.
        let other = root.path().join("other");
        s.mount_tmpfs(&other, None, Ownership::default())
            .expect("mount tmpfs (needs root)");
        fs::remove_file(mnt.join("v2")).unwrap();
        std::os::unix::fs::symlink(&other, mnt.join("v2")).unwrap();
        let _ = s.release_mountpoint(&mnt.join("v2"));
        assert!(s.mounts_under(root.path()).unwrap().contains(&other));
        s.release_mountpoint(&other).unwrap();
        // The honest path still works.
        s.bind(&data.join("v2"), &mnt.join("v3")).unwrap();
        s.release_mountpoint(&mnt.join("v3")).unwrap();
    }

    #[test]
    fn volume_dir_owner_and_mode() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("v1");
        let s = LinuxSys;
        let own = Ownership {
            uid: None,
            gid: None,
            mode: Some(0o750),
        };
        assert!(!s.make_volume_dir(&p, own).unwrap());
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o750);
        assert!(s.make_volume_dir(&p, own).unwrap());
        fs::write(p.join("f"), b"x").unwrap();
        let u = s.dir_usage(&p, 100).unwrap();
        assert_eq!(u.entries, 2);
        assert!(u.complete);
        assert!(!s.dir_usage(&p, 1).unwrap().complete);
        s.remove_tree(&p).unwrap();
        assert!(!s.is_dir(&p).unwrap());
        s.remove_tree(&p).unwrap();
    }

    #[test]
    fn host_paths_of_plugin_mounts() {
        // As in a managed plugin: rootfs, /data from the host's /var/lib/outboard/volume-data
        // (same filesystem as /), /host = the host's /, /host/srv a second filesystem, and
        // /mnt/volumes (propagated mount) from /var/lib/docker/plugins/ID/propagated-mount.
        let text = "\
100 90 0:50 / / rw - overlay overlay rw
101 100 8:1 /var/lib/outboard/volume-data /data rw - ext4 /dev/sda1 rw
102 100 8:1 / /host rw - ext4 /dev/sda1 rw
103 102 8:2 / /host/srv rw - xfs /dev/sdb1 rw
104 100 8:1 /var/lib/docker/plugins/abc/propagated-mount /mnt/volumes rw - ext4 /dev/sda1 rw
105 100 8:2 /data2 /srvdata rw - xfs /dev/sdb1 rw
106 100 0:60 / /tmp rw - tmpfs tmpfs rw
";
        let host = Path::new("/host");
        let hp = |p: &str| host_path_from_mountinfo(text, Path::new(p), host);
        assert_eq!(
            hp("/data").as_deref(),
            Some("/var/lib/outboard/volume-data")
        );
        assert_eq!(
            hp("/data/v1").as_deref(),
            Some("/var/lib/outboard/volume-data/v1")
        );
        assert_eq!(
            hp("/mnt/volumes").as_deref(),
            Some("/var/lib/docker/plugins/abc/propagated-mount")
        );
        assert_eq!(hp("/srvdata").as_deref(), Some("/srv/data2"));
        // A filesystem the host view does not show: unknown.
        assert_eq!(hp("/tmp"), None);
    }
}
