//! Random identifiers, digests, encodings and clock helpers shared by the stand-in.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// `N` bytes from the system random number generator.
pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator is available");
    bytes
}

/// A random version-4 GUID, lowercase and hyphenated (the form Entra uses for ids).
pub(super) fn random_guid() -> String {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_guid(&bytes)
}

/// A GUID derived deterministically from `parts` (same parts, same GUID).
pub(super) fn derived_guid(parts: &[&str]) -> String {
    let digest = sha256(parts.join("\n").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_guid(&bytes)
}

fn format_guid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `s` is a GUID in the 8-4-4-4-12 hex form (either case).
pub(super) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// SHA-256 of `data`.
pub(super) fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// SHA-1 of `data` (certificate thumbprints only).
pub(super) fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// base64url without padding (JOSE encoding).
pub(super) fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Standard base64 with padding (`x5c`, PEM, `aio`).
pub(super) fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Seconds since the Unix epoch (0 for times before it).
pub(super) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A UTC calendar time: year, month, day, hour, minute, second.
pub(super) struct CivilTime {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
}

impl CivilTime {
    /// Converts Unix seconds to UTC (Howard Hinnant's `civil_from_days`).
    pub(super) fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // All components below are range-bounded by construction.
        let small = |v: i64| u32::try_from(v).unwrap_or(0);
        CivilTime {
            year,
            month: small(month),
            day: small(day),
            hour: small(rem / 3600),
            minute: small(rem % 3600 / 60),
            second: small(rem % 60),
        }
    }

    /// The format of Graph's `innerError.date`: `2024-05-01T12:34:56`.
    pub(super) fn graph_date(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// The `timestamp` format of Entra's error bodies: `2024-05-01 12:34:56Z`.
    pub(super) fn entra_timestamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_lowercase_hyphenated_v4() {
        let g = random_guid();
        assert!(is_guid(&g), "{g}");
        assert_eq!(g, g.to_lowercase());
        assert_eq!(&g[14..15], "4");
        assert_ne!(random_guid(), g);
        assert_eq!(derived_guid(&["a", "b"]), derived_guid(&["a", "b"]));
        assert_ne!(derived_guid(&["a", "b"]), derived_guid(&["ab"]));
        assert!(is_guid(&derived_guid(&["x"])));
    }

    #[test]
    fn guid_recognition() {
        assert!(is_guid("9188040D-6C67-4C5B-B112-36A304B66DAD"));
        assert!(!is_guid("common"));
        assert!(!is_guid("9188040d-6c67-4c5b-b112-36a304b66da"));
        assert!(!is_guid("9188040d-6c67-4c5b-b112-36a304b66dadd"));
        assert!(!is_guid("9188040g-6c67-4c5b-b112-36a304b66dad"));
        assert!(!is_guid("9188040d6c674c5bb11236a304b66dad"));
    }

    #[test]
    fn civil_time() {
        assert_eq!(
            CivilTime::from_unix(0).entra_timestamp(),
            "1970-01-01 00:00:00Z"
        );
        assert_eq!(
            CivilTime::from_unix(1_709_210_096).entra_timestamp(),
            "2024-02-29 12:34:56Z"
        );
        assert_eq!(
            CivilTime::from_unix(951_782_400).entra_timestamp(),
            "2000-02-29 00:00:00Z"
        );
    }
}
