//! GraphQL multipart uploads: content-checked types, size and count limits with their own codes,
//! the CSRF preflight rule, the public media route (with ranges for video), avatars and post media.

use serde_json::{Value, json};

use crate::common::{TestApp, mp4, phone, png};

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

#[tokio::test]
async fn posts_carry_uploaded_images_and_videos_and_avatars_are_replaced() {
    let (app, c) = TestApp::community().await;
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
    // Lists load post media without one statement per post.
    let list = "query { posts(first: 20) { edges { node { id media { url } } } } }";
    let before = app.statements();
    app.gql(None, list, json!({})).await;
    let one = app.statements() - before;
    for i in 0..5 {
        app.create_post(&c.alice, &c.board, &format!("more {i}")).await;
    }
    let before = app.statements();
    app.gql(None, list, json!({})).await;
    assert_eq!(app.statements() - before, one, "statements do not grow with the page");

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
