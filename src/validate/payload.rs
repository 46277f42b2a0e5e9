//! The claims the checks read, borrowed from the decoded payload.
//!
//! # Where it sits
//!
//! [`Validator`](super::Validator) parses a token's payload once into
//! [`Claims`]: only the registered and Entra claims that validation and the
//! [`Principal`](super::Principal) need, strings borrowed from the payload where
//! JSON allows it (no escapes), every other claim skipped. The map of every claim
//! ([`Principal::claims`](super::Principal::claims)) is parsed from the same
//! payload later, only if a handler asks for it.
//!
//! # What it guarantees
//!
//! Each claim keeps the shape it had in the JSON ([`Json`]): absent is `None`,
//! `null` is `Some(Json::Null)`, so that the checks tell a missing claim from a
//! claim of the wrong type exactly as they would on a `serde_json::Value`. A
//! payload naming one of these claims twice is refused (malformed), instead of
//! letting the last one win.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A claim's JSON value, as far as the checks tell values apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A string, borrowed from the payload unless it had escapes.
    Str(Cow<'a, str>),
    /// An integer that fits an `i64`.
    Int(i64),
    /// Any other number (fractional, or an integer beyond `i64`).
    Float(f64),
    /// An array.
    List(Vec<Json<'a>>),
    /// An object (its members are skipped).
    Object,
}

impl<'a> Json<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Json::Float(v as f64), Json::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Json::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Json::Object)
    }
}

/// A claim that is present: `null` included, as [`Json::Null`].
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Json<'de>>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// The claims validation and the principal read; every other claim is skipped.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Claims<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) tid: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) iss: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) aud: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) exp: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) nbf: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) ver: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) scp: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) roles: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) nonce: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) azp: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) appid: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) idtyp: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) oid: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) sub: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) name: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) preferred_username: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) upn: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) unique_name: Option<Json<'a>>,
}

impl<'a> Claims<'a> {
    /// Parses a decoded payload, which must be a JSON object (serde would take an
    /// array for a struct too).
    pub(crate) fn parse(payload: &'a [u8]) -> Result<Self, serde_json::Error> {
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(de::Error::custom("the payload is not a JSON object"));
        }
        serde_json::from_slice(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_keep_their_json_shape() {
        let c: Claims<'_> = serde_json::from_str(
            r#"{"tid":"t","exp":5,"nbf":5.5,"ver":null,"aud":["a",1,{"x":[1]}],
                "scp":"a\u0062","big":18446744073709551615,"oid":true,"other":{"a":[]}}"#,
        )
        .unwrap();
        assert_eq!(c.tid, Some(Json::Str("t".into())));
        assert!(matches!(c.tid, Some(Json::Str(Cow::Borrowed(_)))));
        assert_eq!(c.exp, Some(Json::Int(5)));
        assert_eq!(c.nbf, Some(Json::Float(5.5)));
        assert_eq!(c.ver, Some(Json::Null));
        assert_eq!(
            c.aud,
            Some(Json::List(vec![
                Json::Str("a".into()),
                Json::Int(1),
                Json::Object
            ]))
        );
        assert_eq!(c.scp.as_ref().and_then(Json::as_str), Some("ab"));
        assert_eq!(c.oid, Some(Json::Bool));
        assert_eq!(c.sub, None);
        let big: Claims<'_> = serde_json::from_str(r#"{"exp":18446744073709551615}"#).unwrap();
        assert_eq!(big.exp, Some(Json::Float(18446744073709551615.0)));
    }

    #[test]
    fn a_claim_named_twice_is_refused() {
        assert!(Claims::parse(br#"{"tid":"a","tid":"b"}"#).is_err());
        assert!(Claims::parse(br#" [1]"#).is_err());
        assert!(Claims::parse(br#"1"#).is_err());
        assert!(Claims::parse(br#" {}"#).is_ok());
    }
}
