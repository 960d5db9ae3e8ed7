//! The applier on bodies built directly; files read the way Nomad reads them are tested by the
//! drivers' front ends.

use super::*;

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn body(entries: Vec<(&str, Input)>) -> Node {
    Node::new(Input::Object(
        entries
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    Node {
                        value: v,
                        line: Some(3),
                    },
                )
            })
            .collect(),
    ))
}

#[test]
fn numbers_encode_like_go_cty() {
    assert_eq!(encode(&number_to_msgpack("300")), hex("cd 01 2c"));
    assert_eq!(encode(&number_to_msgpack("-100")), hex("d0 9c"));
    assert_eq!(encode(&number_to_msgpack("0.1")), hex("a3 30 2e 31"));
    let mut big = hex("cf");
    big.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(encode(&number_to_msgpack("18446744073709551615")), big);
}

#[test]
fn unknown_keys_are_invalid_labels_with_their_line() {
    let spec = Spec::object([("image", Spec::attr("image", "string"))]);
    let (_, diags) = apply(
        &spec,
        &body(vec![
            ("image", Input::String("x".into())),
            ("imgae", Input::String("y".into())),
        ]),
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!(
        diags[0].message,
        "Invalid label: no argument or block type is named \"imgae\""
    );
    assert_eq!(diags[0].line, Some(3));
}

#[test]
fn values_convert_to_the_attribute_type_and_absent_ones_are_nil() {
    let spec = Spec::object([
        ("s", Spec::attr("s", "string")),
        ("n", Spec::attr("n", "number")),
        ("l", Spec::attr("l", "list(string)")),
        ("absent", Spec::attr("absent", "bool")),
    ]);
    let (value, diags) = apply(
        &spec,
        &body(vec![
            ("s", Input::Number("5".into())),
            ("n", Input::String("12".into())),
            (
                "l",
                Input::List(vec![
                    Node::new(Input::Number("1".into())),
                    Node::new(Input::Bool(true)),
                ]),
            ),
        ]),
    );
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        value,
        Value::Map(vec![
            (Value::from("absent"), Value::Nil),
            (
                Value::from("l"),
                Value::Array(vec![Value::from("1"), Value::from("true")])
            ),
            (Value::from("n"), Value::from(12)),
            (Value::from("s"), Value::from("5")),
        ])
    );
    let (_, diags) = apply(&spec, &body(vec![("n", Input::String("twelve".into()))]));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].path.to_string(), "n");
}

#[test]
fn unknown_values_are_warnings() {
    let spec = Spec::object([("image", Spec::attr("image", "string"))]);
    let (value, diags) = apply(
        &spec,
        &body(vec![("image", Input::Unknown("var.image".into()))]),
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].unknown && diags[0].severity == Severity::Warning);
    assert_eq!(
        value,
        Value::Map(vec![(Value::from("image"), Value::from("var.image"))])
    );
}
