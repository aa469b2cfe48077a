//! The privacy policy's trust promises: real-name verification (sealed at rest, masked, reviewed,
//! audited, gating board creation), the request log members can read, data export, visitor counts
//! that leave only as aggregates, and erasure of all of it with the account.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::common::{TestApp, phone, png};

const SUBMIT: &str = "mutation($front: Upload!, $back: Upload!, $name: String!, $number: String!) {
    submitIdentityVerification(input: { realName: $name, idNumber: $number, idFront: $front, idBack: $back }) {
        verification { id status idNumberMasked realNameMasked realName documentType } } }";
/// A valid resident ID number (the GB 11643-1999 example).
pub(crate) const ID_NUMBER: &str = "11010519491231002X";

pub(crate) async fn submit(app: &TestApp, token: &str, number: &str) -> (reqwest::StatusCode, Value) {
    app.upload_raw(
        Some(token),
        SUBMIT,
        json!({ "front": null, "back": null, "name": "张三丰", "number": number }),
        json!({ "0": ["variables.front"], "1": ["variables.back"] }),
        vec![("0", "front.png", "image/png", png("front")), ("1", "back.png", "image/png", png("back"))],
        true,
    )
    .await
}

pub(crate) async fn scalar_text(app: &TestApp, sql: &str) -> String {
    let backend = app.state.db.get_database_backend();
    let row = app.state.db.query_one_raw(Statement::from_string(backend, sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

pub(crate) async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let backend = app.state.db.get_database_backend();
    let row = app.state.db.query_one_raw(Statement::from_string(backend, sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Polls the count `sql` until it is `want` (10 s at most), for rows a background sender writes
/// (an outbox records how a send went only after the service answered).
pub(crate) async fn until_count(app: &TestApp, sql: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = scalar(app, sql).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got} after 10 s, expected {want}: {sql}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

pub(crate) async fn reviewer(app: &TestApp, admin: &str, n: u32) -> String {
    let (_, id) = app.register(&phone(n), "reviewer").await;
    let set = "mutation($u: ID!) { setUserRole(input: { userId: $u, role: REVIEWER, reason: \"staffing\" }) { user { role } } }";
    let data = app.gql(Some(admin), set, json!({ "u": id })).await;
    assert_eq!(data["setUserRole"]["user"]["role"], "REVIEWER");
    let login = "mutation($p: String!) { login(input: { phone: $p, password: \"correct horse\" }) { token } }";
    app.gql(None, login, json!({ "p": phone(n) })).await["login"]["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn real_name_verification_is_sealed_reviewed_audited_and_unlocks_boards() {
    let (app, c) = TestApp::community().await;
    let (member, member_id) = app.register(&phone(20), "trader").await;
    let create_board = "mutation { createBoard(input: { slug: \"my-board\", name: \"外貿實戰\" }) { board { slug } } }";
    let (code, _) = app.gql_err(Some(&member), create_board, json!({})).await;
    assert_eq!(code, "VERIFICATION_REQUIRED");

    // A mistyped number is caught by its check digit, and nothing is stored.
    let (_, body) = submit(&app, &member, "110105194912310021").await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.idNumber");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM media").await, 0);
    // Photos must be images by content.
    let (_, body) = app
        .upload_raw(
            Some(&member),
            SUBMIT,
            json!({ "front": null, "back": null, "name": "张三丰", "number": ID_NUMBER }),
            json!({ "0": ["variables.front"], "1": ["variables.back"] }),
            vec![("0", "front.png", "image/png", b"not an image".to_vec()), ("1", "back.png", "image/png", png("b"))],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM identity_verifications").await, 0);

    let (status, body) = submit(&app, &member, ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    let v = &body["data"]["submitIdentityVerification"]["verification"];
    assert_eq!(v["status"], "PENDING");
    assert_eq!(v["idNumberMasked"], "110***********002X");
    assert_eq!(v["realNameMasked"], "张**");
    assert_eq!(v["realName"], "张三丰", "the owner sees their own name");
    assert_eq!(v["documentType"], "CN_RESIDENT_ID");
    let verification = v["id"].as_str().unwrap().to_string();
    let (_, again) = submit(&app, &member, ID_NUMBER).await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "CONFLICT");

    // At rest: neither the number nor the name is in the database, nor the photos on disk.
    let backend = app.state.db.get_database_backend();
    let cols = "real_name_sealed || id_number_sealed || real_name_masked || id_number_masked";
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(backend, format!("SELECT {cols} FROM identity_verifications")))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get_by_index(0).unwrap();
    assert!(!stored.contains("1101051949") && !stored.contains("三丰"), "{stored}");
    let private = app.media_dir.path().join("media/private");
    let files: Vec<_> = std::fs::read_dir(&private).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"IHDR") && !bytes.windows(5).any(|w| w == b"front"));
    }

    // Members cannot see the queue or the photos; signed-out requests are told to sign in.
    let queue = "query { identityVerifications(status: PENDING) { edges { node { id realName idNumberMasked photoUrls user { id } } } } }";
    let (code, _) = app.gql_err(Some(&member), queue, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    let photo_id = files[0].file_name().unwrap().to_str().unwrap().to_string();
    let photo_url = format!("/media/private/{photo_id}");
    assert_eq!(app.http.get(app.url(&photo_url)).send().await.unwrap().status(), 401);
    assert_eq!(app.http.get(app.url(&photo_url)).bearer_auth(&member).send().await.unwrap().status(), 403);
    assert_eq!(app.http.get(app.url(&format!("/media/{photo_id}"))).send().await.unwrap().status(), 404);

    // A reviewer works the queue: full name and photos, every read audited.
    let rev = reviewer(&app, &c.admin, 21).await;
    let data = app.gql(Some(&rev), queue, json!({})).await;
    let item = &data["identityVerifications"]["edges"][0]["node"];
    assert_eq!(item["realName"], "张三丰");
    assert_eq!(item["idNumberMasked"], "110***********002X", "reviewers see the masked number too");
    assert_eq!(item["user"]["id"], member_id);
    let urls: Vec<String> =
        item["photoUrls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
    let mut seen = Vec::new();
    for url in &urls {
        let resp = app.http.get(app.url(url)).bearer_auth(&rev).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "private, no-store");
        assert_eq!(resp.headers()["content-type"], "image/png");
        seen.push(resp.bytes().await.unwrap().to_vec());
    }
    seen.sort();
    let mut sent = vec![png("back"), png("front")];
    sent.sort();
    assert_eq!(seen, sent, "the reviewer sees exactly the photos that were sent");

    let review = "mutation($id: ID!, $d: ReviewDecision!, $r: String) {
        reviewIdentityVerification(input: { verificationId: $id, decision: $d, reason: $r }) { verification { status reason reviewedAt } } }";
    let (code, _) = app.gql_err(Some(&rev), review, json!({ "id": verification, "d": "REJECT" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a rejection needs a reason");
    let (code, _) = app.gql_err(Some(&member), review, json!({ "id": verification, "d": "APPROVE" })).await;
    assert_eq!(code, "FORBIDDEN");
    let data = app.gql(Some(&rev), review, json!({ "id": verification, "d": "APPROVE" })).await;
    assert_eq!(data["reviewIdentityVerification"]["verification"]["status"], "APPROVED");
    let (code, _) = app.gql_err(Some(&rev), review, json!({ "id": verification, "d": "REJECT", "r": "late" })).await;
    assert_eq!(code, "CONFLICT", "decided once");

    // The member is told, and can now open a board.
    let notes = app.gql(Some(&member), "query { notifications { nodes { kind body } } }", json!({})).await;
    assert_eq!(notes["notifications"]["nodes"][0]["kind"], "IDENTITY_REVIEWED");
    let data = app.gql(Some(&member), create_board, json!({})).await;
    assert_eq!(data["createBoard"]["board"]["slug"], "my-board");

    // ADMINs read the audit log: who looked at what of whom, and who decided.
    let log = "query($u: ID) { auditLog(subjectUserId: $u) { nodes { action actorRole target subjectUserId at } } }";
    let (code, _) = app.gql_err(Some(&rev), log, json!({ "u": member_id })).await;
    assert_eq!(code, "FORBIDDEN");
    let data = app.gql(Some(&c.admin), log, json!({ "u": member_id })).await;
    let actions: Vec<&str> =
        data["auditLog"]["nodes"].as_array().unwrap().iter().map(|n| n["action"].as_str().unwrap()).collect();
    for expected in ["VIEW_IDENTITY", "VIEW_REAL_NAME", "VIEW_ID_PHOTO", "APPROVE_IDENTITY"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(!actions.contains(&"SET_ROLE"), "the role change was about the reviewer: {actions:?}");
    let everything = app.gql(Some(&c.admin), log, json!({ "u": null })).await;
    let roles: Vec<&Value> =
        everything["auditLog"]["nodes"].as_array().unwrap().iter().filter(|n| n["action"] == "SET_ROLE").collect();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["actorRole"], "ADMIN");
    assert_eq!(actions.iter().filter(|a| **a == "VIEW_ID_PHOTO").count(), 2, "{actions:?}");
    // One listing read: one entry for the record and one for its full name (written with the
    // listing, not once more by the field).
    assert_eq!(actions.iter().filter(|a| **a == "VIEW_IDENTITY").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "VIEW_REAL_NAME").count(), 1, "{actions:?}");
    assert!(data["auditLog"]["nodes"].as_array().unwrap().iter().all(|n| n["actorRole"] == "REVIEWER"));
}

#[tokio::test]
async fn sealing_keys_rotate_and_reseal_moves_old_data_to_the_new_key() {
    let (app, c) = TestApp::community().await;
    let (member, _) = app.register(&phone(30), "trader").await;
    let (status, _) = submit(&app, &member, ID_NUMBER).await;
    assert_eq!(status, 200);
    let old_key = app.state.config.seal_keys[0].clone();
    let new_key = ecer_gateway::seal::Sealer::generate_entry("t2").unwrap();
    // Rotated: the new key first, the old one still configured.
    let rotated = app.another_instance(|cfg| cfg.seal_keys = vec![new_key.clone(), old_key.clone()]).await;
    let rev = reviewer(&rotated, &c.admin, 31).await;
    let queue = "query { identityVerifications { nodes { realName photoUrls } } }";
    let data = rotated.gql(Some(&rev), queue, json!({})).await;
    assert_eq!(data["identityVerifications"]["nodes"][0]["realName"], "张三丰");
    // A damaged file (another file's bytes under its id: its seal names a different file) is
    // reported and left, and does not stop the rest.
    let private = app.media_dir.path().join("media").join("private");
    let sealed = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| uuid::Uuid::parse_str(n).is_ok()))
        .unwrap();
    let damaged = uuid::Uuid::new_v4();
    std::fs::copy(&sealed, private.join(damaged.to_string())).unwrap();
    let report = ecer_gateway::services::identity::reseal_all(&rotated.state.db, &rotated.state.media).await.unwrap();
    assert_eq!((report.rows, report.files), (1, 2), "{report}");
    assert_eq!(report.failed, vec![format!("private/{damaged}")], "{report}");
    assert!(report.to_string().contains("1 files could not be opened"), "{report}");
    std::fs::remove_file(private.join(damaged.to_string())).unwrap();
    // Run again, nothing is left to do, and files already in segments under the key are skipped.
    let again = ecer_gateway::services::identity::reseal_all(&rotated.state.db, &rotated.state.media).await.unwrap();
    assert_eq!((again.rows, again.files, again.failed.len()), (0, 0, 0), "{again}");
    // Now the old key can go.
    let new_only = app.another_instance(|cfg| cfg.seal_keys = vec![new_key.clone()]).await;
    let data = new_only.gql(Some(&rev), queue, json!({})).await;
    assert_eq!(data["identityVerifications"]["nodes"][0]["realName"], "张三丰");
    let url = data["identityVerifications"]["nodes"][0]["photoUrls"][0].as_str().unwrap().to_string();
    assert_eq!(new_only.http.get(new_only.url(&url)).bearer_auth(&rev).send().await.unwrap().status(), 200);
    // And an instance with only the old key cannot read what was re-sealed.
    let old_only = app.another_instance(|cfg| cfg.seal_keys = vec![old_key.clone()]).await;
    let resp = old_only.http.get(old_only.url(&url)).bearer_auth(&rev).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "internal error", "no detail leaks");
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1";

#[tokio::test]
async fn every_request_is_recorded_and_members_read_their_own_log() {
    let app = TestApp::spawn().await;
    let send = |token: Option<&str>, query: &str, vars: Value| {
        let mut req = app
            .http
            .post(app.url("/graphql"))
            .header("user-agent", IPHONE)
            .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
            .json(&json!({ "query": query, "variables": vars, "operationName": "Op" }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let reg = "mutation Op($p: String!, $c: String!) { register(input: { phone: $p, code: $c, password: \"correct horse\", nickname: \"li\" }) { token } }";
    let code = app.phone_code(&phone(40), "REGISTER").await;
    let body: Value = send(None, reg, json!({ "p": phone(40), "c": code })).await.unwrap().json().await.unwrap();
    let token = body["data"]["register"]["token"].as_str().unwrap().to_string();
    send(Some(&token), "query Op { me { nickname } }", json!({})).await.unwrap();
    // Operations over the WebSocket are recorded too, under the socket's member.
    let mut ws = app.ws(Some(&token)).await;
    ws.subscribe("q", "query Unread { unreadNotificationCount }", json!({})).await;
    ws.next_data("q").await;
    app.state.activity.flush().await;

    let data = app
        .gql(
            Some(&token),
            "query { me { activity(first: 10) { nodes { operation transport device os browser language ip durationMs signIn } }
                loginHistory { nodes { operation signIn device } } } }",
            json!({}),
        )
        .await;
    let entries = data["me"]["activity"]["nodes"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!((entries[0]["transport"].as_str(), entries[0]["operation"].as_str()), (Some("ws"), Some("other")));
    let latest = &entries[1];
    assert_eq!(latest["operation"], "Op");
    assert_eq!(latest["transport"], "http");
    assert_eq!(latest["device"], "smartphone");
    assert!(latest["os"].as_str().unwrap().starts_with("iPhone"));
    assert!(latest["browser"].as_str().unwrap().starts_with("Safari"));
    assert_eq!(latest["language"], "zh-CN");
    assert_eq!(latest["ip"], "127.0.0.1");
    assert!(latest["durationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(entries[2]["signIn"], true, "the registration is filed under the new member");
    let logins = data["me"]["loginHistory"]["nodes"].as_array().unwrap();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["device"], "smartphone");

    // Nobody else reads it.
    let (other, _) = app.register(&phone(41), "other").await;
    let me_id = app.gql(Some(&token), "query { me { id } }", json!({})).await["me"]["id"].clone();
    let (code, _) = app
        .gql_err(Some(&other), "query($u: ID!) { user(id: $u) { activity { nodes { ip } } } }", json!({ "u": me_id }))
        .await;
    assert_eq!(code, "FORBIDDEN");
}

#[tokio::test]
async fn a_data_export_holds_everything_and_only_its_owner_downloads_it() {
    let (app, c) = TestApp::community().await;
    let (bob, bob_id) = app.register(&phone(50), "bob").await;
    let post = app.create_post(&bob, &c.board, "FOB Ningbo offer").await;
    app.comment(&bob, &c.post, None, "interested in 500 units").await;
    for (q, v) in [
        ("mutation($p: ID!) { favoritePost(input: { postId: $p }) { post { id } } }", json!({ "p": c.post })),
        ("mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }", json!({ "p": c.post })),
        ("mutation($b: ID!) { followBoard(input: { boardId: $b }) { board { id } } }", json!({ "b": c.board })),
        (
            "mutation($p: ID!) { recordPostView(input: { postId: $p, durationMs: 1500 }) { post { id } } }",
            json!({ "p": c.post }),
        ),
    ] {
        app.gql(Some(&bob), q, v).await;
    }
    app.gql(Some(&bob), "query { search(query: \"詢盤\") { edges { cursor } } }", json!({})).await;
    let alice_id = app.gql(Some(&c.alice), "query { me { id } }", json!({})).await["me"]["id"].clone();
    app.gql(
        Some(&bob),
        "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"price for 40HQ?\" }) { conversation { id } } }",
        json!({ "to": alice_id }),
    )
    .await;
    // A photo alice sends bob, and a report bob files.
    let photo = crate::common::png("container seal");
    let upload =
        "mutation($file: Upload!) { uploadMedia(input: { file: $file, kind: MESSAGE_PHOTO }) { media { id } } }";
    let uploaded = app.upload(&c.alice, upload, json!({}), ("0", "seal.png", "image/png", photo)).await;
    let send =
        "mutation($to: ID!, $m: [ID!]) { sendMessage(input: { toUserId: $to, mediaIds: $m }) { message { id } } }";
    app.gql(Some(&c.alice), send, json!({ "to": bob_id, "m": [uploaded["uploadMedia"]["media"]["id"]] })).await;
    let report = "mutation($t: ID!) { reportContent(input: { target: $t, reason: SPAM }) { report { id } } }";
    app.gql(Some(&bob), report, json!({ "t": c.post })).await;
    app.state.activity.flush().await;

    let request =
        "mutation { requestDataExport(input: { format: JSON }) { export { id downloadUrl sizeBytes expiresAt } } }";
    let data = app.gql(Some(&bob), request, json!({})).await;
    let url = data["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let resp = app.http.get(app.url(&url)).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let text = resp.text().await.unwrap();
    let archive: Value = serde_json::from_str(&text).unwrap();
    for section in [
        "posts",
        "comments",
        "favorites",
        "postLikes",
        "followingBoards",
        "browseHistory",
        "searchHistory",
        "messages",
        "messageMedia",
        "reportsFiled",
        "sessions",
        "requestLog",
    ] {
        assert!(!archive[section].as_array().unwrap().is_empty(), "{section} is empty: {}", archive[section]);
    }
    assert_eq!(archive["profile"]["nickname"], "bob");
    assert_eq!(archive["browseHistory"][0]["duration_ms"], 1500);
    assert!(text.contains("FOB Ningbo offer") && text.contains("price for 40HQ?") && text.contains("詢盤"));
    assert!(!text.contains("password_hash") && !text.contains("token_hash") && !text.contains("$argon2"));
    let _ = (post, bob_id);

    // Only the owner: others get NOT_FOUND, signed-out requests UNAUTHENTICATED.
    assert_eq!(app.http.get(app.url(&url)).send().await.unwrap().status(), 401);
    assert_eq!(app.http.get(app.url(&url)).bearer_auth(&c.alice).send().await.unwrap().status(), 404);
    let listed = app.gql(Some(&bob), "query { me { dataExports { downloadUrl } } }", json!({})).await;
    assert_eq!(listed["me"]["dataExports"][0]["downloadUrl"], url);
    // One at a time.
    let (code, err) = app.gql_err(Some(&bob), request, json!({})).await;
    assert_eq!(code, "RATE_LIMITED");
    assert!(err["extensions"]["retryAfter"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn visitors_are_counted_once_a_day_and_only_admins_see_counts() {
    let (app, c) = TestApp::community().await;
    let read = "query($p: ID!) { post(id: $p) { id } }";
    let get = |cookie: Option<String>, token: Option<String>| {
        let mut req = app.http.post(app.url("/graphql")).json(&json!({ "query": read, "variables": { "p": c.post } }));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // A first visit hands out the first-party visitor cookie.
    let resp = get(None, None).await.unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("ecer_vid=") && set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    for _ in 0..3 {
        let resp = get(Some(cookie.clone()), None).await.unwrap();
        assert!(resp.headers().get("set-cookie").is_none(), "the cookie is kept");
    }
    let other = get(None, None).await.unwrap().headers()["set-cookie"].to_str().unwrap().to_string();
    let other = other.split(';').next().unwrap().to_string();
    get(Some(other), None).await.unwrap();
    // A member in an app that keeps no cookies counts as one visitor however often they come.
    let (bob, _) = app.register(&phone(60), "bob").await;
    get(None, Some(bob.clone())).await.unwrap();
    get(None, Some(bob.clone())).await.unwrap();
    app.gql(None, "query($s: String!) { board(slug: $s) { id } }", json!({ "s": "b1" })).await;
    app.state.activity.flush().await;

    let stats = "query($t: ID!) { visitorStats(target: $t, days: 7) { day visitors } }";
    let data = app.gql(Some(&c.admin), stats, json!({ "t": c.post })).await;
    let days = data["visitorStats"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["day"], chrono::Utc::now().date_naive().to_string());
    // The first anonymous request (no cookie yet, counted by address), the cookie, the second
    // cookie's first request by address again (same address and agent: no double count), the
    // second cookie, and the member.
    assert_eq!(days[0]["visitors"], 4, "{days:?}");
    let data = app.gql(Some(&c.admin), stats, json!({ "t": c.board })).await;
    assert_eq!(data["visitorStats"][0]["visitors"], 1);
    let (code, _) = app.gql_err(Some(&bob), stats, json!({ "t": c.post })).await;
    assert_eq!(code, "FORBIDDEN");
    // Only aggregates are stored: a day's hash, not the cookie.
    let raw =
        scalar(&app, &format!("SELECT COUNT(*) FROM visitor_views WHERE visitor LIKE '%{}%'", &cookie[9..])).await;
    assert_eq!(raw, 0);
}

#[tokio::test]
async fn only_members_operations_become_request_log_rows() {
    let (app, c) = TestApp::community().await;
    app.state.activity.flush().await;
    let before = scalar(&app, "SELECT COUNT(*) FROM request_log WHERE user_id IS NULL").await;
    for _ in 0..5 {
        app.gql(None, "{ posts(first: 1) { edges { node { id } } } }", json!({})).await;
    }
    let (member, _) = app.register(&phone(71), "trader").await;
    app.gql(Some(&member), "{ me { id } }", json!({})).await;
    app.state.activity.flush().await;
    // Anonymous browsing leaves no rows; the member's registration and query are theirs to see.
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM request_log WHERE user_id IS NULL").await, before);
    let uid = scalar(&app, &format!("SELECT id FROM users WHERE phone = '{}'", phone(71))).await;
    assert_eq!(scalar(&app, &format!("SELECT COUNT(*) FROM request_log WHERE user_id = {uid}")).await, 2);
    let _ = c;
}

#[tokio::test]
async fn deleting_the_account_erases_identity_data_uploads_logs_and_exports() {
    let (app, c) = TestApp::community().await;
    let (member, _) = app.register(&phone(70), "trader").await;
    let (status, _) = submit(&app, &member, ID_NUMBER).await;
    assert_eq!(status, 200);
    let set = "mutation($file: Upload!) { setAvatar(input: { file: $file }) { user { avatarUrl } } }";
    let avatar = app.upload(&member, set, json!({}), ("0", "me.png", "image/png", png("me"))).await;
    let avatar_url = avatar["setAvatar"]["user"]["avatarUrl"].as_str().unwrap().to_string();
    app.gql(Some(&member), "mutation { requestDataExport { export { id } } }", json!({})).await;
    app.state.activity.flush().await;
    let uid = scalar(&app, &format!("SELECT id FROM users WHERE phone = '{}'", phone(70))).await;
    assert!(scalar(&app, &format!("SELECT COUNT(*) FROM request_log WHERE user_id = {uid}")).await > 0);

    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&member), del, json!({})).await;
    app.state.activity.flush().await;
    for table in ["identity_verifications", "media", "data_exports"] {
        let col = if table == "media" { "owner_id" } else { "user_id" };
        assert_eq!(scalar(&app, &format!("SELECT COUNT(*) FROM {table} WHERE {col} = {uid}")).await, 0, "{table}");
    }
    assert_eq!(scalar(&app, &format!("SELECT COUNT(*) FROM request_log WHERE user_id = {uid}")).await, 0);
    for area in ["private", "exports", "public"] {
        let n = std::fs::read_dir(app.media_dir.path().join("media").join(area)).unwrap().count();
        assert_eq!(n, 0, "{area} files left");
    }
    assert_eq!(app.http.get(app.url(&avatar_url)).send().await.unwrap().status(), 404);
    let _ = (c, DbBackend::Sqlite);
}

/// Least privilege for staff: the queue shows what awaits a decision; decided items only on request;
/// ID photos only while pending or within ID_PHOTO_RETENTION_DAYS of the decision; removing
/// someone else's post or comment is on the staff record; an export names no staff member.
#[tokio::test]
async fn staff_see_only_what_their_task_needs_and_their_actions_are_on_record() {
    let (app, c) = TestApp::community().await;
    let (member, member_id) = app.register(&phone(70), "trader").await;
    let (status, body) = submit(&app, &member, ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    let rev = reviewer(&app, &c.admin, 71).await;
    let queue = "query($s: VerificationStatus) { identityVerifications(status: $s) { nodes { id status photoUrls } } }";
    let pending = app.gql(Some(&rev), queue, json!({})).await;
    let item = pending["identityVerifications"]["nodes"][0].clone();
    assert_eq!(item["status"], "PENDING");
    let review = "mutation($id: ID!) { reviewIdentityVerification(input: { verificationId: $id, decision: APPROVE }) { verification { status } } }";
    app.gql(Some(&rev), review, json!({ "id": item["id"] })).await;

    // Decided: not in the default queue; on request, with photos while the window lasts.
    let default = app.gql(Some(&rev), queue, json!({})).await;
    assert_eq!(default["identityVerifications"]["nodes"], json!([]));
    let decided = app.gql(Some(&rev), queue, json!({ "s": "APPROVED" })).await;
    let urls = decided["identityVerifications"]["nodes"][0]["photoUrls"].clone();
    let url = urls[0].as_str().expect("photos within the window").to_string();
    assert_eq!(app.http.get(app.url(&url)).bearer_auth(&rev).send().await.unwrap().status(), 200);
    // An instance whose window is zero days: the decided case's photos are gone from view.
    let strict = app.another_instance(|cfg| cfg.id_photo_retention_days = 0).await;
    let decided = strict.gql(Some(&rev), queue, json!({ "s": "APPROVED" })).await;
    assert_eq!(decided["identityVerifications"]["nodes"][0]["photoUrls"], Value::Null);
    assert_eq!(strict.http.get(strict.url(&url)).bearer_auth(&rev).send().await.unwrap().status(), 403);

    // A moderator removes the member's post and comment: both on the record, with actor and target.
    let (moderator, _) = app.user_with_role(&phone(72), "MODERATOR").await;
    let post = app.create_post(&member, &c.board, "spam").await;
    let comment = app.comment(&member, &c.post, None, "spam too").await;
    let del_post = "mutation($p: ID!, $r: String) { deletePost(input: { postId: $p, reason: $r }) { deletedPostId } }";
    let del =
        "mutation($c: ID!, $r: String) { deleteComment(input: { commentId: $c, reason: $r }) { comment { id } } }";
    // A reason is required, and a blank one is no reason.
    for r in [Value::Null, json!("   ")] {
        let (code, err) = app.gql_err(Some(&moderator), del_post, json!({ "p": post, "r": r })).await;
        assert_eq!(code, "BAD_USER_INPUT");
        assert_eq!(err["extensions"]["field"], "input.reason", "{err}");
    }
    let too_long = "x".repeat(501);
    let (code, _) = app.gql_err(Some(&moderator), del, json!({ "c": comment, "r": too_long })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    app.gql(Some(&moderator), del_post, json!({ "p": post, "r": "advertising, rule 3" })).await;
    app.gql(Some(&moderator), del, json!({ "c": comment, "r": "advertising, rule 3" })).await;
    // The member's own deletions are not staff actions.
    let own = app.create_post(&member, &c.board, "mine").await;
    app.gql(
        Some(&member),
        "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }",
        json!({ "p": own }),
    )
    .await;
    let log = "query($u: ID) { auditLog(subjectUserId: $u) { nodes { action actorRole target actorId reason ip } } }";
    let data = app.gql(Some(&c.admin), log, json!({ "u": member_id })).await;
    let deletions: Vec<&Value> = data["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["action"].as_str().is_some_and(|a| a.starts_with("DELETE_")))
        .collect();
    assert_eq!(deletions.len(), 2, "{deletions:?}");
    assert!(deletions.iter().all(|n| n["actorRole"] == "MODERATOR"));
    // Each says why and where from; the refused attempts left nothing.
    assert!(deletions.iter().all(|n| n["reason"] == "advertising, rule 3" && n["ip"] == "127.0.0.1"), "{deletions:?}");

    // The member's export tells what staff did, not who they are.
    let export =
        app.gql(Some(&member), "mutation { requestDataExport(input: {}) { export { downloadUrl } } }", json!({})).await;
    let download = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let archive: Value =
        app.http.get(app.url(&download)).bearer_auth(&member).send().await.unwrap().json().await.unwrap();
    assert!(!archive["auditLogAboutYou"].as_array().unwrap().is_empty());
    for (section, field) in [("auditLogAboutYou", "actor_id"), ("identityVerifications", "reviewer_id")] {
        let rows = archive[section].as_array().unwrap();
        assert!(!rows.is_empty(), "{section}");
        assert!(rows.iter().all(|r| r.get(field).is_none()), "the export names staff through {section}.{field}");
    }
    // A suspension says why too; a blank reason suspends nobody.
    let member_gid = member_id.clone();
    let ban = "mutation($u: ID!, $r: String!) { banUser(input: { userId: $u, reason: $r }) { user { suspended } } }";
    let (code, _) = app.gql_err(Some(&moderator), ban, json!({ "u": member_gid, "r": "" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let unchanged =
        app.gql(Some(&c.admin), "query($u: ID!) { user(id: $u) { suspended } }", json!({ "u": member_gid })).await;
    assert_eq!(unchanged["user"]["suspended"], false);
    app.gql(Some(&moderator), ban, json!({ "u": member_gid, "r": "repeated spam after warning" })).await;
    let data = app.gql(Some(&c.admin), log, json!({ "u": member_id })).await;
    let newest = &data["auditLog"]["nodes"][0];
    assert_eq!(newest["action"], "BAN_USER");
    assert_eq!(newest["reason"], "repeated spam after warning");
    assert_eq!(newest["ip"], "127.0.0.1");
}
