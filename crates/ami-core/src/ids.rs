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
//! [`Definition`]: crate::Definition
//! [`Definition::action_id`]: crate::Definition::action_id

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(SmolStr);

        impl $name {
            /// An identifier the engine itself gives (the migration's
            /// action), never a definition's.
            #[allow(dead_code)]
            pub(crate) fn engine(text: &'static str) -> Self {
                $name(SmolStr::new_static(text))
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

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                other.0 == self
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                other.0 == self.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                other.0 == *self
            }
        }
    };
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
