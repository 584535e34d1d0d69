//! The strict JSON decoder: keys folded like Go's `encoding/json` matches struct fields, map
//! keys kept exact, duplicate or case-variant fields refused, Go's leniencies accepted.

use super::*;

/// Fold a JSON key the way Go matches struct fields: ASCII case-insensitively, plus the two
/// non-ASCII letters Go folds onto ASCII (U+017F long s, U+212A Kelvin sign).
pub fn fold_key(k: &str) -> String {
    if k.is_ascii() {
        return k.to_ascii_lowercase();
    }
    k.chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, trailing garbage, too deep, or a duplicate / case-variant key.
    #[error("request body is not strict JSON: {0}")]
    Invalid(String),
}

/// Fields whose value Go decodes into a map (`map[string]…`): their keys are data, matched
/// exactly, never folded (moby `api/types/container.Config`/`HostConfig`, `network`, `volume`,
/// `swarm` types). Every other object is a struct, whose keys Go matches case-insensitively.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "sysctls",
    "driveropts",
    "options",
    "storageopt",
    "tmpfs",
    "exposedports",
    "portbindings",
    "volumes",
    "config",
    "annotations",
    "endpointsconfig",
    "buildargs",
];

/// Decode `bytes` as one JSON value. Struct field names are folded (Go matches them
/// case-insensitively) and a duplicate or case-variant field is an error, because Go merges
/// such duplicates in ways a reader of the first one would miss; keys of map-valued fields
/// ([`MAP_FIELDS`]) are kept as sent, and only an exact duplicate there is an error.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, BodyError> {
    let text = go_lenient(bytes);
    let mut de = serde_json::Deserializer::from_str(&text);
    let v = Strict { map: false }
        .deserialize(&mut de)
        .map_err(|e| BodyError::Invalid(e.to_string()))?;
    de.end().map_err(|e| BodyError::Invalid(e.to_string()))?;
    Ok(v)
}

/// Accept what Go's decoder accepts and serde_json refuses, with Go's meaning (encoding/json
/// `unquote`): invalid UTF-8 and an escaped lone surrogate (`\ud800`) in a string both become
/// U+FFFD. Returns the text unchanged when neither occurs.
fn go_lenient(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let text = String::from_utf8_lossy(bytes);
    let b = text.as_bytes();
    let hex4 = |i: usize| -> Option<u32> {
        let h = b.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut out: Option<String> = None;
    let (mut i, mut copied, mut in_str) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'"' => {
                in_str = !in_str;
                i += 1;
            }
            b'\\' if in_str => {
                if b.get(i + 1) != Some(&b'u') {
                    i += 2;
                    continue;
                }
                let Some(cp) = hex4(i + 2) else {
                    i += 2;
                    continue;
                };
                let pair = (0xD800..0xDC00).contains(&cp)
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                if pair {
                    i += 12;
                } else if (0xD800..0xE000).contains(&cp) {
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    o.push_str(&text[copied..i]);
                    o.push_str("\\ufffd");
                    i += 6;
                    copied = i;
                } else {
                    i += 6;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        None => text,
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// One value; `map`: it is the value of a map-valued field (its keys are data).
struct Strict {
    map: bool,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { map: self.map })
    }
}

struct StrictVisitor {
    map: bool,
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { map: false })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        if self.map {
            // Map keys are data: kept exactly (Go's decoder never folds them).
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate map key {key:?}"
                    )));
                }
                let v = map.next_value_seed(Strict { map: false })?;
                out.insert(key, v);
            }
            return Ok(Value::Object(out));
        }
        while let Some(folded) = map.next_key_seed(FoldedKey)? {
            if out.contains_key(&folded) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate or case-variant key {folded:?} (keys compared case-insensitively)"
                )));
            }
            let is_map = MAP_FIELDS.contains(&folded.as_str());
            let v = map.next_value_seed(Strict { map: is_map })?;
            out.insert(folded, v);
        }
        Ok(Value::Object(out))
    }
}

/// An object key, folded while it is read (one allocation per key).
struct FoldedKey;

impl<'de> DeserializeSeed<'de> for FoldedKey {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FoldedKey {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(fold_key(v))
    }
}
