//! [`Storage`] on a file, replaced atomically.
//!
//! `store` writes the whole image to a new `PATH.tmp` (created exclusively,
//! mode 0600, never through a symbolic link), fsyncs it, renames it over
//! `PATH` and fsyncs the directory. A crash at any point leaves either the old
//! or the new image at `PATH`, never a mix; a stale `PATH.tmp` left behind by
//! an interrupted write is ignored by `load`, and the next `store` unlinks it
//! (the name only: a symbolic link planted there is removed, what it points
//! to is never opened) before creating its own.
//!
//! `store` returns only once the new image is durable (the file and the
//! rename fsynced): the firmware answers a command after its image is
//! stored, so an acknowledged write survives a kill of the process and a
//! power cut alike. The same holds for the OTP file, which the firmware
//! writes (on first start) before the first flash image: a crash between
//! the two leaves a device secret and no image, a blank device that starts;
//! never an image without its secret.
//!
//! The image itself is sealed by the firmware (`picohsm_firmware::store`):
//! this file only has to make the replacement atomic and durable, and keep
//! other users out of the files.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use picohsm_firmware::{Storage, StorageError};

/// A flash or OTP image kept in one file.
#[derive(Debug, Clone)]
pub struct FileStorage {
    path: PathBuf,
}

impl FileStorage {
    /// Storage backed by `path`. Nothing is touched until the first
    /// [`Storage::load`] or [`Storage::store`]; a missing file is a blank
    /// device.
    pub fn new(path: impl Into<PathBuf>) -> FileStorage {
        FileStorage { path: path.into() }
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file a `store` writes before renaming: `PATH.tmp`.
    pub fn tmp_path(&self) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(".tmp");
        PathBuf::from(name)
    }

    /// The image, `None` if the file does not exist, or why it cannot be
    /// read.
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(image) => Ok(Some(image)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks that the image can be read (or does not exist yet), so that a
    /// caller can fail with a clear message before a card is built on it.
    pub fn check(&self) -> io::Result<()> {
        self.read().map(|_| ())
    }

    /// Creates the temporary file: `O_CREAT | O_EXCL | O_NOFOLLOW`, mode
    /// 0600, so a file or symbolic link someone put at that path is never
    /// written through. A leftover is unlinked and the creation tried once
    /// more; if something is there again, the write fails.
    fn create_tmp(&self, tmp: &Path) -> io::Result<File> {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(tmp)
        };
        match create() {
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ELOOP) =>
            {
                // unlink(2) removes the name, never a symbolic link's target.
                fs::remove_file(tmp)?;
                create()
            }
            r => r,
        }
    }

    fn write_atomically(&self, image: &[u8]) -> io::Result<()> {
        let tmp = self.tmp_path();
        {
            let mut f = self.create_tmp(&tmp)?;
            if let Err(e) = f.write_all(image).and_then(|()| f.sync_all()) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
        fs::rename(&tmp, &self.path)?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

impl Storage for FileStorage {
    /// Reads the image, or `None` if the file does not exist. A file that
    /// exists but cannot be read is an error (logged with its name and the
    /// reason): treating it as a blank device would let the card create a
    /// new identity over the old one.
    fn load(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        self.read().map_err(|e| {
            log::error!("cannot read the image {}: {e}", self.path.display());
            StorageError
        })
    }

    fn store(&mut self, image: &[u8]) -> Result<(), StorageError> {
        self.write_atomically(image).map_err(|e| {
            log::error!("cannot write the image {}: {e}", self.path.display());
            StorageError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "picohsm-fs-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_file_is_blank() {
        let d = TempDir::new();
        let mut s = FileStorage::new(d.0.join("card.flash"));
        assert_eq!(s.load().unwrap(), None);
        s.check().unwrap();
    }

    #[test]
    fn round_trip_and_replace() {
        let d = TempDir::new();
        let path = d.0.join("card.flash");
        let mut s = FileStorage::new(&path);
        s.store(b"first image").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"first image"[..]));
        s.store(b"2nd").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"2nd"[..]));
        // A new instance on the same file sees the same image.
        assert_eq!(
            FileStorage::new(&path).load().unwrap().as_deref(),
            Some(&b"2nd"[..])
        );
        assert!(!s.tmp_path().exists(), "the temporary file is renamed away");
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
        s.store(b"").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&b""[..]));
    }

    #[test]
    fn leftover_tmp_is_ignored() {
        let d = TempDir::new();
        let path = d.0.join("card.flash");
        let mut s = FileStorage::new(&path);
        assert_eq!(s.tmp_path(), d.0.join("card.flash.tmp"));

        // Interrupted before the first rename: still a blank device.
        fs::write(s.tmp_path(), b"half-writ").unwrap();
        assert_eq!(s.load().unwrap(), None);

        s.store(b"good image").unwrap();
        // Interrupted after writing the temporary file, before the rename.
        fs::write(s.tmp_path(), b"torn").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"good image"[..]));
        assert_eq!(
            FileStorage::new(&path).load().unwrap().as_deref(),
            Some(&b"good image"[..])
        );

        // The next store overwrites the stale temporary file.
        s.store(b"newer image").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"newer image"[..]));
        assert!(!s.tmp_path().exists());
    }

    #[test]
    fn symlink_at_the_tmp_path_is_not_followed() {
        let d = TempDir::new();
        let path = d.0.join("card.flash");
        let mut s = FileStorage::new(&path);
        let victim = d.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, s.tmp_path()).unwrap();
        s.store(b"image").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"image"[..]));
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(s.tmp_path()).is_err());

        // A dangling link: its target is not created.
        let ghost = d.0.join("ghost");
        std::os::unix::fs::symlink(&ghost, s.tmp_path()).unwrap();
        s.store(b"image 2").unwrap();
        assert!(!ghost.exists());
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"image 2"[..]));
    }

    #[test]
    fn a_directory_at_the_tmp_path_fails_the_write_and_keeps_the_image() {
        let d = TempDir::new();
        let path = d.0.join("card.flash");
        let mut s = FileStorage::new(&path);
        s.store(b"kept").unwrap();
        fs::create_dir(s.tmp_path()).unwrap();
        assert_eq!(s.store(b"new"), Err(StorageError));
        assert_eq!(s.load().unwrap().as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn an_unreadable_image_is_an_error_not_a_blank_device() {
        let d = TempDir::new();
        let path = d.0.join("card.flash");
        // A directory where the image should be: read(2) fails with EISDIR
        // (file modes do not stop root, which the tests may run as).
        fs::create_dir(&path).unwrap();
        let mut s = FileStorage::new(&path);
        assert_eq!(s.load(), Err(StorageError));
        let e = s.check().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");
        // The card does not start on it, and says why in a sentence.
        let err = picohsm_firmware::Card::new(
            Box::new(s),
            Box::new(FileStorage::new(d.0.join("card.flash.otp"))),
            Box::new(rand_core::UnwrapErr(getrandom::SysRng)),
            picohsm_firmware::CardConfig::default(),
        )
        .err()
        .expect("refused");
        assert_eq!(err.to_string(), "the flash image cannot be read");
        assert!(
            !d.0.join("card.flash.otp").exists(),
            "no device secret is made for an image that cannot be read"
        );
    }

    #[test]
    fn relative_path_in_cwd_has_a_directory() {
        // `parent()` of a bare file name is "", which must mean ".".
        let s = FileStorage::new("x.flash");
        assert_eq!(s.tmp_path(), PathBuf::from("x.flash.tmp"));
    }

    #[test]
    fn store_into_missing_directory_fails() {
        let d = TempDir::new();
        let mut s = FileStorage::new(d.0.join("no/such/dir/card.flash"));
        assert_eq!(s.store(b"x"), Err(StorageError));
    }
}
