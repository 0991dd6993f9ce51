//! Secrets at rest: tenant external ids are sealed with AES-256-GCM.

use std::path::Path;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::DbError;

const NONCE_LEN: usize = 12;
/// The first byte of a value sealed bound to its owner.
const BOUND: u8 = 0xb2;

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

    /// `BOUND || nonce || ciphertext (with tag)`, the ciphertext bound to `owner` (the
    /// tenant's slug) as associated data: a sealed value copied to another tenant's row does
    /// not open there. A fresh random nonce every time.
    pub fn seal(&self, owner: &str, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = vec![BOUND];
        out.extend_from_slice(&nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: owner.as_bytes(),
        };
        out.extend(
            self.cipher
                .encrypt(&nonce, payload)
                .expect("AES-GCM encryption cannot fail"),
        );
        out
    }

    /// The secret `owner` sealed.
    pub fn open(&self, owner: &str, sealed: &[u8]) -> Result<String, DbError> {
        self.open_any(owner, sealed).map(|(text, _)| text)
    }

    /// The secret, and whether it was sealed before values were bound to their owner (it
    /// is then sealed again: [`crate::Database::bind_sealed_secrets`]).
    pub(crate) fn open_any(&self, owner: &str, sealed: &[u8]) -> Result<(String, bool), DbError> {
        let fail = || {
            DbError::Invalid(
                "a sealed secret cannot be opened: wrong key, wrong tenant or corrupted data"
                    .into(),
            )
        };
        let bound = sealed
            .split_first()
            .filter(|(first, _)| **first == BOUND)
            .and_then(|(_, rest)| self.decrypt(rest, owner.as_bytes()));
        let (plain, legacy) = match bound {
            Some(plain) => (plain, false),
            None => (self.decrypt(sealed, b"").ok_or_else(fail)?, true),
        };
        Ok((String::from_utf8(plain).map_err(|_| fail())?, legacy))
    }

    fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, msg) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg, aad })
            .ok()
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
        let a = sealer.seal("acme", "secret-external-id");
        let b = sealer.seal("acme", "secret-external-id");
        assert_ne!(a, b, "fresh nonce each time");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(sealer.open("acme", &a).unwrap(), "secret-external-id");
        let other = Sealer::from_hex(&hex::encode([8u8; 32])).unwrap();
        assert!(other.open("acme", &a).is_err());
        assert!(Sealer::from_hex("abcd").is_err());
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_owner() {
        let sealer = Sealer::from_hex(&hex::encode([7u8; 32])).unwrap();
        let acme = sealer.seal("acme", "acme-id");
        assert!(
            sealer.open("globex", &acme).is_err(),
            "copied to another tenant"
        );
        // One sealed before values were bound opens (once, to be sealed again) for anyone.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut legacy = nonce.to_vec();
        legacy.extend(sealer.cipher.encrypt(&nonce, b"old-id".as_slice()).unwrap());
        assert_eq!(
            sealer.open_any("acme", &legacy).unwrap(),
            ("old-id".into(), true)
        );
        assert_eq!(
            sealer.open_any("acme", &acme).unwrap(),
            ("acme-id".into(), false)
        );
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
        assert_eq!(b.open("t", &a.seal("t", "x")).unwrap(), "x");
    }
}
