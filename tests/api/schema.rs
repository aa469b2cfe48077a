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
