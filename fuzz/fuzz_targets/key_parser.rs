//! API key format: `validate`, `PlainApiKey::parse` and `ApiKeyHash::of_valid` (what each
//! `/v1` request runs) on arbitrary strings, checked against
//! an independent reading of the documented format (src/domain/api_keys/format.rs), plus
//! keys built from the input with a correct checksum (random input almost never has one)
//! and single-character corruptions of them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use workjet::domain::api_keys::format::{self, ApiKeyHash, CHECKSUM_LEN, KEY_LEN, KeyFormatError, PREFIX, PlainApiKey, RANDOM_LEN};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The documented format, written out independently of `validate`.
fn expected(raw: &str) -> Result<(), KeyFormatError> {
    if !raw.starts_with(PREFIX) {
        return Err(KeyFormatError::WrongPrefix);
    }
    let rest = &raw.as_bytes()[PREFIX.len()..];
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(KeyFormatError::WrongLength);
    }
    if !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::BadCharacter);
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    if format::checksum(random) != check {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(())
}

fn check(raw: &str) -> Result<(), KeyFormatError> {
    let validated = format::validate(raw);
    assert_eq!(validated, expected(raw), "validate disagrees with the documented format for {raw:?}");
    let parsed = PlainApiKey::parse(raw);
    assert_eq!(parsed.as_ref().err(), validated.err().as_ref(), "validate and parse disagree on {raw:?}");
    let on_request_path = ApiKeyHash::of_valid(raw);
    assert_eq!(on_request_path.as_ref().err(), validated.err().as_ref(), "validate and of_valid disagree on {raw:?}");
    if let Ok(key) = parsed {
        assert_eq!(key.expose_secret(), raw);
        assert_eq!(raw.len(), KEY_LEN);
        // The hint: prefix, the first 4 random characters, an ellipsis, the last 4 characters.
        let hint = key.hint();
        assert_eq!(hint, format!("{PREFIX}{}…{}", &raw[PREFIX.len()..PREFIX.len() + 4], &raw[KEY_LEN - 4..]));
        assert_eq!(hint, format::hint_of(raw));
        assert!(!hint.contains(&raw[PREFIX.len() + 4..KEY_LEN - 4]), "the hint reveals the middle of the key");
        // Hashing is deterministic, of the whole key, and survives storage.
        let hash = key.hash();
        assert!(hash == ApiKeyHash::of(raw));
        assert!(on_request_path.ok() == Some(hash), "of_valid hashes the whole key as stored");
        assert!(hash == PlainApiKey::parse(raw).expect("parsed once").hash());
        assert!(ApiKeyHash::from_slice(hash.as_bytes()) == Some(hash));
        // Debug and Display never print the secret part.
        assert!(!format!("{key:?}{key}{hash:?}").contains(&raw[PREFIX.len()..]));
        assert_eq!(key.into_secret(), raw);
    }
    validated
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary text, as UTF-8 when it is, and as the lossy decoding a header would give.
    if let Ok(text) = std::str::from_utf8(data) {
        check(text).ok();
    }
    let lossy = String::from_utf8_lossy(data);
    check(&lossy).ok();
    // The input after the prefix, as a candidate key's tail.
    check(&format!("{PREFIX}{lossy}")).ok();

    // A well-formed key from the input: 30 base62 characters and their checksum.
    if data.is_empty() {
        return;
    }
    let random: String = (0..RANDOM_LEN).map(|i| BASE62[usize::from(data[i % data.len()]) % 62] as char).collect();
    let checksum = format::checksum(random.as_bytes());
    assert_eq!(checksum.len(), CHECKSUM_LEN);
    assert!(checksum.iter().all(|b| BASE62.contains(b)));
    let checksum = std::str::from_utf8(&checksum).expect("base62 is ASCII");
    let key = format!("{PREFIX}{random}{checksum}");
    assert_eq!(check(&key), Ok(()), "a key with a correct checksum is refused: {key:?}");

    // One character replaced: a CRC-32 catches every single-character change, and the
    // six base62 digits (62^6 > 2^32) represent it without loss.
    let position = PREFIX.len() + usize::from(data[0]) % (RANDOM_LEN + CHECKSUM_LEN);
    let replacement = *data.get(1).unwrap_or(&b'-');
    if replacement != key.as_bytes()[position] && replacement.is_ascii() {
        let mut changed = key.clone().into_bytes();
        changed[position] = replacement;
        let changed = String::from_utf8(changed).expect("ASCII");
        let want = if replacement.is_ascii_alphanumeric() { KeyFormatError::BadChecksum } else { KeyFormatError::BadCharacter };
        assert_eq!(check(&changed), Err(want), "a corrupted key is not refused: {changed:?}");
    }
    // Truncated or extended keys are the wrong length; another prefix is the wrong prefix.
    assert_eq!(check(&key[..key.len() - 1]), Err(KeyFormatError::WrongLength));
    assert_eq!(check(&format!("{key}{}", random.as_bytes()[0] as char)), Err(KeyFormatError::WrongLength));
    assert_eq!(check(&key.replacen("wj_live_", "wj_test_", 1)), Err(KeyFormatError::WrongPrefix));
});
