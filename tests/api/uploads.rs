//! GraphQL multipart uploads: content-checked types, size and count limits with their own codes,
//! the CSRF preflight rule, the public media route (with ranges for video), avatars and post media.

use serde_json::{Value, json};

use crate::common::{TestApp, mp4, phone, picture, png};

const UPLOAD: &str = "mutation($file: Upload!, $kind: MediaKind!) {
    uploadMedia(input: { file: $file, kind: $kind }) { media { id kind mimeType sizeBytes url } } }";

fn one_file() -> Value {
    json!({ "0": ["variables.file"] })
}

#[tokio::test]
async fn uploads_are_typed_by_content_and_served_publicly() {
    let (app, c) = TestApp::community().await;
    // A PNG sent under a misleading name and type is stored as what it is.
    let data = app
        .upload(
            &c.alice,
            UPLOAD,
            json!({ "kind": "POST_IMAGE" }),
            ("0", "invoice.exe", "application/octet-stream", png("a")),
        )
        .await;
    let media = &data["uploadMedia"]["media"];
    assert_eq!(media["kind"], "POST_IMAGE");
    assert_eq!(media["mimeType"], "image/png");
    assert_eq!(media["sizeBytes"], png("a").len() as f64);
    let url = media["url"].as_str().unwrap().to_string();
    let resp = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png("a"));

    // Text named like a picture is refused by content.
    let (_, body) = app
        .upload_raw(
            Some(&c.alice),
            UPLOAD,
            json!({ "kind": "POST_IMAGE" }),
            one_file(),
            vec![("0", "photo.png", "image/png", b"<script>alert(1)</script>".to_vec())],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.file");
    // An image is not a video.
    let (_, body) = app
        .upload_raw(
            Some(&c.alice),
            UPLOAD,
            json!({ "kind": "VIDEO", "file": null }),
            one_file(),
            vec![("0", "v.mp4", "video/mp4", png("b"))],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    // ID photos only go through verification, and signed-out uploads are refused.
    let (_, body) = app
        .upload_raw(
            Some(&c.alice),
            UPLOAD,
            json!({ "kind": "ID_PHOTO", "file": null }),
            one_file(),
            vec![("0", "id.png", "image/png", png("c"))],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (_, body) = app
        .upload_raw(
            None,
            UPLOAD,
            json!({ "kind": "POST_IMAGE", "file": null }),
            one_file(),
            vec![("0", "a.png", "image/png", png("d"))],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "refused before the files are read");
    // Unknown ids and private ids are not served.
    assert_eq!(app.http.get(app.url("/media/not-a-uuid")).send().await.unwrap().status(), 404);
    let unknown = format!("/media/{}", uuid::Uuid::new_v4());
    assert_eq!(app.http.get(app.url(&unknown)).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_multipart_post_needs_the_preflight_header() {
    let (app, c) = TestApp::community().await;
    let (status, body) = app
        .upload_raw(
            Some(&c.alice),
            UPLOAD,
            json!({ "kind": "POST_IMAGE", "file": null }),
            one_file(),
            vec![("0", "a.png", "image/png", png("a"))],
            false,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "CSRF_PREFLIGHT_REQUIRED");
}

#[tokio::test]
async fn size_and_count_limits_refuse_with_their_own_codes() {
    let app = TestApp::spawn_with(|c| {
        c.max_image_bytes = 1024;
        c.max_upload_bytes = 8192;
        c.max_upload_files = 2;
    })
    .await;
    let admin = app.admin().await;
    app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    // Over the image limit, under the stream limit: the service refuses it.
    let mut big = png("x");
    big.resize(2000, 0);
    let (_, body) = app
        .upload_raw(
            Some(&alice),
            UPLOAD,
            json!({ "kind": "POST_IMAGE", "file": null }),
            one_file(),
            vec![("0", "a.png", "image/png", big)],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UPLOAD_TOO_LARGE", "{body}");
    // The same bytes are a fine video size.
    let mut video = mp4();
    video.truncate(2000);
    let data = app.upload(&alice, UPLOAD, json!({ "kind": "VIDEO" }), ("0", "v.mp4", "video/mp4", video)).await;
    assert_eq!(data["uploadMedia"]["media"]["mimeType"], "video/mp4");
    // Over the stream limit: refused while reading, before anything runs.
    let mut huge = png("y");
    huge.resize(9000, 0);
    let (status, body) = app
        .upload_raw(
            Some(&alice),
            UPLOAD,
            json!({ "kind": "POST_IMAGE", "file": null }),
            one_file(),
            vec![("0", "a.png", "image/png", huge)],
            true,
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UPLOAD_TOO_LARGE");
    // More files than allowed in one request.
    let many = "mutation($a: Upload!, $b: Upload!, $c: Upload!) {
        a: uploadMedia(input: { file: $a, kind: POST_IMAGE }) { media { id } }
        b: uploadMedia(input: { file: $b, kind: POST_IMAGE }) { media { id } }
        c: uploadMedia(input: { file: $c, kind: POST_IMAGE }) { media { id } } }";
    let (status, body) = app
        .upload_raw(
            Some(&alice),
            many,
            json!({ "a": null, "b": null, "c": null }),
            json!({ "0": ["variables.a"], "1": ["variables.b"], "2": ["variables.c"] }),
            vec![
                ("0", "a.png", "image/png", png("1")),
                ("1", "b.png", "image/png", png("2")),
                ("2", "c.png", "image/png", png("3")),
            ],
            true,
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["extensions"]["code"], "TOO_MANY_UPLOADS");
    // Two files are fine.
    let two = "mutation($a: Upload!, $b: Upload!) {
        a: uploadMedia(input: { file: $a, kind: POST_IMAGE }) { media { id } }
        b: uploadMedia(input: { file: $b, kind: POST_IMAGE }) { media { id } } }";
    let (status, body) = app
        .upload_raw(
            Some(&alice),
            two,
            json!({ "a": null, "b": null }),
            json!({ "0": ["variables.a"], "1": ["variables.b"] }),
            vec![("0", "a.png", "image/png", png("1")), ("1", "b.png", "image/png", png("2"))],
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_ne!(body["data"]["a"]["media"]["id"], body["data"]["b"]["media"]["id"], "{body}");
}

async fn least_statements(app: &TestApp, token: &str, query: &str) -> u64 {
    let mut least = u64::MAX;
    for _ in 0..3 {
        let before = app.statements();
        app.gql(Some(token), query, json!({})).await;
        least = least.min(app.statements() - before);
    }
    least
}

#[tokio::test]
async fn posts_carry_uploaded_images_and_videos_and_avatars_are_replaced() {
    // Uncached: the test counts the statements a list of posts with media costs the database.
    let (app, c) = TestApp::community_on(TestApp::uncached().await).await;
    let image =
        app.upload(&c.alice, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "a.png", "image/png", png("p"))).await;
    let video = app.upload(&c.alice, UPLOAD, json!({ "kind": "VIDEO" }), ("0", "v.mp4", "video/mp4", mp4())).await;
    let ids = [image["uploadMedia"]["media"]["id"].clone(), video["uploadMedia"]["media"]["id"].clone()];
    let create =
        "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id media { id kind url } } } }";
    let data = app
        .gql(
            Some(&c.alice),
            create,
            json!({ "input": { "boardId": c.board, "title": "Sample lot", "body": "photos and a video", "mediaIds": ids } }),
        )
        .await;
    let media = data["createPost"]["post"]["media"].as_array().unwrap().clone();
    assert_eq!(media.iter().map(|m| m["kind"].clone()).collect::<Vec<_>>(), vec![json!("POST_IMAGE"), json!("VIDEO")]);
    // Videos can be streamed in ranges.
    let resp =
        app.http.get(app.url(media[1]["url"].as_str().unwrap())).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().len(), 100);
    // Someone else's upload cannot be attached; nor one already on a post, even by its owner; nor
    // one upload twice.
    let (bob, _) = app.register(&phone(7), "bob").await;
    let spare = app.upload(&bob, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "s.png", "image/png", png("s"))).await;
    let spare = spare["uploadMedia"]["media"]["id"].clone();
    for (token, media_ids) in [(&bob, json!([ids[0]])), (&c.alice, json!([ids[0]])), (&bob, json!([spare, spare]))] {
        let input = json!({ "input": { "boardId": c.board, "title": "t", "body": "b", "mediaIds": media_ids } });
        let (code, err) = app.gql_err(Some(token), create, input).await;
        assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.mediaIds")));
    }
    let post_count = "query { posts(first: 50) { edges { cursor } } }";
    let posts = app.gql(None, post_count, json!({})).await;
    assert_eq!(posts["posts"]["edges"].as_array().unwrap().len(), 2, "a refused post is not half made");
    // Lists load post media without one statement per post. Signed in (never a response-cache
    // answer), and the least of three runs: the thumbnail worker's statements for the images just
    // uploaded land in the same counter.
    let list = "query { posts(first: 20) { edges { node { id media { url } } } } }";
    let one = least_statements(&app, &c.alice, list).await;
    for i in 0..5 {
        app.create_post(&c.alice, &c.board, &format!("more {i}")).await;
    }
    assert_eq!(least_statements(&app, &c.alice, list).await, one, "statements do not grow with the page");

    // Deleting the post takes its media off the public route.
    let post_id = data["createPost"]["post"]["id"].clone();
    let delete = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }";
    app.gql(Some(&c.alice), delete, json!({ "p": post_id })).await;
    assert_eq!(app.http.get(app.url(media[0]["url"].as_str().unwrap())).send().await.unwrap().status(), 404);

    // Avatars: the new one is served, the old file is deleted.
    let set = "mutation($file: Upload!) { setAvatar(input: { file: $file }) { user { avatarUrl } } }";
    let first = app.upload(&c.alice, set, json!({}), ("0", "me.png", "image/png", png("1"))).await;
    let first_url = first["setAvatar"]["user"]["avatarUrl"].as_str().unwrap().to_string();
    assert_eq!(app.http.get(app.url(&first_url)).send().await.unwrap().status(), 200);
    let second = app.upload(&c.alice, set, json!({}), ("0", "me2.png", "image/png", png("2"))).await;
    let second_url = second["setAvatar"]["user"]["avatarUrl"].as_str().unwrap().to_string();
    assert_ne!(first_url, second_url);
    assert_eq!(app.http.get(app.url(&first_url)).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(app.url(&second_url)).send().await.unwrap().bytes().await.unwrap().to_vec(), png("2"));
}

const UPLOAD_DETAILED: &str = "mutation($file: Upload!, $kind: MediaKind!) {
    uploadMedia(input: { file: $file, kind: $kind }) {
        media { id kind url width height durationMs thumbnailUrl posterUrl } } }";

const MEDIA_NODE: &str = "query($id: ID!) { node(id: $id) { __typename id
    ... on Media { kind url width height thumbnailUrl posterUrl } } }";

/// Longest wait for the background worker to make (or give up) a thumbnail.
const THUMBNAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `node(id)` of a Media, asked until its `thumbnailUrl` is set (bounded by [`THUMBNAIL_WAIT`]).
async fn thumbnail_of(app: &TestApp, token: Option<&str>, id: &Value) -> String {
    let deadline = tokio::time::Instant::now() + THUMBNAIL_WAIT;
    loop {
        let data = app.gql(token, MEDIA_NODE, json!({ "id": id })).await;
        if let Some(url) = data["node"]["thumbnailUrl"].as_str() {
            return url.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no thumbnail after {THUMBNAIL_WAIT:?}: {data}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The thumbnail job's status of an upload, as stored (the id is the upload's global id).
async fn thumbnail_status(app: &TestApp, id: &Value) -> Option<String> {
    use base64::Engine as _;
    use sea_orm::ConnectionTrait;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id.as_str().unwrap()).unwrap();
    let uuid = String::from_utf8(raw).unwrap().strip_prefix("Media:").unwrap().to_string();
    let db = &app.state.db;
    let sql = format!("SELECT thumbnail_status FROM media WHERE id = '{uuid}'");
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    row.unwrap().try_get_by_index::<Option<String>>(0).unwrap()
}

/// The upload's file name on disk (its UUID) from its absolute URL.
fn file_name(url: &str) -> String {
    url.rsplit("/media/").next().unwrap().split('/').next().unwrap().to_string()
}

/// A PNG that declares `w` x `h` pixels in a valid header and holds none: a decompression bomb's
/// shape.
fn declared_png(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut crc = !0u32;
    for b in &ihdr {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

#[tokio::test]
async fn images_are_sized_at_upload_and_thumbnailed_in_the_background_behind_the_same_check() {
    let (app, c) = TestApp::community().await;
    let data = app
        .upload(
            &c.alice,
            UPLOAD_DETAILED,
            json!({ "kind": "POST_IMAGE" }),
            ("0", "p.png", "image/png", picture(640, 480)),
        )
        .await;
    let media = data["uploadMedia"]["media"].clone();
    assert_eq!((media["width"].clone(), media["height"].clone()), (json!(640), json!(480)), "{media}");
    assert_eq!((media["durationMs"].clone(), media["posterUrl"].clone()), (Value::Null, Value::Null));
    // Every URL is absolute, on the gateway's public base (PUBLIC_API_URL).
    let url = media["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("http://{}/media/", app.addr)), "{url}");

    // The thumbnail comes after the upload, from the background worker: a JPEG that fits in 320 px.
    let thumb = thumbnail_of(&app, None, &media["id"]).await;
    assert_eq!(thumb, format!("{url}/thumbnail"));
    let resp = app.http.get(&thumb).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let small = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240));
    assert_eq!(thumbnail_status(&app, &media["id"]).await.as_deref(), Some("READY"));

    // The thumbnail is served under the file's own check: gone with the post that shows it.
    let create = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id media { id url thumbnailUrl } } } }";
    let post = app
        .gql(
            Some(&c.alice),
            create,
            json!({ "input": { "boardId": c.board, "title": "t", "body": "b", "mediaIds": [media["id"]] } }),
        )
        .await;
    assert_eq!(post["createPost"]["post"]["media"][0]["thumbnailUrl"], json!(thumb));
    let delete = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }";
    app.gql(Some(&c.alice), delete, json!({ "p": post["createPost"]["post"]["id"] })).await;
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(&thumb).send().await.unwrap().status(), 404);
    assert_eq!(app.gql(None, MEDIA_NODE, json!({ "id": media["id"] })).await["node"], Value::Null);

    // Erasure deletes an upload's thumbnail with it.
    let (bob, _) = app.register(&phone(8), "bob").await;
    let data = app
        .upload(&bob, UPLOAD_DETAILED, json!({ "kind": "POST_IMAGE" }), ("0", "b.png", "image/png", picture(50, 40)))
        .await;
    let spare = data["uploadMedia"]["media"].clone();
    assert_eq!((spare["width"].clone(), spare["height"].clone()), (json!(50), json!(40)));
    let thumb = thumbnail_of(&app, Some(&bob), &spare["id"]).await;
    let on_disk = app.media_dir.path().join("media/thumbnails").join(file_name(&thumb));
    assert!(on_disk.exists(), "{}", on_disk.display());
    let erase = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&bob), erase, json!({})).await;
    assert!(!on_disk.exists(), "the thumbnail is erased with the upload");
    assert_eq!(app.http.get(&thumb).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_bomb_is_refused_and_an_undecodable_image_gets_no_thumbnail_and_no_retry() {
    let (app, c) = TestApp::community().await;
    // A valid header that declares 100,000 x 100,000 pixels: refused at upload, nothing is decoded.
    let (status, body) = app
        .upload_raw(
            Some(&c.alice),
            UPLOAD,
            json!({ "kind": "POST_IMAGE", "file": null }),
            one_file(),
            vec![("0", "bomb.png", "image/png", declared_png(100_000, 100_000))],
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.file");
    // A PNG whose header cannot be read is kept (its content is a PNG) with no size; the worker
    // gives it up once, and the gateway goes on.
    let data = app
        .upload(&c.alice, UPLOAD_DETAILED, json!({ "kind": "POST_IMAGE" }), ("0", "d.png", "image/png", png("d")))
        .await;
    let media = data["uploadMedia"]["media"].clone();
    assert_eq!((media["width"].clone(), media["height"].clone()), (Value::Null, Value::Null));
    let deadline = tokio::time::Instant::now() + THUMBNAIL_WAIT;
    while thumbnail_status(&app, &media["id"]).await.as_deref() != Some("FAILED") {
        assert!(tokio::time::Instant::now() < deadline, "the damaged image was not given up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let node = app.gql(None, MEDIA_NODE, json!({ "id": media["id"] })).await;
    assert_eq!(node["node"]["thumbnailUrl"], Value::Null);
    let url = media["url"].as_str().unwrap();
    assert_eq!(app.http.get(format!("{url}/thumbnail")).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(url).send().await.unwrap().status(), 200, "the file itself is still served");
    // Given up for good: another pass of the worker does not take it again.
    ecer_gateway::services::thumbnails::make_due(&app.state.db, &app.state.media).await.unwrap();
    assert_eq!(thumbnail_status(&app, &media["id"]).await.as_deref(), Some("FAILED"));
}

#[tokio::test]
async fn a_video_takes_an_optional_poster_that_also_gives_its_thumbnail() {
    let (app, c) = TestApp::community().await;
    let with_poster = "mutation($file: Upload!, $poster: Upload, $kind: MediaKind!) {
        uploadMedia(input: { file: $file, kind: $kind, poster: $poster }) {
            media { id url width height durationMs thumbnailUrl posterUrl } } }";
    let files = |poster: Vec<u8>| {
        vec![("0", "v.mp4", "video/mp4", mp4()), ("1", "poster.png", "application/octet-stream", poster)]
    };
    let map = json!({ "0": ["variables.file"], "1": ["variables.poster"] });
    let (status, body) = app
        .upload_raw(
            Some(&c.alice),
            with_poster,
            json!({ "kind": "VIDEO", "file": null, "poster": null }),
            map.clone(),
            files(picture(400, 300)),
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let video = body["data"]["uploadMedia"]["media"].clone();
    let url = video["url"].as_str().unwrap().to_string();
    assert_eq!(video["posterUrl"], json!(format!("{url}/poster")), "{video}");
    // This test file's MP4 has no `moov` box: its size and duration are unknown, not made up.
    assert_eq!((video["width"].clone(), video["durationMs"].clone()), (Value::Null, Value::Null));
    let poster = app.http.get(video["posterUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(poster.status(), 200);
    assert_eq!(poster.headers()["content-type"], "image/png", "typed by its content, not the claimed type");
    assert_eq!(poster.bytes().await.unwrap().to_vec(), picture(400, 300));
    let thumb = thumbnail_of(&app, Some(&c.alice), &video["id"]).await;
    let small = image::load_from_memory(&app.http.get(&thumb).send().await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240), "the video's thumbnail is its poster's");

    // Without a poster: no poster, no thumbnail, ever.
    let plain =
        app.upload(&c.alice, UPLOAD_DETAILED, json!({ "kind": "VIDEO" }), ("0", "v.mp4", "video/mp4", mp4())).await;
    let plain = &plain["uploadMedia"]["media"];
    assert_eq!((plain["posterUrl"].clone(), plain["thumbnailUrl"].clone()), (Value::Null, Value::Null));
    assert_eq!(thumbnail_status(&app, &plain["id"]).await, None);
    // A poster must be an image, and only a video takes one.
    let (_, body) = app
        .upload_raw(
            Some(&c.alice),
            with_poster,
            json!({ "kind": "VIDEO", "file": null, "poster": null }),
            map.clone(),
            files(b"not a picture at all".to_vec()),
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.poster");
    let (_, body) = app
        .upload_raw(
            Some(&c.alice),
            with_poster,
            json!({ "kind": "POST_IMAGE", "file": null, "poster": null }),
            map,
            vec![("0", "a.png", "image/png", picture(10, 10)), ("1", "b.png", "image/png", picture(10, 10))],
            true,
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.poster");
}

#[tokio::test]
async fn update_post_media_ids_replaces_reorders_and_refuses_what_create_refuses() {
    let (app, c) = TestApp::community().await;
    let mut ids = Vec::new();
    for tag in ["a", "b", "c"] {
        let data =
            app.upload(&c.alice, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "p.png", "image/png", png(tag))).await;
        ids.push(data["uploadMedia"]["media"].clone());
    }
    let (a, b, cc) = (&ids[0], &ids[1], &ids[2]);
    let create = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }";
    let post = app
        .gql(
            Some(&c.alice),
            create,
            json!({ "input": { "boardId": c.board, "title": "t", "body": "b", "mediaIds": [a["id"], b["id"]] } }),
        )
        .await["createPost"]["post"]["id"]
        .clone();
    let update = "mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title media { id } } } }";
    let media_of = |data: &Value| -> Vec<Value> {
        data["updatePost"]["post"]["media"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect()
    };
    // Replace: b stays, c joins, a is taken off and deleted.
    let data =
        app.gql(Some(&c.alice), update, json!({ "input": { "postId": post, "mediaIds": [b["id"], cc["id"]] } })).await;
    assert_eq!(media_of(&data), vec![b["id"].clone(), cc["id"].clone()]);
    assert_eq!(app.http.get(a["url"].as_str().unwrap()).send().await.unwrap().status(), 404);
    assert_eq!(app.gql(None, MEDIA_NODE, json!({ "id": a["id"] })).await["node"], Value::Null);
    // Reorder.
    let data =
        app.gql(Some(&c.alice), update, json!({ "input": { "postId": post, "mediaIds": [cc["id"], b["id"]] } })).await;
    assert_eq!(media_of(&data), vec![cc["id"].clone(), b["id"].clone()]);
    // Null leaves them as they are.
    let data = app.gql(Some(&c.alice), update, json!({ "input": { "postId": post, "title": "renamed" } })).await;
    assert_eq!(
        (data["updatePost"]["post"]["title"].clone(), media_of(&data)),
        (json!("renamed"), vec![cc["id"].clone(), b["id"].clone()])
    );

    // Refused like createPost: someone else's upload, more than 9, one listed twice; nothing changes.
    let (bob, _) = app.register(&phone(9), "bob").await;
    let theirs = app.upload(&bob, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "x.png", "image/png", png("x"))).await;
    let mut ten = Vec::new();
    for i in 0..10 {
        let data = app
            .upload(&c.alice, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "p.png", "image/png", png(&i.to_string())))
            .await;
        ten.push(data["uploadMedia"]["media"]["id"].clone());
    }
    for bad in [json!([cc["id"], theirs["uploadMedia"]["media"]["id"]]), json!(ten), json!([b["id"], b["id"]])] {
        let input = json!({ "input": { "postId": post, "title": "should not stick", "mediaIds": bad } });
        let (code, err) = app.gql_err(Some(&c.alice), update, input).await;
        assert_eq!(
            (code.as_str(), err["extensions"]["field"].as_str()),
            ("BAD_USER_INPUT", Some("input.mediaIds")),
            "{bad}"
        );
    }
    // Only the author edits, media included.
    let input = json!({ "input": { "postId": post, "mediaIds": [] } });
    assert_eq!(app.gql_err(Some(&bob), update, input).await.0, "FORBIDDEN");
    let page = "query($id: ID!) { post(id: $id) { title media { id } } }";
    let now = app.gql(None, page, json!({ "id": post })).await;
    assert_eq!(now["post"]["title"], "renamed", "a refused edit changes nothing");
    let kept: Vec<Value> = now["post"]["media"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(kept, vec![cc["id"].clone(), b["id"].clone()]);
    // An empty list takes every file off.
    let data = app.gql(Some(&c.alice), update, json!({ "input": { "postId": post, "mediaIds": [] } })).await;
    assert!(media_of(&data).is_empty());
}

#[tokio::test]
async fn media_is_a_node_and_an_id_photo_only_reaches_its_owner_and_reviewers() {
    use base64::Engine as _;
    let (app, c) = TestApp::community().await;
    let data =
        app.upload(&c.alice, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "p.png", "image/png", png("n"))).await;
    let media = &data["uploadMedia"]["media"];
    let node = app.gql(None, MEDIA_NODE, json!({ "id": media["id"] })).await;
    assert_eq!(node["node"]["__typename"], "Media");
    assert_eq!((node["node"]["id"].clone(), node["node"]["url"].clone()), (media["id"].clone(), media["url"].clone()));

    // An ID photo's Media: its owner and reviewers get it (with no URL); anyone else gets null.
    let (member, _) = app.register(&phone(60), "trader").await;
    let (status, body) = crate::trust::submit(&app, &member, crate::trust::ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    let private = app.media_dir.path().join("media/private");
    let photo = std::fs::read_dir(&private).unwrap().next().unwrap().unwrap().file_name();
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Media:{}", photo.to_str().unwrap()));
    for (who, token) in [("the owner", Some(member.as_str())), ("a reviewer", Some(c.admin.as_str()))] {
        let node = app.gql(token, MEDIA_NODE, json!({ "id": id })).await;
        assert_eq!(node["node"]["kind"], "ID_PHOTO", "{who}: {node}");
        assert_eq!((node["node"]["url"].clone(), node["node"]["thumbnailUrl"].clone()), (Value::Null, Value::Null));
    }
    for (who, token) in [("another member", Some(c.alice.as_str())), ("a signed-out visitor", None)] {
        assert_eq!(app.gql(token, MEDIA_NODE, json!({ "id": id })).await["node"], Value::Null, "{who}");
    }
}
