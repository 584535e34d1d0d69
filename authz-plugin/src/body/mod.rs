//! Request bodies, read the way dockerd reads them and then some: a strict JSON decoder that
//! folds keys like Go's `encoding/json` (ASCII case-insensitive, `ſ`→`s`, `K`→`k`) and refuses
//! any object with duplicate or case-variant keys, and the extraction of the [`Facts`] that
//! policy predicates look at. Nothing here decides; unknown shapes only ever add facts.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::containers::Risk;
use crate::route::clean_path;

/// Host namespace names, as facts and policies spell them.
pub const HOST_NAMESPACES: &[&str] = &["network", "pid", "ipc", "uts", "userns", "cgroup"];

mod facts;
mod normalize;
mod strict;

pub use facts::*;
pub use normalize::*;
pub use strict::*;

#[cfg(test)]
mod tests;
