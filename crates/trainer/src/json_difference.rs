//! The first place two JSON values differ, named by its dotted path: how replicas started with
//! different settings say which setting.

use serde_json::Value;

/// The first difference between `expected` and `found`, depth first in key order: its dotted
/// path (`trainer.learning_rate`, `model.layers.2`; empty for the root) and both values as
/// JSON text; `None` when they are equal.
pub(crate) fn first_difference(expected: &Value, found: &Value) -> Option<(String, String, String)> {
    difference_at(String::new(), expected, found)
}

fn difference_at(path: String, expected: &Value, found: &Value) -> Option<(String, String, String)> {
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    let missing = || "(missing)".to_string();
    match (expected, found) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) => difference_at(child(key), x, y),
                (x, y) => Some((
                    child(key),
                    x.map_or_else(missing, Value::to_string),
                    y.map_or_else(missing, Value::to_string),
                )),
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| difference_at(child(&i.to_string()), x, y))
        }
        _ => (expected != found).then(|| (path, expected.to_string(), found.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_path_and_both_values() {
        let a = json!({"trainer": {"epochs": 3, "learning_rate": 0.001}, "model": {"layers": ["fc1", "fc2"]}});
        assert_eq!(first_difference(&a, &a.clone()), None);
        let mut b = a.clone();
        b["trainer"]["learning_rate"] = json!(0.01);
        b["model"]["layers"][1] = json!("fc3");
        let found = first_difference(&a, &b).unwrap();
        assert_eq!(found, ("model.layers.1".into(), "\"fc2\"".into(), "\"fc3\"".into()), "model sorts first");
        b["model"] = a["model"].clone();
        assert_eq!(first_difference(&a, &b).unwrap(), ("trainer.learning_rate".into(), "0.001".into(), "0.01".into()));
        b["trainer"].as_object_mut().unwrap().remove("learning_rate");
        assert_eq!(first_difference(&a, &b).unwrap().2, "(missing)");
        assert_eq!(
            first_difference(&json!([1, 2]), &json!([1])).unwrap().0,
            "",
            "arrays of other lengths differ whole"
        );
    }
}
