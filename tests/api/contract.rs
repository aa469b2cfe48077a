//! The frontend contract: every operation the web and mobile clients send (frontend-contract/) is valid
//! against `schema.graphql` (checked by graphql-js, the reference implementation) and runs without
//! errors against a seeded gateway.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::TestApp;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::test]
async fn contract_operations_validate_against_schema_graphql() {
    let out = tokio::process::Command::new("node")
        .arg("validate-contract.mjs")
        .arg(format!("{ROOT}/schema.graphql"))
        .arg(format!("{ROOT}/frontend-contract/operations"))
        .current_dir(format!("{ROOT}/tests/js"))
        .output()
        .await
        .expect("run node (run `npm ci --prefix tests/js` first)");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("validator output: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(report["operations"].as_array().unwrap().len() >= 30, "{report}");
}

fn substitute(value: &Value, vars: &HashMap<&str, String>) -> Value {
    match value {
        Value::String(s) if s.starts_with('$') => {
            vars.get(s.as_str()).map(|v| json!(v)).unwrap_or_else(|| panic!("no fixture value for {s}"))
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), substitute(v, vars))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, vars)).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn contract_operations_run_against_a_seeded_gateway() {
    // The operations run by hash on a gateway in trusted-documents mode (as in production), which also
    // proves the manifest covers them all; the fixtures are set up through an open instance.
    // Mail goes to an SMTP server of the test's own, where the email code is read.
    let sink = crate::email::smtp_sink::SmtpSink::start().await;
    let smtp = sink.url();
    let smtp_again = smtp.clone();
    let trusted = TestApp::spawn_with(move |c| {
        c.smtp_url = Some(ecer_gateway::config::Secret::new(smtp));
        c.email_outbox_poll_ms = 20;
        c.trusted_documents = true;
        // The fixture's device is on loopback (a closed port): pushes never leave the machine.
        c.push_endpoint_hosts = vec!["127.0.0.1".into()];
        c.push_allow_http = true;
        // Production limits: the client's traffic must fit in them.
        let defaults = ecer_gateway::config::Config::defaults();
        c.rate_limit_requests_per_minute = defaults.rate_limit_requests_per_minute;
        c.rate_limit_auth_per_minute = defaults.rate_limit_auth_per_minute;
        c.rate_limit_messages_per_minute = defaults.rate_limit_messages_per_minute;
        c.rate_limit_chat_per_minute = defaults.rate_limit_chat_per_minute;
    })
    .await;
    let app = trusted
        .another_instance(move |c| {
            c.smtp_url = Some(ecer_gateway::config::Secret::new(smtp_again));
            c.email_outbox_poll_ms = 20;
        })
        .await;
    ecer_gateway::seed::run(&app.state.db, ecer_gateway::seed::Size { users: 30, posts: 80 }, 7).await.unwrap();
    let token = app.admin().await;
    let me = app.gql(Some(&token), "{ me { id } }", json!({})).await["me"]["id"].as_str().unwrap().to_string();
    let boards = app.gql(None, "{ boards(first: 1) { edges { node { id slug } } } }", json!({})).await;
    let board = &boards["boards"]["edges"][0]["node"];
    let post = app.create_post(&token, board["id"].as_str().unwrap(), "Contract fixture post").await;
    let comment = app.comment(&token, &post, None, "Contract fixture comment").await;
    let other = ecer_gateway::graphql::ids::encode(ecer_gateway::graphql::ids::Kind::User, 1).0;
    // Something in every realtime stream of the signed-in user, so subscriptions resuming from the
    // start replay at least one event.
    let (peer, peer_id) = app.register("+8613712340000", "peer").await;
    // An app of the peer's for the admin to review (registered through the service: the peer has no
    // checked real name, and an admin may not review an app of their own).
    let peer_viewer = ecer_gateway::auth::Viewer {
        user_id: ecer_gateway::graphql::ids::decode_any(&peer_id).unwrap().1,
        role: ecer_gateway::auth::Role::Admin,
        session_id: 0,
        app: None,
    };
    let new_app = ecer_gateway::services::developer_apps::NewApp {
        name: "Peer's CRM",
        description: "for the review fixture",
        homepage_url: "https://peer.example",
        redirect_uris: &["https://peer.example/cb".to_string()],
        confidential: false,
    };
    let peer_app =
        ecer_gateway::services::developer_apps::register(&app.state.db, &peer_viewer, new_app).await.unwrap().app;
    // The admin authorized that app (as a consent would record it): AuthorizedApps lists it and
    // RevokeAppAuthorization withdraws it.
    let admin_id = ecer_gateway::graphql::ids::decode_any(&me).unwrap().1;
    let now = chrono::Utc::now();
    sea_orm::EntityTrait::insert(entity::oauth_grants::ActiveModel {
        user_id: sea_orm::Set(admin_id),
        app_id: sea_orm::Set(peer_app.id),
        scopes: sea_orm::Set("profile:read posts:read".into()),
        created_at: sea_orm::Set(now),
        updated_at: sea_orm::Set(now),
        ..Default::default()
    })
    .exec(&app.state.db)
    .await
    .unwrap();
    let peer_app = peer_app.client_id;
    // SMS codes for the operations that prove a number, sent by the open instance (same database).
    let register_code = app.phone_code("+8613712345678", "REGISTER").await;
    let login_code = app.phone_code("+8613900000000", "LOGIN").await;
    app.register("+8613712340001", "forgetful").await;
    let reset_code = app.phone_code("+8613712340001", "RESET_PASSWORD").await;
    let ask = "mutation($input: RequestPhoneCodeInput!) { requestPhoneCode(input: $input) { sent } }";
    app.gql(Some(&peer), ask, json!({ "input": { "phone": "+8613712340002", "purpose": "CHANGE_PHONE" } })).await;
    let change_phone_code = app.sent_code("+8613712340002").unwrap();
    let mailed = sink.messages().len();
    let add_email = "mutation($input: AddEmailInput!) { addEmail(input: $input) { expiresIn } }";
    app.gql(Some(&peer), add_email, json!({ "input": { "email": "peer@example.com" } })).await;
    let email_code = crate::email::code_in(&sink.wait_for(mailed + 1).await[mailed].body());
    let sent = app
        .gql(
            Some(&peer),
            "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"hello\" }) { conversation { id } } }",
            json!({ "to": me }),
        )
        .await;
    let conversation = sent["sendMessage"]["conversation"]["id"].as_str().unwrap().to_string();
    app.comment(&peer, &post, None, "a reply to notify about").await;
    let stream = crate::live::live_stream(&app, &token).await;
    app.gql(Some(&token), crate::live::SAY, json!({ "s": stream, "b": "welcome" })).await;
    let say = "mutation($s: ID!) { sendLiveChatMessage(input: { streamId: $s, body: \"spam\" }) { message { id } } }";
    let chat_line = app.gql(Some(&token), say, json!({ "s": stream })).await["sendLiveChatMessage"]["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.gql(
        Some(&token),
        "mutation { publishPolicyVersion(input: { body: \"Policy v1\", major: false }) { policy { version } } }",
        json!({}),
    )
    .await;
    // A second session of the signed-in member, for RevokeSession.
    let second = app
        .gql(
            None,
            "mutation($p: String!) { login(input: { phone: $p, password: \"admin password\" }) { token } }",
            json!({ "p": "+8613900000000" }),
        )
        .await["login"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let sessions = app.gql(Some(&second), "{ me { sessions { id current } } }", json!({})).await;
    let other_session =
        sessions["me"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    // A verification for the reviewer operations to decide.
    let submit = "mutation($f: Upload!, $b: Upload!) { submitIdentityVerification(input: {
        realName: \"李雷\", idNumber: \"11010519491231002X\", idFront: $f, idBack: $b }) { verification { id } } }";
    let (_, submitted) = app
        .upload_raw(
            Some(&peer),
            submit,
            json!({ "f": null, "b": null }),
            json!({ "0": ["variables.f"], "1": ["variables.b"] }),
            vec![
                ("0", "f.png", "image/png", crate::common::png("f")),
                ("1", "b.png", "image/png", crate::common::png("b")),
            ],
            true,
        )
        .await;
    let verification =
        submitted["data"]["submitIdentityVerification"]["verification"]["id"].as_str().unwrap().to_string();
    let new_stream = app.gql(Some(&token), crate::live::CREATE, json!({ "t": "later" })).await["createLiveStream"]
        ["liveStream"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let vars: HashMap<&str, String> = HashMap::from([
        ("$POST_ID", post),
        ("$COMMENT_ID", comment),
        ("$USER_ID", other),
        ("$ME_ID", me),
        ("$BOARD_ID", board["id"].as_str().unwrap().to_string()),
        ("$BOARD_SLUG", board["slug"].as_str().unwrap().to_string()),
        ("$PHONE_NEW", "+8613712345678".to_string()),
        ("$REGISTER_CODE", register_code),
        ("$PHONE_CODE_NEW", "+8613712345679".to_string()),
        ("$LOGIN_CODE", login_code),
        ("$RESET_PHONE", "+8613712340001".to_string()),
        ("$RESET_CODE", reset_code),
        ("$CHANGE_PHONE_NEW", "+8613712340002".to_string()),
        ("$CHANGE_PHONE_CODE", change_phone_code),
        ("$EMAIL_CODE", email_code),
        ("$PHONE", "+8613900000000".to_string()),
        ("$PASSWORD", "admin password".to_string()),
        ("$CONVERSATION_ID", conversation),
        ("$STREAM_ID", stream),
        ("$CHAT_LINE_ID", chat_line),
        ("$NEW_STREAM_ID", new_stream),
        ("$CURSOR_START", ecer_gateway::services::page::Cursor::Id(0).encode()),
        ("$OTHER_SESSION_ID", other_session),
        ("$VERIFICATION_ID", verification),
        ("$APP_CLIENT_ID", peer_app),
    ]);

    let fixtures: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/frontend-contract/fixtures.json")).unwrap())
            .unwrap();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/frontend-contract/persisted-query-manifest.json")).unwrap(),
    )
    .unwrap();
    let hashes: HashMap<&str, &str> = manifest["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["name"].as_str().unwrap(), op["id"].as_str().unwrap()))
        .collect();
    let dir = format!("{ROOT}/frontend-contract/operations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".graphql").map(str::to_string))
        .collect();
    names.sort();
    // Destructive operations run last, in a fixed order (logout ends the session the rest use).
    // ChangePassword signs the member's other sessions out (the one RevokeSession ends among them).
    // DeleteApp removes the app ReviewApp and RevokeAppAuthorization act on.
    let last = [
        "DeleteApp",
        "BlockUser",
        "EndLiveStream",
        "DeleteComment",
        "DeletePost",
        "ChangePassword",
        "Logout",
        "DeleteAccount",
    ];
    names.retain(|n| !last.contains(&n.as_str()));
    names.extend(last.iter().map(|s| s.to_string()));

    for name in &names {
        let fixture = fixtures.get(name).unwrap_or_else(|| panic!("fixtures.json has no entry for {name}"));
        let query = std::fs::read_to_string(format!("{dir}/{name}.graphql")).unwrap();
        let id = &hashes.get(name.as_str()).unwrap_or_else(|| panic!("{name} is missing from the manifest"));
        let document_id = format!("sha256:{id}");
        let variables = substitute(&fixture["variables"], &vars);
        let auth = match (fixture["auth"].as_bool().unwrap_or(false), fixture["token"].as_str()) {
            (false, _) => None,
            (true, Some("peer")) => Some(peer.as_str()),
            (true, _) => Some(token.as_str()),
        };
        let body = if query.contains("\nsubscription ") || query.starts_with("subscription ") {
            // Subscriptions go over the WebSocket; resuming from the start, the first event is a replay.
            let mut ws = trusted.ws(auth).await;
            ws.send(json!({ "type": "subscribe", "id": "1", "payload": { "documentId": document_id, "variables": variables } }))
                .await;
            // A stream with no replay hears of the change its fixture's `trigger` makes.
            // (Sent to the same instance: without Redis, instances do not hear each other.)
            if let Some(trigger) = fixture.get("trigger") {
                ws.quiet(300).await;
                let op = trigger["operation"].as_str().unwrap();
                let body = json!({ "documentId": format!("sha256:{}", hashes[op]), "variables": substitute(&trigger["variables"], &vars) });
                let mut req = trusted.http.post(trusted.url("/graphql")).json(&body);
                if let Some(t) = auth {
                    req = req.bearer_auth(t);
                }
                let answer: Value = req.send().await.unwrap().json().await.unwrap();
                assert!(answer.get("errors").is_none(), "{name}'s trigger {op}: {answer}");
            }
            let msg = ws.recv().await;
            assert_eq!(msg["type"], "next", "{name}: {msg}");
            msg["payload"].clone()
        } else if let Some(files) = fixture.get("files").and_then(Value::as_object) {
            // Uploads: a GraphQL multipart request, the document still named by its hash.
            let operations = json!({ "documentId": document_id, "variables": variables }).to_string();
            let map: serde_json::Map<String, Value> =
                files.keys().enumerate().map(|(i, var)| (i.to_string(), json!([format!("variables.{var}")]))).collect();
            let mut form = reqwest::multipart::Form::new()
                .text("operations", operations)
                .text("map", Value::Object(map).to_string());
            for (i, kind) in files.values().enumerate() {
                let (bytes, mime) = match kind.as_str() {
                    Some("mp4") => (crate::common::mp4(), "video/mp4"),
                    _ => (crate::common::png(&format!("{name}{i}")), "image/png"),
                };
                let part = reqwest::multipart::Part::bytes(bytes).file_name(format!("f{i}")).mime_str(mime).unwrap();
                form = form.part(i.to_string(), part);
            }
            let mut req =
                trusted.http.post(trusted.url("/graphql")).header("apollo-require-preflight", "true").multipart(form);
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let (status, body): (_, Value) = (resp.status(), resp.json().await.unwrap());
            assert_eq!(status, 200, "{name}: {body}");
            body
        } else {
            let mut req = trusted
                .http
                .post(trusted.url("/graphql"))
                .json(&json!({ "documentId": document_id, "variables": variables }));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let (status, body): (_, Value) = (resp.status(), resp.json().await.unwrap());
            assert_eq!(status, 200, "{name}: {body}");
            // The mobile apps send their queries over the socket they hold: same document, same answer.
            if query.contains("\nquery ") || query.starts_with("query ") {
                let mut ws = trusted.ws(auth).await;
                let payload = json!({ "documentId": document_id, "variables": variables });
                ws.send(json!({ "type": "subscribe", "id": "q", "payload": payload })).await;
                let msg = ws.recv().await;
                assert_eq!(msg["type"], "next", "{name} over WebSocket: {msg}");
                // A member's activity lists their requests, these two included, as the background
                // writer lands them: it is the one answer that moves between the two reads.
                let settled = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(me) = v.pointer_mut("/data/me").and_then(Value::as_object_mut) {
                        me.remove("activity");
                        me.remove("loginHistory");
                    }
                    v
                };
                assert_eq!(
                    settled(&msg["payload"]),
                    settled(&body),
                    "{name}: the WebSocket answer differs from the HTTP one"
                );
            }
            body
        };
        assert!(body.get("errors").is_none(), "{name}: {body:#}");
        let data = body["data"].as_object().unwrap_or_else(|| panic!("{name}: no data in {body}"));
        assert!(data.values().all(|v| !v.is_null()), "{name} returned null: {body}");
    }
    assert!(names.len() >= 30);
}

/// Apollo Client's normalised cache holds the contract's post page and a live comment appended from
/// `commentAdded` with nothing missing: the event carries every field the page shows.
#[tokio::test]
async fn apollo_cache_takes_the_post_page_and_a_live_comment_without_missing_fields() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&crate::common::phone(2), "bob").await;
    let first = app.comment(&bob, &c.post, None, "Earlier comment").await;
    app.comment(&c.alice, &c.post, Some(&first), "A reply").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    let out = tokio::process::Command::new("node")
        .args(["apollo-cache.mjs", &app.url("/graphql"), &c.post, &bob])
        .current_dir(dir)
        .output()
        .await
        .expect("run node (run `npm ci --prefix tests/js` first)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["warnings"], json!([]), "{seen:#}");
    assert_eq!(seen["complete"], true, "{seen:#}");
    let ids = seen["commentIds"].as_array().unwrap();
    assert_eq!(ids.first().and_then(Value::as_str), Some(first.as_str()), "{seen:#}");
    assert_eq!(ids.last(), Some(&seen["liveId"]), "{seen:#}");
}
