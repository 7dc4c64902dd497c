//! Whether an executable is safe to run for remediation.
//!
//! The daemon runs these commands with whatever rights it has (often root, through
//! the runner unit). Anyone who can change the file, or swap it by renaming entries
//! in one of its directories, could make the daemon run their code. So: an absolute
//! path; the file and every directory above it owned by root or by the daemon's own
//! user; the file not writable by group or others; no directory writable by group or
//! others unless it is sticky (like /tmp: others may add entries there but cannot
//! rename or replace ours). Symbolic links are followed and both the path as written
//! and the resolved path are checked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("not an absolute path")]
    Relative,
    #[error("{0}: {1}")]
    Missing(PathBuf, String),
    #[error("{0} is not a regular file")]
    NotFile(PathBuf),
    #[error("{0} is not executable")]
    NotExecutable(PathBuf),
    #[error("{0} is owned by uid {1}, not root or the daemon's user (uid {2})")]
    Owner(PathBuf, u32, u32),
    #[error("{0} is writable by {1} (mode {2:o})")]
    Writable(PathBuf, &'static str, u32),
}

/// Check `path` for remediation use, as the current effective user.
pub fn check_executable(path: &Path) -> Result<(), TrustError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    check_executable_for(path, me)
}

/// Check `path` as if the daemon ran with uid `me` (root is always trusted too).
pub fn check_executable_for(path: &Path, me: u32) -> Result<(), TrustError> {
    if !path.is_absolute() {
        return Err(TrustError::Relative);
    }
    let resolved =
        std::fs::canonicalize(path).map_err(|e| TrustError::Missing(path.into(), e.to_string()))?;
    let meta = std::fs::metadata(&resolved)
        .map_err(|e| TrustError::Missing(resolved.clone(), e.to_string()))?;
    if !meta.is_file() {
        return Err(TrustError::NotFile(resolved));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(TrustError::NotExecutable(resolved));
    }
    check_entry(&resolved, &meta, me, false)?;
    // The directories of the path as written (a symlink's own directory decides who
    // can repoint it) and of the resolved file.
    for p in [path, resolved.as_path()] {
        for dir in p.ancestors().skip(1) {
            let meta = std::fs::metadata(dir)
                .map_err(|e| TrustError::Missing(dir.into(), e.to_string()))?;
            check_entry(dir, &meta, me, true)?;
        }
    }
    if path != resolved {
        // Every symlink on the way must itself be trusted to not be swapped; its
        // directory was checked above, and a symlink's own mode means nothing.
        let link = std::fs::symlink_metadata(path)
            .map_err(|e| TrustError::Missing(path.into(), e.to_string()))?;
        if link.uid() != 0 && link.uid() != me {
            return Err(TrustError::Owner(path.into(), link.uid(), me));
        }
    }
    Ok(())
}

fn check_entry(
    p: &Path,
    meta: &std::fs::Metadata,
    me: u32,
    is_dir: bool,
) -> Result<(), TrustError> {
    if meta.uid() != 0 && meta.uid() != me {
        return Err(TrustError::Owner(p.into(), meta.uid(), me));
    }
    let mode = meta.permissions().mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if is_dir && sticky {
        return Ok(());
    }
    if mode & 0o002 != 0 {
        return Err(TrustError::Writable(p.into(), "others", mode));
    }
    if mode & 0o020 != 0 {
        return Err(TrustError::Writable(p.into(), "its group", mode));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, mode: u32) -> PathBuf {
        let p = dir.join("fix");
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn me() -> u32 {
        unsafe { libc::geteuid() }
    }

    fn safe_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn accepts_a_private_script() {
        let d = safe_dir();
        let p = script(d.path(), 0o755);
        check_executable_for(&p, me()).unwrap();
    }

    #[test]
    fn refuses_relative_writable_and_foreign() {
        assert_eq!(
            check_executable_for(Path::new("bin/fix"), me()),
            Err(TrustError::Relative)
        );
        let d = safe_dir();
        let p = script(d.path(), 0o757);
        assert!(matches!(
            check_executable_for(&p, me()),
            Err(TrustError::Writable(_, "others", _))
        ));
        let p = script(d.path(), 0o775);
        assert!(matches!(
            check_executable_for(&p, me()),
            Err(TrustError::Writable(_, "its group", _))
        ));
        let p = script(d.path(), 0o644);
        assert!(matches!(
            check_executable_for(&p, me()),
            Err(TrustError::NotExecutable(_))
        ));
        // Owned by someone the daemon is not: only meaningful when we are not root.
        let p = script(d.path(), 0o755);
        if me() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            assert!(matches!(
                check_executable_for(&p, me()),
                Err(TrustError::Owner(_, 65534, _))
            ));
        }
    }

    #[test]
    fn refuses_a_group_writable_directory_but_not_a_sticky_one() {
        let d = safe_dir();
        let sub = d.path().join("bin");
        std::fs::create_dir(&sub).unwrap();
        let p = script(&sub, 0o755);
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            check_executable_for(&p, me()),
            Err(TrustError::Writable(ref dir, "its group", _)) if dir == &sub
        ));
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_executable_for(&p, me()).unwrap();
    }

    #[test]
    fn checks_the_directory_of_a_symlink_too() {
        let d = safe_dir();
        let target = script(d.path(), 0o755);
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = open.join("fix");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            check_executable_for(&link, me()),
            Err(TrustError::Writable(ref dir, "others", _)) if dir == &open
        ));
    }
}
