//! Integers in JSON bodies, as JSON Schema counts them: `1.0` is the
//! integer 1 (JSON Schema 2020-12 §6.3 of the validation vocabulary), so a
//! client whose language writes every number as a double (JavaScript,
//! a spreadsheet's export) is not refused for `"expected_version": 4.0`.
//! A fraction, a negative number or one past the type's range still is.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// Largest double below which every integer is exact (2^53).
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// An unsigned integer type a body field may hold.
pub trait Unsigned: TryFrom<u64> + Copy {
    /// serde's name of the type (`u64`), which the French explanations of
    /// a refused body know.
    const NAME: &'static str;
}

impl Unsigned for u64 {
    const NAME: &'static str = "u64";
}
impl Unsigned for u32 {
    const NAME: &'static str = "u32";
}
impl Unsigned for usize {
    const NAME: &'static str = "usize";
}

struct UnsignedVisitor<T>(PhantomData<T>);

impl<T: Unsigned> UnsignedVisitor<T> {
    fn fit<E: de::Error>(n: u64, shown: Unexpected) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::invalid_value(shown, &T::NAME))
    }
}

impl<'de, T: Unsigned> Visitor<'de> for UnsignedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::NAME)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n, Unexpected::Unsigned(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let shown = Unexpected::Signed(n);
        u64::try_from(n)
            .map_err(|_| E::invalid_value(shown, &T::NAME))
            .and_then(|n| Self::fit(n, shown))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<T, E> {
        if f.fract() == 0.0 && (0.0..EXACT_LIMIT).contains(&f) {
            // Exact: an integral double below 2^53 converts without loss.
            Self::fit(f as u64, Unexpected::Float(f))
        } else {
            Err(E::invalid_type(Unexpected::Float(f), &T::NAME))
        }
    }
}

/// `#[serde(deserialize_with = "integral::unsigned")]`
pub fn unsigned<'de, D: Deserializer<'de>, T: Unsigned>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(UnsignedVisitor(PhantomData))
}

/// `#[serde(default, deserialize_with = "integral::optional")]`: null or
/// absent is `None`.
pub fn optional<'de, D: Deserializer<'de>, T: Unsigned>(d: D) -> Result<Option<T>, D::Error> {
    struct OptionalVisitor<T>(PhantomData<T>);
    impl<'de, T: Unsigned> Visitor<'de> for OptionalVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("option")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            unsigned(d).map(Some)
        }
    }
    d.deserialize_option(OptionalVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::unsigned")]
        n: u64,
        #[serde(default, deserialize_with = "super::optional")]
        small: Option<u32>,
    }

    fn read(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_doubles_are_integers() {
        let b = read(r#"{"n": 594.0, "small": 1.0}"#).unwrap();
        assert_eq!((b.n, b.small), (594, Some(1)));
        let b = read(r#"{"n": 7, "small": null}"#).unwrap();
        assert_eq!((b.n, b.small), (7, None));
        assert_eq!(read(r#"{"n": 0e0}"#).unwrap().n, 0);
    }

    #[test]
    fn fractions_negatives_and_overflows_are_refused() {
        for json in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "1"}"#,
            r#"{"n": 1, "small": 4294967296}"#,
            r#"{"n": 1, "small": 4294967296.0}"#,
        ] {
            assert!(read(json).is_err(), "{json} was accepted");
        }
    }
}
