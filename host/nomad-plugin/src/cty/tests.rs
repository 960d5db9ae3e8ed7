//! Tests against the byte vectors of the Nomad protocol reference (§14, 30–35).

use super::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn with_ascii(prefix: &str, text: &str) -> Vec<u8> {
    let mut v = hex(prefix);
    v.extend_from_slice(text.as_bytes());
    v
}

#[test]
fn vector_30_object_with_list_and_port_map() {
    let bytes = hex(
        "83 a4 61 72 67 73 91 a2 31 30 a7 63 6f 6d 6d 61 6e 64 aa 2f 62 69 6e 2f 73 6c 65 65 70 \
         a8 70 6f 72 74 5f 6d 61 70 91 81 a4 68 74 74 70 a2 38 30",
    );
    let value = decode(&bytes).unwrap();
    let obj = Cursor::root(&value).object().unwrap();
    assert_eq!(
        obj.opt_string("command").unwrap().as_deref(),
        Some("/bin/sleep")
    );
    assert_eq!(
        obj.opt_string_list("args").unwrap(),
        Some(vec!["10".to_owned()])
    );
    let pm = obj.opt_merged_string_map("port_map").unwrap().unwrap();
    assert_eq!(pm.get("http").map(String::as_str), Some("80"));
}

#[test]
fn vector_31_nil_means_absent() {
    let bytes = hex(
        "83 a4 61 72 67 73 c0 a7 63 6f 6d 6d 61 6e 64 aa 2f 62 69 6e 2f 73 6c 65 65 70 \
         a8 70 6f 72 74 5f 6d 61 70 c0",
    );
    let value = decode(&bytes).unwrap();
    let obj = Cursor::root(&value).object().unwrap();
    assert_eq!(obj.opt_string_list("args").unwrap(), None);
    assert_eq!(obj.opt_merged_int_map("port_map").unwrap(), None);
    assert!(obj.object_list("port_map").unwrap().is_empty());
}

#[test]
fn vector_32_list_of_map_of_numbers() {
    let bytes = hex("91 82 a4 68 74 74 70 50 a5 72 65 64 69 73 cd 18 eb");
    let value = decode(&bytes).unwrap();
    let map = Cursor::root(&value).merged_int_map().unwrap();
    assert_eq!(map.get("http"), Some(&80));
    assert_eq!(map.get("redis"), Some(&6379));
}

#[test]
fn vector_33_number_forms() {
    let cases: Vec<(Vec<u8>, Option<i64>, f64)> = vec![
        (hex("cd 01 2c"), Some(300), 300.0),
        (hex("ce 00 01 11 70"), Some(70000), 70000.0),
        (hex("ff"), Some(-1), -1.0),
        (hex("d0 9c"), Some(-100), -100.0),
        (hex("cb 3f f8 00 00 00 00 00 00"), None, 1.5),
        (hex("a3 30 2e 31"), None, 0.1),
    ];
    for (bytes, int, float) in cases {
        let value = decode(&bytes).unwrap();
        let n = Cursor::root(&value).number().unwrap();
        assert_eq!(n.to_i64(), int, "{n}");
        assert_eq!(n.to_f64(), Some(float), "{n}");
    }
    let big = with_ascii("b4", "18446744073709551616");
    let value = decode(&big).unwrap();
    let c = Cursor::root(&value);
    assert_eq!(
        c.number().unwrap(),
        CtyNumber::Decimal("18446744073709551616".into())
    );
    let err = c.i64().unwrap_err().to_string();
    assert!(err.contains("64-bit range"), "{err}");
}

#[test]
fn vector_34_plugin_enabled_false() {
    let value = decode(&hex("81 a7 65 6e 61 62 6c 65 64 c2")).unwrap();
    let obj = Cursor::root(&value).object().unwrap();
    assert_eq!(obj.opt_bool("enabled").unwrap(), Some(false));
}

#[test]
fn vector_35_extra_keys_are_tolerated() {
    let value = decode(&hex("82 a7 65 6e 61 62 6c 65 64 c3 a5 65 78 74 72 61 01")).unwrap();
    let obj = Cursor::root(&value).object().unwrap();
    assert_eq!(obj.opt_bool("enabled").unwrap(), Some(true));
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["enabled", "extra"]);
}

#[test]
fn merge_later_keys_win_in_list_order() {
    // [{"a":"1","b":"x"},{"a":"2"}]
    let value = Value::Array(vec![
        Value::Map(vec![
            (Value::from("a"), Value::from("1")),
            (Value::from("b"), Value::from("x")),
        ]),
        Value::Map(vec![(Value::from("a"), Value::from("2"))]),
    ]);
    let map = Cursor::root(&value).merged_string_map().unwrap();
    assert_eq!(map.get("a").map(String::as_str), Some("2"));
    assert_eq!(map.get("b").map(String::as_str), Some("x"));
}

#[test]
fn plain_map_where_list_of_maps_expected_is_an_error() {
    let value = Value::Map(vec![(
        Value::from("port_map"),
        Value::Map(vec![(Value::from("http"), Value::from(80))]),
    )]);
    let obj = Cursor::root(&value).object().unwrap();
    let err = obj.opt_merged_int_map("port_map").unwrap_err();
    assert_eq!(
        err.to_string(),
        "port_map: expected list of maps of numbers, found map"
    );
}

#[test]
fn errors_name_the_nested_path() {
    // {"gc": {"dangling_containers": {"period": {}}}}
    let value = Value::Map(vec![(
        Value::from("gc"),
        Value::Map(vec![(
            Value::from("dangling_containers"),
            Value::Map(vec![(Value::from("period"), Value::Map(vec![]))]),
        )]),
    )]);
    let root = Cursor::root(&value).object().unwrap();
    let gc = root.opt_object("gc").unwrap().unwrap();
    let dc = gc.opt_object("dangling_containers").unwrap().unwrap();
    let err = dc.opt_string("period").unwrap_err();
    assert_eq!(
        err.to_string(),
        "gc.dangling_containers.period: expected string, found map"
    );
}

#[test]
fn non_string_map_values_are_errors_with_index() {
    let value = Value::Array(vec![Value::Map(vec![(
        Value::from("a"),
        Value::from(true),
    )])]);
    let err = Cursor::root(&value)
        .merged_string_map()
        .unwrap_err()
        .to_string();
    assert_eq!(err, "[0].a: expected string, found bool");
}

#[test]
fn malformed_and_oversized_input_are_errors() {
    assert!(matches!(decode(&[0xa5, b'a']), Err(CtyError::Malformed(_))));
    assert!(matches!(decode(&[0x91]), Err(CtyError::Malformed(_))));
    assert!(matches!(decode(&[0xc0, 0xc0]), Err(CtyError::Trailing(1))));
    let big = vec![0u8; MAX_CONFIG_BYTES + 1];
    assert!(matches!(decode(&big), Err(CtyError::TooLarge { .. })));
    assert_eq!(decode(&[]).unwrap(), Value::Nil);
}

#[test]
fn deep_nesting_is_rejected_without_overflow() {
    let mut bytes = vec![0x91; 100_000];
    bytes.push(0xc0);
    assert!(matches!(decode(&bytes), Err(CtyError::Malformed(_))));
}

#[test]
fn decimal_text_validation() {
    assert!(is_decimal_text("0.1"));
    assert!(is_decimal_text("-12"));
    assert!(!is_decimal_text("1e5"));
    assert!(!is_decimal_text("1."));
    assert!(!is_decimal_text("abc"));
    assert!(!is_decimal_text(""));
}

#[test]
fn declared_lengths_beyond_the_input_and_too_many_values_are_refused_before_decoding() {
    // An array32 claiming four billion elements, with none present.
    let claim = hex("dd ff ff ff ff");
    assert!(
        matches!(decode(&claim), Err(CtyError::Malformed(m)) if m.contains("cut short")),
        "{:?}",
        decode(&claim)
    );
    // A string claiming more bytes than follow.
    assert!(matches!(
        decode(&hex("d9 10 61")),
        Err(CtyError::Malformed(_))
    ));
    assert!(matches!(decode(&hex("91 c1")), Err(CtyError::Malformed(m)) if m.contains("0xc1")));
    let mut many = hex("dd");
    many.extend_from_slice(&u32::try_from(MAX_VALUES).unwrap().to_be_bytes());
    many.extend(std::iter::repeat_n(0xc0, MAX_VALUES));
    assert_eq!(
        decode(&many),
        Err(CtyError::TooManyValues { limit: MAX_VALUES })
    );
    assert_eq!(
        CtyError::TooManyValues { limit: MAX_VALUES }.to_string(),
        "configuration holds more than 262144 values"
    );
    // One fewer element fits (the list itself is a value).
    many[1..5].copy_from_slice(&u32::try_from(MAX_VALUES - 1).unwrap().to_be_bytes());
    many.pop();
    assert!(decode(&many).is_ok());
    // Every scalar form is skipped correctly.
    let scalars = hex(
        "9d c0 c2 c3 cc 01 cd 00 01 ce 00 00 00 01 cf 00 00 00 00 00 00 00 01 \
         d0 ff ca 00 00 00 00 cb 00 00 00 00 00 00 00 00 c4 01 00 d4 01 00 c7 01 02 00",
    );
    assert!(decode(&scalars).is_ok(), "{:?}", decode(&scalars));
}
