//! `dockhand.label_filter`: restricts the reconciler to containers carrying one label.
//!
//! The value is handed to Docker's `label` list filter as is, so it takes the forms Docker
//! accepts there: `key` (the label is present, whatever its value) or `key=value` (split at
//! the first `=`, so a value may itself contain `=`). Docker does not reject malformed
//! filters; it silently matches nothing, which here would mean a reconciler that quietly never
//! acts. So the shape is checked when the configuration is read, and a bad value is an error
//! naming the field.

/// Checks `value` as a label filter and returns it unchanged, or says what is wrong with it.
pub fn parse_label_filter(value: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected \"key\" or \"key=value\"";
    if value.trim().is_empty() {
        return Err(format!(
            "must not be empty ({EXPECTED}; leave it out to consider every container)"
        ));
    }
    let (key, label_value) = match value.split_once('=') {
        Some((key, v)) => (key, Some(v)),
        None => (value, None),
    };
    if key.is_empty() {
        return Err(format!("has an empty label key in {value:?}; {EXPECTED}"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "label key {key:?} contains whitespace or control characters; {EXPECTED}"
        ));
    }
    if label_value.is_some_and(|v| v.chars().any(char::is_control)) {
        return Err(format!(
            "label value in {value:?} contains control characters; {EXPECTED}"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_label_filter;

    #[test]
    fn key_and_key_value_forms_are_accepted_unchanged() {
        for ok in [
            "dockhand.fleet",
            "com.example/team=infra",
            "env=",
            "expr=a=b",
            "owner=Jane Doe",
        ] {
            assert_eq!(parse_label_filter(ok).as_deref(), Ok(ok), "{ok:?}");
        }
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        let cases = [
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("=infra", "empty label key in \"=infra\""),
            (
                "team name=infra",
                "label key \"team name\" contains whitespace",
            ),
            (" team", "label key \" team\" contains whitespace"),
            (
                "team=in\nfra",
                "label value in \"team=in\\nfra\" contains control",
            ),
        ];
        for (input, needle) in cases {
            let err = parse_label_filter(input).expect_err(input);
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(err.contains("\"key=value\""), "{input:?}: {err}");
        }
    }
}
