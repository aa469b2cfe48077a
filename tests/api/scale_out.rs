//! Two gateway instances sharing one database and one Redis: events, viewer counts and session
//! revocations cross instances, and a Redis restart loses no private message.
//!
//! The test runs its own `redis-server` on a free port (it kills and restarts it mid-test, which it
//! must not do to a Redis other tests share).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{TestApp, phone};
use crate::live::{CHAT, live_stream, wait_for_count};
use crate::messaging::{RECEIVED, send};

pub struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    pub fn start_on(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server) for the scale-out test");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { port, child }
    }

    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        OwnRedis::start_on(port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn two_instances_share_events_counts_revocations_and_survive_a_redis_restart() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let a = TestApp::spawn_with(|c| c.redis_url = Some(url.clone())).await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(|c| {
            c.redis_url = Some(url.clone());
            c.redis_prefix = prefix.clone();
        })
        .await;

    // A message sent through A reaches a subscriber on B.
    let (alice, _) = a.register(&phone(1), "alice").await;
    let (bob, bob_id) = a.register(&phone(2), "bob").await;
    let mut bob_on_b = b.ws(Some(&bob)).await;
    bob_on_b.subscribe("m", RECEIVED, json!({})).await;
    b.streams_waiting(1).await;
    send(&a, &alice, &bob_id, "via A").await;
    assert_eq!(bob_on_b.next_data("m").await["messageReceived"]["body"], "via A");

    // A live room's viewer count sums both instances, and falls when one leaves.
    let stream = live_stream(&a, &alice).await;
    let mut viewer_a = a.ws(Some(&bob)).await;
    let mut viewer_b = b.ws(None).await;
    viewer_a.subscribe("c", CHAT, json!({ "s": stream })).await;
    viewer_b.subscribe("c", CHAT, json!({ "s": stream })).await;
    wait_for_count(&a, &stream, 2).await;
    wait_for_count(&b, &stream, 2).await;
    // A chat line said on A reaches the viewer on B.
    a.gql(Some(&alice), crate::live::SAY, json!({ "s": stream, "b": "hello both" })).await;
    assert_eq!(viewer_b.next_data("c").await["liveChat"]["message"]["body"], "hello both");
    assert_eq!(viewer_a.next_data("c").await["liveChat"]["message"]["body"], "hello both");
    drop(viewer_b);
    wait_for_count(&a, &stream, 1).await;

    // Redis dies; messages sent meanwhile are stored, and arrive once it is back.
    redis.kill();
    for i in 0..3 {
        send(&a, &alice, &bob_id, &format!("while down {i}")).await;
    }
    let mut redis = OwnRedis::start_on(redis.port);
    // Until B's subscription is back, a further message may or may not be announced; either way
    // it must arrive exactly once, after the three.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&a, &alice, &bob_id, "after restart").await;
    for want in ["while down 0", "while down 1", "while down 2", "after restart"] {
        assert_eq!(bob_on_b.next_data("m").await["messageReceived"]["body"], want);
    }
    bob_on_b.quiet(300).await;

    // A logout on A closes the same user's socket on B. `closed` waits at most 10 s and a socket
    // re-checks its session by itself only every 10 minutes, so only the event can close it in time.
    // (No wall-clock bound tighter than that: CI machines are shared and a 1 s bound flaked.)
    let wait_until_ready = Instant::now() + Duration::from_secs(10);
    while b.http.get(b.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < wait_until_ready, "B's broker did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.gql(Some(&bob), "mutation { logout { loggedOut } }", json!({})).await;
    assert_eq!(bob_on_b.closed().await, 4403);

    // So does a suspension by staff on A.
    let admin = a.admin().await;
    let (carol, carol_id) = a.register(&phone(3), "carol").await;
    let mut carol_on_b = b.ws(Some(&carol)).await;
    let ban = "mutation($u: ID!) { banUser(input: { userId: $u, reason: \"rule 3: spam\" }) { user { suspended } } }";
    a.gql(Some(&admin), ban, json!({ "u": carol_id })).await;
    assert_eq!(carol_on_b.closed().await, 4403);
    redis.kill();
}
