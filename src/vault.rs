//! Provider tokens encrypted at rest: AES-256-GCM under rotating keys, each ciphertext bound to
//! its row and column so that a value copied elsewhere does not decrypt.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

// Through the parent (the crate root re-exports both): the seeder of the benchmarks
// (examples/seed) compiles this very file, so that its tokens are sealed as the app seals them.
use super::{ConfigError, Secret};

/// The version tag of the format `v1.<kid>.<base64url(nonce ‖ ciphertext)>`.
const VERSION: &str = "v1";

/// Which column a token lives in (part of the associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Token,
    RefreshToken,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Token => "token",
            Column::RefreshToken => "refresh_token",
        }
    }
}

/// The row a ciphertext belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowId<'a> {
    pub provider: &'a str,
    pub social_id: &'a str,
}

/// The keys: the first seals, every one opens.
pub(crate) struct TokenVault {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVault")
            .field(
                "kids",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn aad(column: Column, row: RowId<'_>, kid: &str) -> Vec<u8> {
    // NUL cannot occur in a provider name or kid; a social id with one would still be unambiguous
    // because it comes last.
    format!(
        "rocket_social_auth\0{VERSION}\0{kid}\0{}\0{}\0{}",
        column.name(),
        row.provider,
        row.social_id
    )
    .into_bytes()
}

impl TokenVault {
    /// Parses `token_keys` entries `"<kid>:<base64 of 32 bytes>"`; `None` when there are
    /// none (a vault always has a key to seal with).
    pub(crate) fn from_config(entries: &[Secret]) -> Result<Option<Self>, ConfigError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let key = format!("social_auth.token_keys[{i}]");
            let (kid, material) = entry.expose().split_once(':').ok_or_else(|| {
                ConfigError::new(&key, "must be \"<kid>:<base64 of 32 random bytes>\"")
            })?;
            let valid_kid = !kid.is_empty()
                && kid.len() <= 32
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_kid {
                return Err(ConfigError::new(
                    &key,
                    "has an invalid key id: use 1 to 32 letters, digits, `_` or `-`",
                ));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(ConfigError::new(
                    &key,
                    format!("repeats the key id `{kid}`"),
                ));
            }
            let bytes = STANDARD
                .decode(material.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(material.trim()))
                .map_err(|_| ConfigError::new(&key, "is not valid base64"))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                ConfigError::new(
                    &key,
                    "must hold exactly 32 bytes (`openssl rand -base64 32`)",
                )
            })?;
            keys.push((kid.to_owned(), cipher));
        }
        Ok((!keys.is_empty()).then_some(TokenVault { keys }))
    }

    /// A vault with one random key, for development only.
    pub(crate) fn ephemeral() -> Self {
        TokenVault {
            keys: vec![(
                "ephemeral".into(),
                Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng)),
            )],
        }
    }

    /// The key id that seals.
    pub(crate) fn current_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Encrypts `plain` for `column` of `row` under the current key.
    pub(crate) fn seal(&self, plain: &str, column: Column, row: RowId<'_>) -> String {
        let (kid, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad(column, row, kid),
                },
            )
            .expect("AES-GCM encryption of a short token cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{VERSION}.{kid}.{}", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Decrypts a value sealed for `column` of `row`; `None` when it does not decrypt (another
    /// row, an unknown key, tampering).
    pub(crate) fn open(&self, sealed: &str, column: Column, row: RowId<'_>) -> Option<Secret> {
        let mut parts = sealed.splitn(3, '.');
        let (version, kid, blob) = (parts.next()?, parts.next()?, parts.next()?);
        if version != VERSION {
            return None;
        }
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == kid)?;
        let blob = URL_SAFE_NO_PAD.decode(blob).ok()?;
        if blob.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad(column, row, kid),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok().map(Secret::new)
    }

    /// The key id a sealed value names, if it is in our format.
    pub(crate) fn kid_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, '.');
        (parts.next()? == VERSION).then_some(())?;
        parts.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: RowId<'static> = RowId {
        provider: "github",
        social_id: "1",
    };

    fn vault(entries: &[&str]) -> TokenVault {
        TokenVault::from_config(&entries.iter().map(|e| Secret::new(*e)).collect::<Vec<_>>())
            .unwrap()
            .expect("at least one key")
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    #[test]
    fn round_trip_and_binding() {
        let v = vault(&[K1]);
        let sealed = v.seal("gho_secret", Column::Token, ROW);
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("gho_secret"));
        assert_eq!(
            v.open(&sealed, Column::Token, ROW).unwrap().expose(),
            "gho_secret"
        );
        let other_row = RowId {
            provider: "github",
            social_id: "2",
        };
        assert!(v.open(&sealed, Column::Token, other_row).is_none());
        assert!(v.open(&sealed, Column::RefreshToken, ROW).is_none());
        assert!(v.open("gho_plain", Column::Token, ROW).is_none());
        // Flip one character of the ciphertext (not the last: its low bits may be padding).
        let mut bytes = sealed.clone().into_bytes();
        let i = bytes.len() - 8;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(v.open(&tampered, Column::Token, ROW).is_none());
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = vault(&[K1]).seal("t", Column::Token, ROW);
        let rotated = vault(&[K2, K1]);
        assert_eq!(
            rotated.open(&old, Column::Token, ROW).unwrap().expose(),
            "t"
        );
        assert_eq!(
            TokenVault::kid_of(&rotated.seal("t", Column::Token, ROW)),
            Some("k2")
        );
        assert!(vault(&[K2]).open(&old, Column::Token, ROW).is_none());
    }

    #[test]
    fn bad_entries_name_the_key() {
        for bad in [
            "nokey",
            "k:!!!",
            "k:AAEC",
            "bad kid:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ] {
            let e = TokenVault::from_config(&[Secret::new(bad)]).unwrap_err();
            assert_eq!(e.key(), "social_auth.token_keys[0]", "{bad}");
        }
        let dup = TokenVault::from_config(&[Secret::new(K1), Secret::new(K1)]).unwrap_err();
        assert_eq!(dup.key(), "social_auth.token_keys[1]");
    }

    #[test]
    fn no_keys_make_no_vault() {
        assert!(TokenVault::from_config(&[]).unwrap().is_none());
    }
}
