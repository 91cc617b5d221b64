use super::*;

const RESULTS5: &str = include_str!("../../../../tests/fixtures/randomuser/response_results5.json");
const RESULTS1: &str = include_str!("../../../../tests/fixtures/randomuser/response_results1.json");
const ERROR: &str = include_str!("../../../../tests/fixtures/randomuser/response_error.json");

fn row_fields(row: &Row) -> serde_json::Map<String, Value> {
    match serde_json::from_str(&row.json).unwrap() {
        Value::Object(m) => m,
        other => panic!("row is not an object: {other}"),
    }
}

#[test]
fn whole_response_gives_one_row_per_user_with_exactly_12_fields() {
    let rows = format(RESULTS5.as_bytes()).unwrap();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let fields = row_fields(row);
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = USER_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert!(fields.values().all(Value::is_string), "{fields:?}");
    }
}

#[test]
fn columns_keep_declared_order() {
    let row = &format(RESULTS1.as_bytes()).unwrap()[0];
    let positions: Vec<usize> = USER_FIELDS
        .iter()
        .map(|f| row.json.find(&format!("\"{f}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", row.json);
}

#[test]
fn maps_every_field_from_its_source() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let user = &source["results"][0];
    let row = &format(RESULTS1.as_bytes()).unwrap()[0];
    let f = row_fields(row);
    assert_eq!(f["id"], user["login"]["uuid"]);
    assert_eq!(row.id, user["login"]["uuid"].as_str().unwrap());
    assert_eq!(f["first_name"], user["name"]["first"]);
    assert_eq!(f["last_name"], user["name"]["last"]);
    assert_eq!(f["gender"], user["gender"]);
    let loc = &user["location"];
    let address = format!(
        "{} {}, {}, {}, {}",
        loc["street"]["number"],
        loc["street"]["name"].as_str().unwrap(),
        loc["city"].as_str().unwrap(),
        loc["state"].as_str().unwrap(),
        loc["country"].as_str().unwrap()
    );
    assert_eq!(f["address"], address.as_str());
    assert_eq!(f["email"], user["email"]);
    assert_eq!(f["username"], user["login"]["username"]);
    assert_eq!(f["dob"], user["dob"]["date"]);
    assert_eq!(f["registered_date"], user["registered"]["date"]);
    assert_eq!(f["phone"], user["phone"]);
    assert_eq!(f["picture"], user["picture"]["medium"]);
}

#[test]
fn post_code_is_always_a_string() {
    let source: Value = serde_json::from_str(RESULTS5).unwrap();
    let kinds: Vec<bool> = source["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["location"]["postcode"].is_number())
        .collect();
    assert!(
        kinds.contains(&true) && kinds.contains(&false),
        "fixture must mix both"
    );
    for (row, user) in format(RESULTS5.as_bytes())
        .unwrap()
        .iter()
        .zip(source["results"].as_array().unwrap())
    {
        let expected = match &user["location"]["postcode"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("{other}"),
        };
        assert_eq!(row_fields(row)["post_code"], Value::String(expected));
    }
}

#[test]
fn non_ascii_names_pass_through_intact() {
    let rows = format(RESULTS5.as_bytes()).unwrap();
    let firsts: Vec<String> = rows
        .iter()
        .map(|r| row_fields(r)["first_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(firsts.iter().any(|n| n == "Lívia"), "{firsts:?}");
    assert!(firsts.iter().any(|n| n == "Søren"), "{firsts:?}");
    assert!(rows.iter().any(|r| r.json.contains("Hämeentie")));
}

#[test]
fn single_user_object_is_accepted() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let single = source["results"][0].to_string();
    let rows = format(single.as_bytes()).unwrap();
    assert_eq!(rows, format(RESULTS1.as_bytes()).unwrap());
}

#[test]
fn a_uuid_written_otherwise_becomes_the_lower_case_hyphenated_id() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let given = source["results"][0]["login"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let upper = given.to_uppercase();
    let simple = given.replace('-', "");
    let braced = format!("{{{given}}}");
    // One character off the usual form each way: a hyphen moved, a digit past `f`.
    let moved = format!("{}-{}", &simple[..9], &simple[9..]);
    for written in [&given, &upper, &simple, &braced] {
        let mut user = source["results"][0].clone();
        user["login"]["uuid"] = Value::String(written.clone());
        let row = &format_value(&user).unwrap()[0];
        assert_eq!(row.id, given, "{written}");
        assert_eq!(row_fields(row)["id"], given.as_str(), "{written}");
    }
    for written in [
        moved,
        given.replacen(|c: char| c.is_ascii_hexdigit(), "g", 1),
    ] {
        let mut user = source["results"][0].clone();
        user["login"]["uuid"] = Value::String(written.clone());
        let id = &format_value(&user).unwrap()[0].id;
        assert_ne!(id, &given, "{written}");
        assert_eq!(
            Uuid::parse_str(id).unwrap().get_version_num(),
            5,
            "{written}"
        );
    }
}

#[test]
fn id_without_valid_uuid_is_deterministic_and_distinct() {
    let source: Value = serde_json::from_str(RESULTS5).unwrap();
    let mut users = source["results"].as_array().unwrap().clone();
    for u in &mut users {
        u["login"]["uuid"] = Value::String("not-a-uuid".into());
    }
    let first = format_value(&serde_json::json!({ "results": users })).unwrap();
    let again = format_value(&serde_json::json!({ "results": users })).unwrap();
    assert_eq!(first, again);
    let mut ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "ids must differ per user");
    for id in ids {
        let parsed = Uuid::parse_str(id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }
    // Whitespace and key order do not change the id.
    let one = users[0].clone();
    let pretty = serde_json::to_string_pretty(&one).unwrap();
    assert_eq!(format(pretty.as_bytes()).unwrap()[0].id, first[0].id);
}

#[test]
fn missing_field_is_named() {
    let mut source: Value = serde_json::from_str(RESULTS5).unwrap();
    source["results"][3]["login"]
        .as_object_mut()
        .unwrap()
        .remove("username");
    let err = format_value(&source).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing required field `results[3].login.username`"
    );
}

#[test]
fn mistyped_field_is_named() {
    let mut source: Value = serde_json::from_str(RESULTS1).unwrap();
    let mut user = source["results"][0].take();
    user["location"]["postcode"] = serde_json::json!([1, 2]);
    let err = format_value(&user).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `location.postcode`: expected a string or a number, found an array"
    );
    user["location"] = Value::String("nowhere".into());
    let err = format_value(&user).unwrap_err();
    assert!(err.to_string().contains("location.street.number"), "{err}");
}

#[test]
fn api_error_and_garbage_are_errors_not_panics() {
    assert!(matches!(
        format(ERROR.as_bytes()),
        Err(FormatError::ApiError(_))
    ));
    assert!(matches!(format(b"{not json"), Err(FormatError::NotJson(_))));
    assert!(format(b"[1,2]")
        .unwrap_err()
        .to_string()
        .contains("expected a JSON object"));
    assert!(format(br#"{"results": 3}"#).is_err());
    assert!(format(b"").is_err());
    assert_eq!(format(br#"{"results": []}"#).unwrap(), vec![]);
}

#[test]
fn text_needing_escapes_round_trips() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let mut user = source["results"][0].clone();
    let tricky = "Zoë \"the\" \\ back\nslash\t\u{1}";
    user["name"]["first"] = Value::String(tricky.into());
    // The address is written part by part: each part escaped on its own.
    user["location"]["street"]["name"] = Value::String(tricky.into());
    user["location"]["city"] = Value::String("\"Q\"".into());
    let row = &format_value(&user).unwrap()[0];
    let f = row_fields(row);
    assert_eq!(f["first_name"], tricky);
    let number = &user["location"]["street"]["number"];
    let want = format!(
        "{number} {tricky}, \"Q\", {}, {}",
        user["location"]["state"].as_str().unwrap(),
        user["location"]["country"].as_str().unwrap()
    );
    assert_eq!(f["address"], want.as_str());
}

#[test]
fn numbers_keep_their_json_spelling() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let mut user = source["results"][0].clone();
    user["location"]["postcode"] = serde_json::json!(-42);
    user["location"]["state"] = serde_json::json!(1.5);
    let f = row_fields(&format_value(&user).unwrap()[0]);
    assert_eq!(f["post_code"], "-42");
    assert!(f["address"].as_str().unwrap().contains(", 1.5, "), "{f:?}");
}

#[test]
fn a_key_given_twice_keeps_the_last_copy_like_a_full_parse() {
    let source: Value = serde_json::from_str(RESULTS1).unwrap();
    let user = source["results"][0].to_string();
    let twice = format!(r#"{{"name":{{"first":"Old","last":"X"}},{}"#, &user[1..]);
    let f = row_fields(&format(twice.as_bytes()).unwrap()[0]);
    assert_eq!(f["first_name"], "Liam");
}

#[test]
fn null_results_or_error_are_reported_as_such() {
    let err = format(br#"{"results": null, "info": {}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `results`: expected an array, found null"
    );
    assert!(matches!(
        format(br#"{"error": null}"#),
        Err(FormatError::ApiError(_))
    ));
}

#[test]
fn many_users_without_uuids_get_distinct_ids_from_one_parse() {
    let source: Value = serde_json::from_str(RESULTS5).unwrap();
    let mut users = source["results"].as_array().unwrap().clone();
    for u in &mut users {
        u["login"].as_object_mut().unwrap().remove("uuid");
    }
    let many: Vec<Value> = (0..200).map(|i| users[i % 5].clone()).collect();
    let rows = format_value(&serde_json::json!({ "results": many })).unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        5,
        "the same user, the same id; different users, different ids"
    );
}

#[test]
fn openers_name_the_columns_in_order() {
    for (i, (opener, name)) in OPENERS.iter().zip(USER_FIELDS).enumerate() {
        let before = if i == 0 { "{" } else { "\"," };
        assert_eq!(*opener, format!("{before}\"{name}\":\""));
    }
}

#[test]
fn append_copies_every_length_whole() {
    // Past 64 bytes, the longest copied by hand.
    let text: String = ('a'..='z').chain('A'..='Z').cycle().take(80).collect();
    for n in 0..=text.len() {
        for before in ["", "{\"id\":\"", "é"] {
            let mut out = String::from(before);
            super::append(&mut out, &text[..n]);
            assert_eq!(
                out,
                format!("{before}{}", &text[..n]),
                "{n} after {before:?}"
            );
        }
    }
}
