//! The directory and mailbox the stand-in serves: the signed-in user (from the token's
//! claims), `/users` and `/me/messages` items, all deterministic.

use serde_json::{json, Value};

use super::auth::Claims;

const JOB_TITLES: &[&str] = &[
    "Software Engineer",
    "Product Manager",
    "Designer",
    "Marketing Manager",
    "Retail Manager",
];

/// The collections the stand-in pages through.
#[derive(Debug, Clone, Copy)]
pub(super) enum Collection {
    Users,
    Messages,
}

impl Collection {
    /// The collection's path under `/v1.0` and its `@odata.context` fragment.
    pub(super) fn names(self) -> (&'static str, &'static str) {
        match self {
            Collection::Users => ("users", "users"),
            Collection::Messages => ("me/messages", "users('me')/messages"),
        }
    }

    /// The `i`-th item.
    pub(super) fn item(self, i: usize) -> Value {
        match self {
            Collection::Users => user_item(i),
            Collection::Messages => json!({
                "id": format!("AAMkAGI2TG93AAA{i:06}"),
                "subject": format!("Message {i}"),
                "isRead": i.is_multiple_of(3),
                "importance": "normal",
                "receivedDateTime": format!("2024-01-{:02}T{:02}:{:02}:00Z", i / 1440 % 28 + 1, i / 60 % 24, i % 60),
            }),
        }
    }
}

/// The signed-in user, from the token's claims; the same for the same `oid`.
pub(super) fn me(claims: &Claims, graph_url: &str) -> Value {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let oid = text("oid")
        .or_else(|| text("sub"))
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let hash = fnv1a(oid.as_bytes());
    let upn = text("upn")
        .or_else(|| text("unique_name"))
        .or_else(|| text("preferred_username"))
        .unwrap_or_else(|| format!("user-{:08x}@contoso.test", hash as u32));
    let name = text("name").unwrap_or_else(|| format!("User {:08x}", hash as u32));
    let given = text("given_name").or_else(|| name.split_whitespace().next().map(str::to_owned));
    let surname = text("family_name").or_else(|| {
        let mut words = name.split_whitespace();
        words.next();
        let rest: Vec<&str> = words.collect();
        (!rest.is_empty()).then(|| rest.join(" "))
    });
    let mail = text("email").unwrap_or_else(|| upn.clone());
    json!({
        "@odata.context": format!("{graph_url}/v1.0/$metadata#users/$entity"),
        "businessPhones": [format!("+1 425 555 {:04}", hash % 10_000)],
        "displayName": name,
        "givenName": given,
        "jobTitle": JOB_TITLES[(hash % JOB_TITLES.len() as u64) as usize],
        "mail": mail,
        "mobilePhone": null,
        "officeLocation": format!("{}/{}", hash % 40 + 1, hash % 2000 + 1000),
        "preferredLanguage": "en-US",
        "surname": surname,
        "userPrincipalName": upn,
        "id": oid,
    })
}

/// The id of the `i`-th user of `/users`.
pub(super) fn user_id(i: usize) -> String {
    let i = i as u64;
    let h = fnv1a(&i.to_le_bytes());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h as u32,
        (h >> 32) as u16,
        (h >> 48) & 0xfff,
        (h >> 20) & 0xfff,
        i & 0xffff_ffff_ffff
    )
}

/// The `i`-th user of `/users`.
pub(super) fn user_item(i: usize) -> Value {
    json!({
        "businessPhones": [],
        "displayName": format!("Test User {i}"),
        "givenName": "Test",
        "jobTitle": JOB_TITLES[i % JOB_TITLES.len()],
        "mail": format!("user{i}@contoso.test"),
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "surname": format!("User {i}"),
        "userPrincipalName": format!("user{i}@contoso.test"),
        "id": user_id(i),
    })
}

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`, fixed across Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn user_ids_are_stable_and_distinct() {
        let ids: HashSet<String> = (0..1000).map(user_id).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(user_id(7), user_id(7));
        assert_eq!(user_id(7).len(), 36);
    }
}
