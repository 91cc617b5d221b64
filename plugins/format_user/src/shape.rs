//! The parts of a randomuser.me user that `format_user` reads, as borrowing serde
//! types: one pass over the bytes, no map built, everything else skipped. Every value
//! is captured whatever its JSON type, so a wrong type becomes an error naming the
//! field rather than a serde error naming a line and column.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A scalar field: what it held.
#[derive(Debug)]
pub enum Leaf<'a> {
    Str(Cow<'a, str>),
    /// A number, as JSON writes it (borrowed from the record by the fast path).
    Num(Cow<'a, str>),
    Null,
    /// Any other type, by name ("a boolean", "an array", "an object").
    Other(&'static str),
}

/// An object field: its fields, or what it held instead.
#[derive(Debug)]
pub enum Node<T> {
    Obj(T),
    Null,
    Other(&'static str),
}

/// An array field: its elements, or what it held instead.
#[derive(Debug)]
pub enum List<T> {
    Arr(Vec<T>),
    Null,
    Other(&'static str),
}

/// A user object. The same shape is used for a whole response, where only `results`
/// and `error` matter (a top-level object with neither is taken as one user).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Object<'a> {
    // `some`: serde would turn `null` into `None` itself, hiding `"results": null`.
    #[serde(borrow, default, deserialize_with = "some")]
    pub results: Option<List<Node<Object<'a>>>>,
    #[serde(borrow, default, deserialize_with = "some")]
    pub error: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub gender: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub name: Option<Node<Name<'a>>>,
    #[serde(borrow)]
    pub location: Option<Node<Location<'a>>>,
    #[serde(borrow)]
    pub email: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub login: Option<Node<Login<'a>>>,
    #[serde(borrow)]
    pub dob: Option<Node<Dated<'a>>>,
    #[serde(borrow)]
    pub registered: Option<Node<Dated<'a>>>,
    #[serde(borrow)]
    pub phone: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub picture: Option<Node<Picture<'a>>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Name<'a> {
    #[serde(borrow)]
    pub first: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub last: Option<Leaf<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Location<'a> {
    #[serde(borrow)]
    pub street: Option<Node<Street<'a>>>,
    #[serde(borrow)]
    pub city: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub state: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub country: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub postcode: Option<Leaf<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Street<'a> {
    #[serde(borrow)]
    pub number: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub name: Option<Leaf<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Login<'a> {
    #[serde(borrow)]
    pub uuid: Option<Leaf<'a>>,
    #[serde(borrow)]
    pub username: Option<Leaf<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Dated<'a> {
    #[serde(borrow)]
    pub date: Option<Leaf<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Picture<'a> {
    #[serde(borrow)]
    pub medium: Option<Leaf<'a>>,
}

/// A present field, whatever it holds (`null` included).
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Skip the rest of an array or object, then name what it was.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<&'static str, A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok("an array")
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<&'static str, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok("an object")
}

/// The visitor methods every capture type shares: the scalar types it does not want
/// become `Other(kind)` (or `Null`), through `$other` and `$null`.
macro_rules! other_scalars {
    ($other:expr, $null:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other("a boolean"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
    };
}

macro_rules! other_numbers_and_strings {
    ($other:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other("a string"))
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Leaf<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Leaf<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Leaf::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Leaf::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Leaf::Num(Cow::Owned(n.to_string())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Leaf::Num(Cow::Owned(n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                let text = serde_json::Number::from_f64(n)
                    .map_or_else(|| n.to_string(), |n| n.to_string());
                Ok(Leaf::Num(Cow::Owned(text)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(Leaf::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(Leaf::Other)
            }
            other_scalars!(Leaf::Other, Leaf::Null);
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Node<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Node<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Node::Obj)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(Node::Other)
            }
            other_scalars!(Node::Other, Node::Null);
            other_numbers_and_strings!(Node::Other);
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(List::Other)
            }
            other_scalars!(List::Other, List::Null);
            other_numbers_and_strings!(List::Other);
        }
        d.deserialize_any(V(PhantomData))
    }
}
