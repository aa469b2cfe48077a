//! Media on S3-compatible object storage (`MEDIA_STORE_URL=s3://…`), against a local S3 server
//! (s3s, checking every request's SigV4 signature) on loopback: public files stream with ranges and
//! entity tags, sealed files hold only ciphertext in the bucket, a large video goes up in parts,
//! instances that share nothing but the bucket serve each other's files, erasure empties the bucket,
//! and a storage that refuses the gateway loses nothing and leaks nothing.

use serde_json::{Value, json};

use crate::common::{MediaHome, TestApp, mp4, phone, png};

const UPLOAD: &str = "mutation($file: Upload!, $kind: MediaKind!) {
    uploadMedia(input: { file: $file, kind: $kind }) { media { id url sizeBytes } } }";

fn bucket_file(home: &MediaHome, area: &str, url_or_id: &str) -> std::path::PathBuf {
    let id = url_or_id.rsplit('/').next().unwrap();
    home.path().join("media").join(area).join(id)
}

fn files_in(home: &MediaHome, area: &str) -> usize {
    std::fs::read_dir(home.path().join("media").join(area)).unwrap().count()
}

#[tokio::test]
async fn public_files_stream_from_the_bucket_with_ranges_and_entity_tags() {
    let (app, c) = TestApp::community_on(TestApp::spawn_media(true, |_| {}).await).await;
    let data =
        app.upload(&c.alice, UPLOAD, json!({ "kind": "POST_IMAGE" }), ("0", "p.png", "image/png", png("s3"))).await;
    let url = data["uploadMedia"]["media"]["url"].as_str().unwrap().to_string();
    // The object is in the bucket, as uploaded.
    assert_eq!(std::fs::read(bucket_file(&app.media_dir, "public", &url)).unwrap(), png("s3"));

    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-length"], png("s3").len().to_string().as_str());
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png("s3").as_slice());

    // A browser or CDN revalidating its copy gets 304 and no body.
    let again = app.http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    let other = app.http.get(&url).header("if-none-match", "\"something-else\"").send().await.unwrap();
    assert_eq!(other.status(), 200);
    // A CDN that weakened the tag still revalidates; so does a client that kept the date.
    let weak = app.http.get(&url).header("if-none-match", format!("W/{etag}")).send().await.unwrap();
    assert_eq!(weak.status(), 304);
    let modified = h["last-modified"].to_str().unwrap().to_string();
    let since = app.http.get(&url).header("if-modified-since", &modified).send().await.unwrap();
    assert_eq!(since.status(), 304);
    let older = app.http.get(&url).header("if-modified-since", "Thu, 01 Jan 2015 00:00:00 GMT").send().await.unwrap();
    assert_eq!(older.status(), 200);
    // HEAD: the headers of a GET, no body.
    let head = app.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], png("s3").len().to_string().as_str());
    assert_eq!(head.headers()["etag"], etag.as_str());
    assert!(head.bytes().await.unwrap().is_empty());

    // One byte range: 206 with Content-Range; outside the file: 416 with the size.
    let part = app.http.get(&url).header("range", "bytes=2-5").send().await.unwrap();
    assert_eq!(part.status(), 206);
    let total = png("s3").len();
    assert_eq!(part.headers()["content-range"], format!("bytes 2-5/{total}").as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &png("s3")[2..=5]);
    let suffix = app.http.get(&url).header("range", "bytes=-3").send().await.unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &png("s3")[total - 3..]);
    let outside = app.http.get(&url).header("range", format!("bytes={}-", total + 10)).send().await.unwrap();
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], format!("bytes */{total}").as_str());

    // A file that is not there is the same 404 as on a folder.
    let missing = format!("/media/{}", uuid::Uuid::new_v4());
    assert_eq!(app.http.get(app.url(&missing)).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_large_video_goes_up_in_parts_and_another_instance_serves_it_from_the_bucket() {
    let app = TestApp::spawn_media(true, |_| {}).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    // Over 8 MiB: two parts of a multipart upload.
    let mut video = mp4();
    video.extend((0..11 * 1024 * 1024).map(|i: u32| (i % 251) as u8));
    let data = app.upload(&alice, UPLOAD, json!({ "kind": "VIDEO" }), ("0", "v.mp4", "video/mp4", video.clone())).await;
    let url = data["uploadMedia"]["media"]["url"].as_str().unwrap().to_string();
    assert_eq!(data["uploadMedia"]["media"]["sizeBytes"], video.len() as f64);
    assert_eq!(std::fs::read(bucket_file(&app.media_dir, "public", &url)).unwrap(), video, "stored whole, in order");

    // A second instance with a media folder of its own: the bucket is all they share.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = app.another_instance(|c| c.media_dir = elsewhere.path().join("media")).await;
    let path = url.split_once("/media/").map(|(_, id)| format!("/media/{id}")).unwrap();
    let start = 10 * 1024 * 1024 + 7;
    let resp =
        other.http.get(other.url(&path)).header("range", format!("bytes={start}-{}", start + 99)).send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &video[start..start + 100]);
    let whole = other.http.get(other.url(&path)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(whole.len(), video.len());
    assert!(whole.as_ref() == video.as_slice());
}

#[tokio::test]
async fn sealed_files_are_ciphertext_in_the_bucket_and_go_with_the_account() {
    let (app, c) = TestApp::community_on(TestApp::spawn_media(true, |_| {}).await).await;
    let (member, _) = app.register(&phone(70), "trader").await;
    let (status, body) = crate::trust::submit(&app, &member, crate::trust::ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    // ID photos: only ciphertext reaches the storage provider.
    let private = app.media_dir.path().join("media/private");
    let photos: Vec<_> = std::fs::read_dir(&private).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(photos.len(), 2);
    for f in &photos {
        let bytes = std::fs::read(f).unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"IHDR") && !bytes.windows(5).any(|w| w == b"front"));
    }
    // A reviewer opens one through the gateway, unsealed.
    let id = photos[0].file_name().unwrap().to_str().unwrap().to_string();
    let resp = app.http.get(app.url(&format!("/media/private/{id}"))).bearer_auth(&c.admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let photo = resp.bytes().await.unwrap();
    assert!(photo.as_ref() == png("front").as_slice() || photo.as_ref() == png("back").as_slice());

    // A photo in a private message: sealed in the bucket, seekable for the two members.
    let (bob, bob_id) = app.register(&phone(71), "bob").await;
    let data = app
        .upload(&member, UPLOAD, json!({ "kind": "MESSAGE_PHOTO" }), ("0", "m.png", "image/png", png("secret")))
        .await;
    let media_id = data["uploadMedia"]["media"]["id"].as_str().unwrap().to_string();
    let send = "mutation($to: ID!, $m: [ID!]) { sendMessage(input: { toUserId: $to, mediaIds: $m }) {
        message { media { url } } } }";
    let sent = app.gql(Some(&member), send, json!({ "to": bob_id, "m": [media_id] })).await;
    let url = sent["sendMessage"]["message"]["media"][0]["url"].as_str().unwrap().to_string();
    let stored = std::fs::read(bucket_file(&app.media_dir, "private", &url)).unwrap();
    assert!(!stored.windows(6).any(|w| w == b"secret"), "sealed before it left the gateway");
    let part = app.http.get(&url).bearer_auth(&bob).header("range", "bytes=0-3").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &png("secret")[0..4]);
    assert_eq!(app.http.get(&url).bearer_auth(&c.alice).send().await.unwrap().status(), 404);
    // HEAD would unseal the whole file for nothing: refused.
    let head = app.http.head(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!((head.status().as_u16(), head.headers()["allow"].to_str().unwrap()), (405, "GET"));

    // A data export: sealed in the bucket, opened for its owner only.
    let request = "mutation { requestDataExport(input: { format: JSON }) { export { downloadUrl } } }";
    let export = app.gql(Some(&member), request, json!({})).await;
    let download = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    assert_eq!(files_in(&app.media_dir, "exports"), 1);
    let archive: Value =
        app.http.get(app.url(&download)).bearer_auth(&member).send().await.unwrap().json().await.unwrap();
    assert!(archive.get("profile").is_some() || archive.as_object().is_some_and(|o| !o.is_empty()), "{archive}");
    assert_eq!(app.http.get(app.url(&download)).bearer_auth(&bob).send().await.unwrap().status(), 404);

    // Erasure empties the bucket of the member's files.
    let avatar = app
        .upload(
            &member,
            "mutation($file: Upload!) { setAvatar(input: { file: $file }) { user { avatarUrl } } }",
            json!({}),
            ("0", "a.png", "image/png", png("face")),
        )
        .await;
    let avatar_url = avatar["setAvatar"]["user"]["avatarUrl"].as_str().unwrap().to_string();
    assert_eq!(app.http.get(app.url(&avatar_url)).send().await.unwrap().status(), 200);
    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&member), del, json!({})).await;
    for area in ["private", "exports", "public"] {
        assert_eq!(files_in(&app.media_dir, area), 0, "{area} objects left in the bucket");
    }
    assert!(app.state.media.list(ecer_gateway::media::Area::Private).await.unwrap().is_empty());
    assert_eq!(app.http.get(app.url(&avatar_url)).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_storage_that_refuses_the_gateway_loses_nothing_and_leaks_nothing() {
    // The right server, the wrong secret: every request is refused with a signature error.
    let app = TestApp::spawn_media(true, |c| c.s3_secret_access_key = Some("not-the-secret".into())).await;
    let (alice, _) = app.register(&phone(2), "alice").await;
    let (status, body) = app
        .upload_raw(
            Some(&alice),
            UPLOAD,
            json!({ "file": null, "kind": "POST_IMAGE" }),
            json!({ "0": ["variables.file"] }),
            vec![("0", "p.png", "image/png", png("x"))],
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("SignatureDoesNotMatch") && !message.contains("127.0.0.1"), "{message}");
    // No row points at a file that is not there.
    assert_eq!(crate::trust::scalar(&app, "SELECT COUNT(*) FROM media").await, 0);
    assert_eq!(files_in(&app.media_dir, "public"), 0);
}
