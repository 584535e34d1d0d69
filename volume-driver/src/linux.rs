//! The real [`Sys`]: Linux syscalls through `nix` (mount, umount2, chown, chmod, statfs,
//! openat2) and `std::fs`. Never runs a program. Owns no policy: the service decides what to call.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

fn apply(path: &Path, own: Ownership) -> io::Result<()> {
    if own.uid.is_some() || own.gid.is_some() {
        nix::unistd::chown(path, own.uid.map(Uid::from_raw), own.gid.map(Gid::from_raw))
            .map_err(errno)?;
    }
    if let Some(mode) = own.mode {
        // chmod after chown: chown clears set-id bits.
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Create a mount point directory if missing (mode 0755).
fn ensure_mountpoint(target: &Path) -> io::Result<()> {
    match fs::create_dir(target) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Undo `octal escapes` (`\040` for a space) of /proc/self/mountinfo fields.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a mountinfo text that lie strictly below `root`.
pub fn parse_mountinfo_under(text: &str, root: &Path) -> BTreeSet<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .filter(|p| p.starts_with(root) && p.as_path() != root)
        .collect()
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
        fs::rename(from, to)
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match fs::metadata(path) {
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
        ensure_mountpoint(target)?;
        nix::mount::mount(
            Some(source),
            target,
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
        ensure_mountpoint(target)?;
        // Mount the very directory we resolved (through its fd), not a path a symlink swap could
        // redirect between the check and the mount.
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::mount::mount(
            Some(src.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(errno)
    }

    fn mount_tmpfs(&self, target: &Path, size: Option<u64>, own: Ownership) -> io::Result<()> {
        ensure_mountpoint(target)?;
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
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.join(",").as_str()),
        )
        .map_err(errno)
    }

    fn release_mountpoint(&self, target: &Path) -> io::Result<()> {
        // Bounded: a handful of stacked mounts at most.
        for _ in 0..16 {
            match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
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
}
