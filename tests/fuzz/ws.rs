//! WebSocket sessions in both protocols: a random script of messages (valid, malformed, binary,
//! before init, reused ids, floods, giant), then everything the server says is checked.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::generate::{self, Gen};
use crate::{Ctx, Failure};

/// Close codes the server may end a socket with; 1011 (internal error) and anything else is a
/// failure.
const CLOSE_CODES: [u16; 11] = [1000, 1001, 1002, 1007, 1009, 4400, 4401, 4403, 4406, 4408, 4409];
/// 4429 (a second connection_init) too.
const TOO_MANY_INITS: u16 = 4429;

/// One step of a session's script.
enum Step {
    Frame(Message),
    /// Sent but the server may close before reading it whole.
    Giant(Message),
}

/// A short label for a failure report: the message's type, or what kind of frame it was.
fn label(step: &Step) -> String {
    let msg = match step {
        Step::Frame(m) => m,
        Step::Giant(_) => return "giant".into(),
    };
    match msg {
        Message::Text(t) => {
            let ty = serde_json::from_str::<Value>(t).ok().and_then(|v| v["type"].as_str().map(String::from));
            let query: String = serde_json::from_str::<Value>(t)
                .ok()
                .and_then(|v| v["payload"]["query"].as_str().map(|q| q.chars().take(80).collect()))
                .unwrap_or_default();
            match ty {
                Some(ty) => format!("{ty} {query}"),
                None => format!("text {:?}", t.chars().take(40).collect::<String>()),
            }
        }
        Message::Binary(_) => "binary".into(),
        Message::Ping(_) => "ping frame".into(),
        _ => "other frame".into(),
    }
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

pub async fn session(ctx: &Ctx, g: &mut Gen<'_>) -> Result<(), Failure> {
    let legacy = g.chance(0.35);
    let (start, stop) = if legacy { ("start", "stop") } else { ("subscribe", "complete") };
    let protocol = if g.chance(0.03) {
        "no-such-protocol"
    } else if legacy {
        "graphql-ws"
    } else {
        "graphql-transport-ws"
    };
    let kind = if legacy { "ws graphql-ws" } else { "ws graphql-transport-ws" };

    let mut script: Vec<Step> = Vec::new();
    // Usually a proper start; sometimes messages before init, a bad init, or two.
    match g.below(10) {
        0 => {}
        1 => script.push(Step::Frame(text(json!({ "type": "connection_init", "payload": "not an object" })))),
        2 => script.push(Step::Frame(text(json!({ "type": "connection_init", "payload": { "authToken": "forged" } })))),
        _ => {
            let payload = match (g.chance(0.6), ctx.tokens.is_empty()) {
                (true, false) => json!({ "authToken": g.pick(&ctx.tokens) }),
                _ => json!({}),
            };
            script.push(Step::Frame(text(json!({ "type": "connection_init", "payload": payload }))));
        }
    }
    let steps = 1 + g.below(12);
    let mut ids: Vec<String> = Vec::new();
    let mut flooded = false;
    for _ in 0..steps {
        let id =
            if !ids.is_empty() && g.chance(0.2) { g.pick(&ids).clone() } else { format!("{}", g.below(1_000_000)) };
        ids.push(id.clone());
        let step = match g.below(20) {
            0..=5 => {
                let kind = if g.chance(0.6) { "subscription" } else { "query" };
                let op = g.operation(kind);
                text(json!({ "type": start, "id": id, "payload": { "query": op.document, "variables": op.variables } }))
            }
            6 => {
                let op = g.operation("mutation");
                text(json!({ "type": start, "id": id, "payload": { "query": op.document, "variables": op.variables } }))
            }
            7..=8 => {
                let doc = match g.below(3) {
                    0 => {
                        let construct = *g.pick(&generate::CONSTRUCTS);
                        let depth = *g.pick(&[100, 5_000, 100_000]);
                        generate::deep(construct, depth)
                    }
                    1 => generate::cycle(3),
                    _ => generate::fan_out(30, 2),
                };
                text(json!({ "type": start, "id": id, "payload": { "query": doc } }))
            }
            9 => {
                let doc = generate::break_document(g, "subscription { notificationReceived { id } }");
                text(json!({ "type": start, "id": id, "payload": { "query": doc } }))
            }
            10 => text(json!({ "type": stop, "id": id })),
            11 => text(json!({ "type": if legacy { "ka" } else { "ping" }, "payload": { "x": 1 } })),
            12 => Message::Text(
                (*g.pick(&[
                    "not json",
                    "{}",
                    "[]",
                    "{\"type\":5}",
                    "{\"type\":\"next\",\"id\":\"1\",\"payload\":{}}",
                    "{\"type\":\"subscribe\",\"id\":\"\",\"payload\":{\"query\":\"{ __typename }\"}}",
                    "{\"type\":\"subscribe\",\"id\":1,\"payload\":{\"query\":\"{ __typename }\"}}",
                    "{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{\"query\":5}}",
                    "{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":[]}",
                    "{\"type\":\"connection_init\"}",
                    "{\"type\":\"connection_terminate\"}",
                    "{\"type\":\"complete\"}",
                    "\u{feff}{\"type\":\"ping\"}",
                ]))
                .into(),
            ),
            13 => Message::Binary(vec![0xff, 0x00, 0x7b].into()),
            14 => {
                let deep = "[".repeat(100_000);
                Message::Text(format!("{{\"type\":\"{start}\",\"id\":\"{id}\",\"payload\":{{\"query\":\"{{ __typename }}\",\"variables\":{{\"v\":{deep}").into())
            }
            // A subscribe flood past MAX_SUBSCRIPTIONS_PER_CONNECTION, in one session of ten.
            15 if !flooded && g.chance(0.25) => {
                flooded = true;
                for i in 0..110 {
                    let q = "subscription { notificationReceived { id } }";
                    script.push(Step::Frame(text(
                        json!({ "type": start, "id": format!("flood{i}"), "payload": { "query": q } }),
                    )));
                }
                continue;
            }
            16 => {
                script.push(Step::Giant(Message::Text(
                    json!({ "type": start, "id": id, "payload": { "query": format!("{{ __typename }} # {}", "x".repeat(1_200_000)) } })
                        .to_string()
                        .into(),
                )));
                continue;
            }
            17 => Message::Ping(vec![1, 2, 3].into()),
            _ => {
                let doc = format!("{{ search(query: \"{}\") {{ totalCount }} }}", "长".repeat(50_000));
                text(json!({ "type": start, "id": id, "payload": { "query": doc } }))
            }
        };
        script.push(Step::Frame(step));
    }

    let mut request = format!("ws://{}/graphql", ctx.addr).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    if g.chance(0.2) && !ctx.tokens.is_empty() {
        let cookie = format!("ecer_session={}", g.pick(&ctx.tokens));
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
        let origin = *g.pick(&["https://evil.example", "null"]);
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(s) => s,
        // Offered only a protocol it does not speak, the server answers the upgrade without one
        // (then closes with 4406), which this client refuses by itself.
        Err(tokio_tungstenite::tungstenite::Error::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        )) if protocol == "no-such-protocol" => {
            ctx.count_kind("ws unknown protocol");
            ctx.count_status("ws: upgraded without a protocol");
            return Ok(());
        }
        Err(e) => return Err(Failure::new("websocket upgrade failed", e.to_string())),
    };
    ctx.count_kind(kind);
    let trace: Vec<String> = script.iter().map(label).collect();
    let trace = format!("{protocol}: {}", trace.join(" | "));
    // Frames that arrive while the script is sent, read as a real client reads them: it never
    // writes for long without reading, and it stops sending once the server has closed.
    let mut early: std::collections::VecDeque<Result<Message, tokio_tungstenite::tungstenite::Error>> =
        std::collections::VecDeque::new();
    let mut closed_early = false;
    for step in script {
        ctx.count_request();
        let (Step::Frame(msg) | Step::Giant(msg)) = step;
        if socket.send(msg).await.is_err() {
            // The server closed the socket (a close code it chose is read below).
            break;
        }
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::ZERO, socket.next()).await {
            closed_early |= matches!(frame, Ok(Message::Close(_)) | Err(_));
            early.push_back(frame);
            if closed_early {
                break;
            }
        }
        if closed_early {
            break;
        }
    }
    // A last message whose answer marks the end: the server handles a socket's messages in order,
    // so once it answers, it has read everything before (results of operations still running may
    // come later, and are not waited for).
    let marker = if legacy {
        json!({ "type": "start", "id": "fuzz-end", "payload": { "query": "{ __typename }" } })
    } else {
        json!({ "type": "ping", "payload": { "fuzz": "end" } })
    };
    if !closed_early {
        let _ = socket.send(text(marker)).await;
    }
    // Read until the server closes or answers the marker, checking every frame.
    let mut seen_close = None;
    let mut ended = false;
    loop {
        let wait = if ended { Duration::from_millis(50) } else { Duration::from_secs(5) };
        let next = match early.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => tokio::time::timeout(wait, socket.next()).await,
        };
        let frame = match next {
            Err(_) => break,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                if seen_close.is_some() {
                    break;
                }
                return Err(Failure::new("websocket reset", format!("{e} after {trace}")));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        match frame {
            Message::Text(t) => {
                let v: Value =
                    serde_json::from_str(&t).map_err(|_| Failure::new("websocket frame is not JSON", t.to_string()))?;
                let ty = v["type"].as_str().unwrap_or("");
                ctx.count_status(&format!("ws {ty}"));
                ended |= (ty == "pong" && v["payload"]["fuzz"] == "end")
                    || (matches!(ty, "complete" | "error") && v["id"] == "fuzz-end");
                match ty {
                    "error" => {
                        let errors = &v["payload"];
                        let errors = if errors.is_array() { errors.clone() } else { json!([errors]) };
                        ctx.check_errors(&errors).map_err(|e| Failure::new("bad error", e))?;
                    }
                    "next" | "data" => {
                        if let Some(errors) = v["payload"].get("errors") {
                            ctx.check_errors(errors)
                                .map_err(|e| Failure::new("ws error without extensions.code", e))?;
                        }
                    }
                    "connection_ack" | "ka" | "ping" | "pong" | "complete" | "connection_error" => {}
                    other => return Err(Failure::new("unknown websocket message", other.to_string())),
                }
            }
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                ctx.count_status(&format!("ws close {}", code.map_or("none".into(), |c| c.to_string())));
                if let Some(code) = code
                    && !CLOSE_CODES.contains(&code)
                    && code != TOO_MANY_INITS
                {
                    return Err(Failure::new("unexpected close code", format!("{code}: {frame:?}")));
                }
                seen_close = Some(code);
            }
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}
