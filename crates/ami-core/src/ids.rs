//! Identifiers of a definition's items: agencies, roles, states, actions,
//! verdicts, pièce kinds and programmes.
//!
//! Each is its own type, so that a state cannot be passed where an action is
//! expected. A program obtains one from a validated [`Definition`] (for
//! instance [`Definition::action_id`], which answers `None` for a word the
//! definition does not have); there is no public constructor. They
//! deserialize from a journal the engine wrote, where each event records the
//! identifiers of the definition it was decided under.
//!
//! # Interned
//!
//! An identifier is a pointer to the one copy of its text the process
//! keeps (it is *interned*): copying one copies a pointer, and two
//! identifiers are equal exactly when they point to the same copy, which
//! the engine compares without reading the text. Each distinct text is
//! kept once, for the life of the process. That is bounded because
//! identifiers are only made from definitions and from journals and
//! projections the engine wrote (where they are a definition's words), never
//! from what a client sends: a service turns a client's text into an
//! identifier through its definition ([`Definition::action_id`]…), which
//! answers with the definition's own identifier or `None`. (A journal
//! altered by hand could add words of its own: at most as many as it holds.)
//!
//! Hashing and ordering are those of the text, so that an identifier and
//! the `&str` it borrows as agree in a `HashMap` or a `BTreeMap`; the JSON
//! form is the text.
//!
//! [`Definition`]: crate::Definition
//! [`Definition::action_id`]: crate::Definition::action_id

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, PoisonError, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An interned text: a pointer to the process's one copy of it. Only
/// [`Symbol::intern`] makes one, so that equal texts are the same pointer.
#[derive(Clone, Copy)]
struct Symbol(&'static &'static str);

/// The copies kept, by text.
fn interner() -> &'static RwLock<HashMap<&'static str, Symbol>> {
    static INTERNER: OnceLock<RwLock<HashMap<&'static str, Symbol>>> = OnceLock::new();
    INTERNER.get_or_init(Default::default)
}

impl Symbol {
    /// The symbol of `text`, made (and its text kept for good) the first
    /// time it is asked for.
    fn intern(text: &str) -> Symbol {
        let table = interner();
        // The table is only ever inserted into, whole entries at a time: a
        // panic elsewhere while it was locked leaves it sound.
        if let Some(symbol) = table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(text)
        {
            return *symbol;
        }
        let mut table = table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(symbol) = table.get(text) {
            return *symbol;
        }
        let kept: &'static str = Box::leak(Box::from(text));
        let symbol = Symbol(Box::leak(Box::new(kept)));
        table.insert(kept, symbol);
        symbol
    }

    fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Symbol) -> bool {
        // One copy per text: the same text is the same pointer.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Symbol {}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Symbol) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Symbol) -> Ordering {
        if self == other {
            Ordering::Equal
        } else {
            compare_text(self.as_str(), other.as_str())
        }
    }
}

/// The order of two texts, as `str` orders them (byte by byte), compared
/// in place: an identifier is a few bytes, fewer than a call to `memcmp`
/// costs.
fn compare_text(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, for `Borrow<str>`.
        self.as_str().hash(state);
    }
}

/// The text equals `other`: at once when `other` is the interned copy
/// itself, else by comparing the characters.
fn same_text(text: &'static str, other: &str) -> bool {
    (std::ptr::eq(text.as_ptr(), other.as_ptr()) && text.len() == other.len()) || text == other
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Symbol);

        impl $name {
            /// An identifier the engine itself gives (the migration's
            /// action), never a definition's.
            #[allow(dead_code)]
            pub(crate) fn engine(text: &'static str) -> Self {
                $name(Symbol::intern(text))
            }

            /// The identifier as written in the definition (ASCII).
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                self.0.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.0.as_str()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.0.as_str(), f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.0.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Visitor).map($name)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                same_text(self.0.as_str(), other)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                same_text(self.0.as_str(), other)
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                same_text(other.0.as_str(), self)
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                same_text(self.0.as_str(), other)
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                same_text(other.0.as_str(), self)
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                same_text(other.0.as_str(), self)
            }
        }
    };
}

/// Reads an identifier's text without keeping it: the interner copies it
/// once, the first time.
struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = Symbol;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As a text field says it, so that a refusal reads the same.
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Symbol, E> {
        Ok(Symbol::intern(text))
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Symbol, E> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Symbol::intern(text)),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(bytes), &self)),
        }
    }
}

identifier!(
    /// An agency of the definition (`dar`, `acv`, `ti`): who may take an action.
    AgencyId
);
identifier!(
    /// A role within an agency (`agent`, `responsable`); roles are ranked.
    RoleId
);
identifier!(
    /// A state a dossier may be in (`recu`, `instruit`, `laureat`…).
    StateId
);
identifier!(
    /// An action of the definition (`deposer`, `instruire`, `avis_acv`…).
    ActionId
);
identifier!(
    /// A verdict an action may carry (`favorable`, `reserve`, `defavorable`).
    VerdictId
);
identifier!(
    /// A kind of pièce a dossier holds (`dossier_candidature`…).
    PieceKind
);
identifier!(
    /// A programme a dossier may fall under (`acv`, `ti`).
    ProgrammeId
);

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> ActionId {
        ActionId(Symbol::intern(text))
    }

    #[test]
    fn equal_texts_are_one_copy_and_compare_as_their_text() {
        let (a, b) = (action("instruire"), action("instruire"));
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(a, b);
        let c = action("avis_acv");
        assert_ne!(a, c);
        assert_eq!(c.cmp(&a), "avis_acv".cmp("instruire"));
        for (x, y) in [
            ("a", "b"),
            ("ab", "a"),
            ("avis_ti", "avis_acv"),
            ("", "a"),
            ("x", "x"),
        ] {
            assert_eq!(compare_text(x, y), x.cmp(y), "{x} {y}");
            assert_eq!(action(x).cmp(&action(y)), x.cmp(y), "{x} {y}");
        }
        // The interned copy itself, and another copy of the text.
        let copy = String::from("instruire");
        assert_eq!(a, *b.as_str());
        assert_eq!(a, copy);
        assert_eq!(copy.as_str(), a);
        assert_ne!(a, "instruir");
        let json = serde_json::to_string(&a).expect("serializes");
        assert_eq!(json, r#""instruire""#);
        let back: ActionId = serde_json::from_str(&json).expect("deserializes");
        assert!(std::ptr::eq(back.as_str(), a.as_str()));
        let refusal = serde_json::from_str::<ActionId>("3").expect_err("not a text");
        assert_eq!(
            refusal.to_string(),
            "invalid type: integer `3`, expected a string at line 1 column 1"
        );
        assert_eq!(format!("{a:?} {a}"), r#""instruire" instruire"#);
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains("instruire"));
    }
}
