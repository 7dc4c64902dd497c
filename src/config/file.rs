//! Reading a file the operator named (config, web config, spec, certificates, secrets,
//! models) without trusting what it turns out to be: a regular file, of bounded size.
//!
//! `/dev/zero` would be read until memory runs out and a FIFO would block the reader
//! (on reload, the daemon) forever, so the file is opened non-blocking, checked with
//! `fstat` on the open descriptor (no race with a rename), and read to at most its
//! limit.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Limit for small text inputs: configs, web configs, secrets, certificates.
pub const SMALL: u64 = 1 << 20;

/// Open `path` for reading, refusing anything but a regular file of at most `max`
/// bytes. The error says which rule was broken, never the file's content.
pub fn open_regular(path: &Path, max: u64) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("too large ({} bytes, at most {max})", meta.len()),
        ));
    }
    Ok(f)
}

/// The bytes of a regular file of at most `max` bytes (see [`open_regular`]). A file
/// that grows past `max` while it is read is refused too.
pub fn read_bytes(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = open_regular(path, max)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("too large (more than {max} bytes)"),
        ));
    }
    Ok(buf)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused() {
        let e = read_text(Path::new("/dev/zero"), SMALL).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Would block forever without O_NONBLOCK: no writer ever opens it.
        assert_eq!(
            read_text(&fifo, SMALL).unwrap_err().to_string(),
            "not a regular file"
        );
        assert!(read_text(dir.path(), SMALL).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2000]).unwrap();
        assert!(read_text(&big, 1000)
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert_eq!(read_text(&big, 2000).unwrap().len(), 2000);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_text(&big, 10).unwrap_err().to_string(),
            "not valid UTF-8"
        );
    }
}
