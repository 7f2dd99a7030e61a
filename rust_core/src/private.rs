//! Files and directories only the server's user may read, whatever the process umask: the
//! journal, the execution logs and the worker logs hold every order of every account.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates (or truncates) a file for writing, mode 0600.
///
/// # Errors
/// I/O errors.
pub fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Opens a file for appending, creating it with mode 0600 (an existing file keeps its mode).
///
/// # Errors
/// I/O errors.
pub fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Creates a directory and its missing parents, mode 0700 (existing ones keep theirs).
///
/// # Errors
/// I/O errors.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_directories_are_private_whatever_the_umask() {
        // Under the usual umask (022) the defaults would be 0755 and 0644.
        let dir = std::env::temp_dir().join(format!("mt5exec-private-{}", std::process::id()));
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        create_dir(&dir.join("a/b")).expect("dirs");
        let file = dir.join("a/b/f");
        drop(create(&file).expect("create"));
        let appended = dir.join("a/b/g");
        drop(append(&appended).expect("append"));
        assert_eq!(mode(&dir.join("a")), 0o700);
        assert_eq!(mode(&dir.join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&appended), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
