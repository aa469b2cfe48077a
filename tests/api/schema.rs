/// `schema.graphql` is what `ecer-gateway export-schema` prints for the live schema; regenerate it
/// with `cargo run -q -- export-schema > schema.graphql` when this fails.
#[test]
fn schema_file_matches_the_live_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecer-gateway"))
        .arg("export-schema")
        .output()
        .expect("run export-schema");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let live = String::from_utf8(out.stdout).unwrap();
    assert_eq!(live, ecer_gateway::graphql::sdl());
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        file == live,
        "schema.graphql is stale: run `cargo run -q -- export-schema > schema.graphql` and commit the result"
    );
}

/// The schema a running gateway serves (built with its configuration) is the one in the file.
#[tokio::test]
async fn served_schema_matches_the_file() {
    let app = crate::common::TestApp::spawn().await;
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(app.state.schema.sdl(), file);
}

/// graphql-inspector's changes from `old` to `new` (SDL files): (criticality, message).
fn schema_changes(old: &str, new: &str) -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("node")
        .arg("schema-diff.mjs")
        .arg(old)
        .arg(new)
        .current_dir(format!("{root}/tests/js"))
        .output()
        .expect("run node (run `npm ci --prefix tests/js` first)");
    assert!(out.status.success(), "schema-diff: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let change: serde_json::Value = serde_json::from_str(line).unwrap();
            (change["criticality"].as_str().unwrap().to_string(), change["message"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Apps in members' hands keep working: every breaking change since the released schema is
/// acknowledged in frontend-contract/BREAKING.md, and all of them are listed in the test output.
#[test]
fn breaking_changes_against_the_released_schema_are_acknowledged() {
    let root = env!("CARGO_MANIFEST_DIR");
    // The check can fail: a removed field and a type change are breaking, an added field is not.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.graphql");
    let new = dir.path().join("new.graphql");
    std::fs::write(&old, "type Query { a: Int! b: String c: Int }").unwrap();
    std::fs::write(&new, "type Query { a: Int! b: Int d: Int }").unwrap();
    let changes = schema_changes(old.to_str().unwrap(), new.to_str().unwrap());
    let breaking: Vec<&str> = changes.iter().filter(|(c, _)| c == "BREAKING").map(|(_, m)| m.as_str()).collect();
    assert_eq!(breaking.len(), 2, "{changes:?}");
    assert!(changes.iter().any(|(c, m)| c == "NON_BREAKING" && m.contains("'d'")), "{changes:?}");

    let changes =
        schema_changes(&format!("{root}/frontend-contract/schema.released.graphql"), &format!("{root}/schema.graphql"));
    let acknowledged = std::fs::read_to_string(format!("{root}/frontend-contract/BREAKING.md")).unwrap();
    let mut unacknowledged = Vec::new();
    for (criticality, message) in &changes {
        if criticality != "NON_BREAKING" {
            println!("{criticality}: {message}");
        }
        if criticality == "BREAKING" && !acknowledged.lines().any(|l| l.starts_with(&format!("- {message} |"))) {
            unacknowledged.push(message.as_str());
        }
    }
    assert!(
        unacknowledged.is_empty(),
        "breaking changes against frontend-contract/schema.released.graphql; deprecate instead, or list each \
         in frontend-contract/BREAKING.md with why:\n{}",
        unacknowledged.join("\n")
    );
}
