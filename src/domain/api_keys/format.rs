//! The API key format.
//!
//! ```text
//! wj_live_ + 30 random base62 characters + 6-character base62 CRC32 of those 30
//! regex for secret scanners: \bwj_live_[0-9A-Za-z]{36}\b
//! ```
//!
//! The 30 random characters come from the operating system's CSPRNG with rejection sampling
//! (uniform over the 62 symbols: 30 × log2(62) ≈ 178.6 bits). The checksum is CRC-32
//! (IEEE, as zlib) of the 30 ASCII characters, written in base62 with the alphabet
//! `0-9A-Za-z`, most significant digit first, left-padded with `0` to 6 characters. It lets
//! the server reject a mistyped or invented key without a database lookup, and lets secret
//! scanners confirm a match offline. Only SHA-256 of the whole 44-character key is stored.

use std::fmt;

use rand::{Rng, TryRngCore, distr::Alphanumeric, rngs::OsRng};
use sha2::{Digest, Sha256};

/// The key prefix. It must never change: every issued key, every secret-scanner rule and
/// every client that recognises our keys depends on it.
pub const PREFIX: &str = "wj_live_";
/// Random characters after the prefix.
pub const RANDOM_LEN: usize = 30;
/// Checksum characters after the random part.
pub const CHECKSUM_LEN: usize = 6;
/// The whole key's length: 8 + 30 + 6 = 44.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed Workjet key. Checked before any database access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not start with wj_live_")]
    WrongPrefix,
    #[error("the key has the wrong length")]
    WrongLength,
    #[error("the key contains characters other than letters and digits")]
    BadCharacter,
    #[error("the key's checksum does not match (mistyped or truncated?)")]
    BadChecksum,
}

/// A raw API key. It exists only while a key is being created (to be returned once) or
/// while a request is being authenticated. `Debug` and `Display` never print it.
pub struct PlainApiKey(String);

impl PlainApiKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut rng = OsRng.unwrap_err();
        let random: String = (&mut rng).sample_iter(Alphanumeric).take(RANDOM_LEN).map(char::from).collect();
        let checksum = checksum(random.as_bytes());
        let mut key = String::with_capacity(KEY_LEN);
        key.push_str(PREFIX);
        key.push_str(&random);
        key.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
        Self(key)
    }

    /// Checks prefix, length, alphabet and checksum.
    pub fn parse(raw: &str) -> Result<Self, KeyFormatError> {
        validate(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The SHA-256 of the whole key, as stored.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.0)
    }

    /// `wj_live_` + first 4 random characters + `…` + last 4 characters.
    pub fn hint(&self) -> String {
        hint_of(&self.0)
    }

    /// The raw key, for the one response that returns it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Consumes the key into its raw string, for the one response that returns it.
    pub fn into_secret(self) -> String {
        self.0
    }
}

impl fmt::Debug for PlainApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainApiKey([redacted])")
    }
}

impl fmt::Display for PlainApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted API key]")
    }
}

/// Validates a candidate key without allocating.
pub fn validate(raw: &str) -> Result<(), KeyFormatError> {
    let Some(rest) = raw.strip_prefix(PREFIX) else {
        return Err(KeyFormatError::WrongPrefix);
    };
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(KeyFormatError::WrongLength);
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::BadCharacter);
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    // Constant shape of work whatever the input; the checksum is not a secret anyway.
    if checksum(random.as_bytes()) != check.as_bytes() {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(())
}

/// The 6-character base62 CRC-32 of `random` (on the stack: every request's key is checked).
pub fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// The display hint of a whole key.
pub fn hint_of(key: &str) -> String {
    let random = &key[PREFIX.len()..PREFIX.len() + 4];
    let last = &key[key.len() - 4..];
    format!("{PREFIX}{random}…{last}")
}

/// SHA-256 of a whole key: what the database stores and looks keys up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// The hash of a presented key, once its shape and checksum are checked (no copy of
    /// the key is made: this is every request's path).
    pub fn of_valid(raw: &str) -> Result<Self, KeyFormatError> {
        validate(raw)?;
        Ok(Self::of(raw))
    }

    /// Hashes a raw key string.
    pub fn of(raw: &str) -> Self {
        Self(Sha256::digest(raw.as_bytes()).into())
    }

    /// From stored bytes (`None` unless exactly 32).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Even a hash is a lookup handle: print only a short prefix for correlation.
        write!(f, "ApiKeyHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_keys_match_the_documented_format() {
        for _ in 0..200 {
            let key = PlainApiKey::generate();
            let raw = key.expose_secret();
            assert_eq!(raw.len(), KEY_LEN);
            assert!(raw.starts_with("wj_live_"));
            assert!(raw[8..].bytes().all(|b| b.is_ascii_alphanumeric()), "{raw}");
            assert_eq!(validate(raw), Ok(()));
        }
    }

    #[test]
    fn keys_are_unique_and_use_the_whole_alphabet() {
        let keys: Vec<String> = (0..2000).map(|_| PlainApiKey::generate().into_secret()).collect();
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        let used: HashSet<u8> = keys.iter().flat_map(|k| k.as_bytes()[8..38].to_vec()).collect();
        assert_eq!(used.len(), 62, "every base62 symbol appears in 60,000 random characters");
    }

    #[test]
    fn random_characters_are_close_to_uniform() {
        // 62 symbols × ~1,000 draws each: a chi-square far above 62 would show bias.
        let mut counts = [0u32; 256];
        let draws = 2100;
        for _ in 0..draws {
            for b in PlainApiKey::generate().expose_secret().as_bytes()[8..38].iter() {
                counts[*b as usize] += 1;
            }
        }
        let expected = (draws * RANDOM_LEN) as f64 / 62.0;
        let chi2: f64 = BASE62.iter().map(|b| (counts[*b as usize] as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 130.0, "chi-square {chi2} over 61 degrees of freedom");
    }

    #[test]
    fn checksum_is_zero_padded_base62_crc32() {
        assert_eq!(&checksum(b""), b"000000", "crc32 of nothing is 0");
        // The CRC-32 check value: crc32("123456789") = 0xCBF43926 = 3,421,780,262, which is
        // "3jZRME" in base 62 (0-9, A-Z, a-z), most significant digit first.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
    }

    #[test]
    fn parse_rejects_each_malformation_with_its_reason() {
        let good = PlainApiKey::generate().into_secret();
        assert!(PlainApiKey::parse(&good).is_ok());
        // The request path's check: the same verdicts, and the stored hash of the whole key.
        assert_eq!(ApiKeyHash::of_valid(&good).expect("valid"), PlainApiKey::parse(&good).expect("valid").hash());
        assert_eq!(ApiKeyHash::of_valid(&good[..good.len() - 1]).unwrap_err(), KeyFormatError::WrongLength);
        assert_eq!(
            ApiKeyHash::of_valid(&format!("{}a", &good[..good.len() - 1])).map(|_| ()),
            validate(&format!("{}a", &good[..good.len() - 1]))
        );
        assert_eq!(validate(&good.replacen("wj_live_", "wj_test_", 1)).unwrap_err(), KeyFormatError::WrongPrefix);
        assert_eq!(validate(&format!("sk-{}", &good[8..])).unwrap_err(), KeyFormatError::WrongPrefix);
        assert_eq!(validate("wj_live_").unwrap_err(), KeyFormatError::WrongLength);
        assert_eq!(validate(&good[..good.len() - 1]).unwrap_err(), KeyFormatError::WrongLength);
        assert_eq!(validate(&format!("{good}x")).unwrap_err(), KeyFormatError::WrongLength);
        let mut bad_char = good.clone().into_bytes();
        bad_char[20] = b'-';
        assert_eq!(validate(std::str::from_utf8(&bad_char).expect("ascii")).unwrap_err(), KeyFormatError::BadCharacter);
        // A multi-byte character of the same byte length is still not alphanumeric ASCII.
        let homoglyph = format!("{}а{}", &good[..20], &good[22..]);
        assert!(validate(&homoglyph).is_err());
        // One flipped character anywhere in the random part breaks the checksum.
        for i in 8..38 {
            let mut flipped = good.clone().into_bytes();
            flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
            assert_eq!(validate(std::str::from_utf8(&flipped).expect("ascii")).unwrap_err(), KeyFormatError::BadChecksum, "position {i}");
        }
        assert_eq!(validate(&format!("{}000000", &good[..38])).map_err(|_| ()), if &good[38..] == "000000" { Ok(()) } else { Err(()) });
    }

    #[test]
    fn hashing_is_sha256_of_the_whole_key() {
        let key = PlainApiKey::generate();
        let expected: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
        assert_eq!(key.hash().0, expected);
        assert_eq!(ApiKeyHash::from_slice(&expected), Some(key.hash()));
        assert_eq!(ApiKeyHash::from_slice(&expected[..31]), None);
    }

    #[test]
    fn debug_display_and_hint_never_reveal_the_key() {
        let key = PlainApiKey::generate();
        let raw = key.expose_secret().to_owned();
        assert!(!format!("{key:?}").contains(&raw[8..]));
        assert!(!format!("{key}").contains(&raw[8..]));
        assert!(!format!("{:?}", key.hash()).contains(&raw[8..]));
        let hint = key.hint();
        assert_eq!(hint, format!("wj_live_{}…{}", &raw[8..12], &raw[40..]));
        assert!(!hint.contains(&raw[12..40]));
    }
}
