//! Secrets at rest: tenant external ids are sealed with AES-256-GCM.

use std::path::Path;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::DbError;

const NONCE_LEN: usize = 12;

/// Seals and opens secrets with one 256-bit key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// From 64 hex digits (e.g. `BYOC_SECRET_KEY`).
    pub fn from_hex(key: &str) -> Result<Sealer, DbError> {
        let bytes = hex::decode(key.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                DbError::Invalid("the secret key must be 64 hex digits (256 bits)".into())
            })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).expect("a 32-byte key");
        Ok(Sealer { cipher })
    }

    /// The key in `path`, created (random, mode 0600) if missing: the embedded default keeps
    /// its key beside its SQLite file.
    pub fn from_key_file(path: &Path) -> Result<Sealer, DbError> {
        let io = |e: std::io::Error| {
            DbError::Invalid(format!("secret key file {}: {e}", path.display()))
        };
        match std::fs::read_to_string(path) {
            Ok(hex) => Sealer::from_hex(&hex),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let key = hex::encode(random_bytes::<32>());
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                file.write_all(key.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Sealer::from_hex(&key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The sealer of a deployment: `key_hex` (`BYOC_SECRET_KEY`) if given; otherwise, for the
    /// embedded SQLite default only, the key file `byoc.key` beside the database file.
    pub fn for_database(db: &crate::Database, key_hex: Option<&str>) -> Result<Sealer, DbError> {
        if let Some(key) = key_hex {
            return Sealer::from_hex(key);
        }
        match db.sqlite_path() {
            Some(file) => Sealer::from_key_file(&file.with_file_name("byoc.key")),
            None => Err(DbError::Invalid(
                "BYOC_SECRET_KEY (64 hex digits) is required with Postgres: every host must share the key".into(),
            )),
        }
    }

    /// nonce || ciphertext (with tag). A fresh random nonce every time.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext.as_bytes())
                .expect("AES-GCM encryption cannot fail"),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, DbError> {
        let fail = || {
            DbError::Invalid("a sealed secret cannot be opened: wrong key or corrupted data".into())
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let sealer = Sealer::from_hex(&hex::encode([7u8; 32])).unwrap();
        let a = sealer.seal("secret-external-id");
        let b = sealer.seal("secret-external-id");
        assert_ne!(a, b, "fresh nonce each time");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(sealer.open(&a).unwrap(), "secret-external-id");
        let other = Sealer::from_hex(&hex::encode([8u8; 32])).unwrap();
        assert!(other.open(&a).is_err());
        assert!(Sealer::from_hex("abcd").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("byoc.key");
        let a = Sealer::from_key_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = Sealer::from_key_file(&path).unwrap();
        assert_eq!(b.open(&a.seal("x")).unwrap(), "x");
    }
}
