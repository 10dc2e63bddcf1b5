//! Argon2id password hashes (PHC strings). Hashing is CPU work: call these off the async threads.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Usernames are 3–64 characters of `[A-Za-z0-9_.-]`.
///
/// # Errors
/// What the rule is, when `name` breaks it.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if (3..=64).contains(&name.len()) && ok_chars {
        Ok(())
    } else {
        Err("username must be 3-64 characters of A-Z, a-z, 0-9, _ . -")
    }
}

/// Passwords are 8–256 characters.
///
/// # Errors
/// What the rule is, when `password` breaks it.
pub fn check_password(password: &str) -> Result<(), &'static str> {
    if (8..=256).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err("password must be 8-256 characters")
    }
}

/// Hashes `password` with Argon2id, default parameters and a random salt.
///
/// # Errors
/// Only if the random source fails.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default().hash_password(password.as_bytes())?.to_string())
}

/// Checks `password` against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Spends the same time as [`verify`] for a username that does not exist, so response times
/// do not tell which usernames are registered.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("imgedge-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_does_not() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn usernames_follow_the_contract() {
        assert!(check_username("alice_1.b-c").is_ok());
        for bad in ["ab", "with space", "ünïcode", &"x".repeat(65), "a/b"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"é".repeat(256)).is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }
}
