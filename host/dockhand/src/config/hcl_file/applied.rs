//! Files read by the front ends, with the schema applied ([`nomad_plugin::hcldec`]), against
//! the msgpack bytes Nomad sends for them (protocol reference §8.4, §14).

use nomad_plugin::hcldec::{Input, Node, Severity, apply};
use nomad_plugin::hclspec::Spec;
use rmpv::Value;

use super::parse_file;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

/// The task config body of a one-task jobspec.
fn task_body(config: &str) -> Node {
    let text = format!(
        "job \"j\" {{\n group \"g\" {{\n task \"t\" {{\n driver = \"docker\"\n config {{\n{config}\n}}\n}}\n}}\n}}"
    );
    parse_file(&text).unwrap().tasks.remove(0).config
}

fn vector_spec(port_map_type: &str) -> Spec {
    Spec::object([
        ("command", Spec::required_attr("command", "string")),
        ("args", Spec::attr("args", "list(string)")),
        ("port_map", Spec::attr("port_map", port_map_type)),
    ])
}

fn apply_ok(spec: &Spec, body: &Node) -> Vec<u8> {
    let (value, diags) = apply(spec, body);
    assert!(diags.is_empty(), "{diags:?}");
    encode(&value)
}

#[test]
fn vector_30_exact_bytes() {
    let body = task_body("command = \"/bin/sleep\"\nargs = [\"10\"]\nport_map {\n http = 80\n}");
    assert_eq!(
        apply_ok(&vector_spec("list(map(string))"), &body),
        hex(
            "83 a4 61 72 67 73 91 a2 31 30 a7 63 6f 6d 6d 61 6e 64 aa 2f 62 69 6e 2f 73 6c 65 65 70 \
             a8 70 6f 72 74 5f 6d 61 70 91 81 a4 68 74 74 70 a2 38 30"
        )
    );
}

#[test]
fn vector_31_absent_values_are_nil() {
    let body = task_body("command = \"/bin/sleep\"");
    assert_eq!(
        apply_ok(&vector_spec("list(map(string))"), &body),
        hex(
            "83 a4 61 72 67 73 c0 a7 63 6f 6d 6d 61 6e 64 aa 2f 62 69 6e 2f 73 6c 65 65 70 \
             a8 70 6f 72 74 5f 6d 61 70 c0"
        )
    );
}

fn port_map_bytes(spec_type: &str, config: &str) -> Vec<u8> {
    let spec = Spec::object([("port_map", Spec::attr("port_map", spec_type))]);
    let bytes = apply_ok(&spec, &task_body(config));
    // Strip the object header and key: 81 a8 "port_map".
    bytes[10..].to_vec()
}

#[test]
fn port_map_forms_of_reference_8_4() {
    let one = hex("91 81 a4 68 74 74 70 a2 38 30");
    assert_eq!(
        port_map_bytes("list(map(string))", "port_map {\n http = 80\n}"),
        one
    );
    assert_eq!(
        port_map_bytes("list(map(string))", "port_map = { http = 80 }"),
        one
    );
    assert_eq!(
        port_map_bytes("list(map(string))", "port_map = [{ http = 80 }]"),
        one
    );
    assert_eq!(
        port_map_bytes("list(map(string))", "port_map = [{ http = \"80\" }]"),
        one
    );
    assert_eq!(
        port_map_bytes(
            "list(map(string))",
            "port_map {\n a = 1\n}\nport_map {\n b = \"x\"\n}"
        ),
        hex("92 81 a1 61 a1 31 81 a1 62 a1 78")
    );
    assert_eq!(
        port_map_bytes("list(map(string))", "port_map {}"),
        hex("91 80")
    );
    assert_eq!(port_map_bytes("list(map(string))", ""), hex("c0"));
    assert_eq!(
        port_map_bytes(
            "list(map(number))",
            "port_map {\n http = 80\n redis = 6379\n}"
        ),
        hex("91 82 a4 68 74 74 70 50 a5 72 65 64 69 73 cd 18 eb")
    );
}

#[test]
fn json_plain_object_where_list_of_maps_expected_is_an_error() {
    let spec = Spec::object([("port_map", Spec::attr("port_map", "list(map(number))"))]);
    let body = super::json::json_to_node(&serde_json::json!({"port_map": {"http": 80}}));
    let (_, diags) = apply(&spec, &body);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].path.to_string(), "port_map");
    assert_eq!(
        diags[0].message,
        "Incorrect attribute value type: list of map of number required, found object"
    );
    let body = super::json::json_to_node(&serde_json::json!({"port_map": [{"http": "x"}]}));
    let (_, diags) = apply(&spec, &body);
    assert_eq!(diags[0].path.to_string(), "port_map[0].http");
}

#[test]
fn vector_34_plugin_bool() {
    let spec = Spec::object([("enabled", Spec::attr("enabled", "bool"))]);
    let text = "plugin \"docker\" {\n config {\n enabled = false\n }\n}";
    let body = parse_file(text).unwrap().plugins.remove(0).config;
    assert_eq!(apply_ok(&spec, &body), hex("81 a7 65 6e 61 62 6c 65 64 c2"));
}

#[test]
fn unknown_keys_are_invalid_labels_with_lines() {
    let spec = Spec::object([("image", Spec::attr("image", "string"))]);
    let body = task_body("image = \"x\"\nimgae = \"y\"");
    let (_, diags) = apply(&spec, &body);
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].message,
        "Invalid label: no argument or block type is named \"imgae\""
    );
    assert_eq!(diags[0].line, Some(7));
}

#[test]
fn defaults_keep_literal_type_and_block_default_only_has_literal_keys() {
    let spec = Spec::object([(
        "gc",
        Spec::block(
            "gc",
            Spec::object([
                ("image", Spec::attr("image", "bool").with_default("true")),
                ("delay", Spec::attr("delay", "string").default_str("3m")),
            ]),
        )
        .with_default("{ image = false }"),
    )]);
    let (absent, _) = apply(&spec, &Node::new(Input::Null));
    assert_eq!(
        absent,
        Value::Map(vec![(
            Value::from("gc"),
            Value::Map(vec![(Value::from("image"), Value::from(false))])
        )])
    );
    let (empty, _) = apply(&spec, &task_body("gc {}"));
    assert_eq!(
        empty,
        Value::Map(vec![(
            Value::from("gc"),
            Value::Map(vec![
                (Value::from("delay"), Value::from("3m")),
                (Value::from("image"), Value::from(true)),
            ])
        )])
    );
}

#[test]
fn block_list_absent_is_empty_and_duplicates_of_single_blocks_are_errors() {
    let spec = Spec::object([
        (
            "devices",
            Spec::block_list(
                "devices",
                Spec::object([("host_path", Spec::attr("host_path", "string"))]),
            ),
        ),
        (
            "auth",
            Spec::block(
                "auth",
                Spec::object([("username", Spec::attr("username", "string"))]),
            ),
        ),
    ]);
    let (v, diags) = apply(&spec, &task_body(""));
    assert!(diags.is_empty());
    assert_eq!(
        v,
        Value::Map(vec![
            (Value::from("auth"), Value::Nil),
            (Value::from("devices"), Value::Array(vec![]))
        ])
    );
    let (_, diags) = apply(
        &spec,
        &task_body("auth {\n username = \"a\"\n}\nauth {\n username = \"b\"\n}"),
    );
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].message.starts_with("Duplicate auth block"),
        "{diags:?}"
    );
}

#[test]
fn conversions_follow_go_cty() {
    let spec = Spec::object([
        ("s", Spec::attr("s", "string")),
        ("n", Spec::attr("n", "number")),
        ("b", Spec::attr("b", "bool")),
        ("l", Spec::attr("l", "list(string)")),
    ]);
    let (v, diags) = apply(
        &spec,
        &task_body("s = 5\nn = \"12\"\nb = \"true\"\nl = [1, true]"),
    );
    assert!(diags.is_empty(), "{diags:?}");
    let bytes = encode(&v);
    let decoded = nomad_plugin::cty::decode(&bytes).unwrap();
    let o = nomad_plugin::cty::Cursor::root(&decoded).object().unwrap();
    assert_eq!(o.opt_string("s").unwrap().as_deref(), Some("5"));
    assert_eq!(o.opt_i64("n").unwrap(), Some(12));
    assert_eq!(o.opt_bool("b").unwrap(), Some(true));
    assert_eq!(
        o.opt_string_list("l").unwrap(),
        Some(vec!["1".to_owned(), "true".to_owned()])
    );
    let (_, diags) = apply(&spec, &task_body("n = \"twelve\"\nb = 1\ns = [\"x\"]"));
    assert_eq!(diags.len(), 3, "{diags:?}");
}

#[test]
fn unknown_values_are_warnings_not_errors() {
    let spec = Spec::object([
        ("image", Spec::attr("image", "string")),
        ("n", Spec::attr("n", "number")),
    ]);
    let (v, diags) = apply(
        &spec,
        &task_body("image = \"redis:${var.tag}\"\nn = var.count"),
    );
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(
        diags
            .iter()
            .all(|d| d.severity == Severity::Warning && d.unknown),
        "{diags:?}"
    );
    let Value::Map(entries) = v else { panic!() };
    // An unknown string is carried as its source text, an unknown number as null.
    assert_eq!(entries[0].1, Value::from("redis:${var.tag}"));
    assert_eq!(entries[1].1, Value::Nil);
}
