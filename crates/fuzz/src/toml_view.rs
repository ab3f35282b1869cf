//! TOML items as plain values, so that an entry can be compared with the same entry written
//! elsewhere in another layout (a dotted key as a table, an inline table as a standard one):
//! only what containerd reads counts, never formatting or comments.

use serde_json::{Map, Value as Json};
use toml_edit::{Item, Value};

/// `item` as JSON: tables (of any kind) as objects, arrays of tables as arrays; floats and
/// datetimes as their text, since JSON cannot hold every float (NaN, infinity).
pub(crate) fn item(item: &Item) -> Json {
    match item {
        Item::None => Json::Null,
        Item::Value(v) => value(v),
        Item::Table(t) => Json::Object(
            t.iter()
                .map(|(k, i)| (k.to_owned(), self::item(i)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Json::Array(
            a.iter()
                .map(|t| {
                    Json::Object(
                        t.iter()
                            .map(|(k, i)| (k.to_owned(), self::item(i)))
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn value(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.value().clone()),
        Value::Integer(i) => Json::from(*i.value()),
        Value::Float(f) => Json::String(format!("float {:?}", f.value())),
        Value::Boolean(b) => Json::Bool(*b.value()),
        Value::Datetime(d) => Json::String(format!("datetime {}", d.value())),
        Value::Array(a) => Json::Array(a.iter().map(value).collect()),
        Value::InlineTable(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), value(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}
