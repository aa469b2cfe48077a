//! A small SMTP server for tests, on 127.0.0.1:0: it speaks enough of RFC 5321 for a real client
//! (220 greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA up to CRLF.CRLF with dot-unstuffing, RSET,
//! NOOP, QUIT), keeps every message it accepted, and refuses RCPT or DATA with any reply on demand
//! (a 550 once or always, a 451 once...). No TLS, no AUTH: `SMTP_URL=smtp://127.0.0.1:port`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Where a refusal happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The answer to `RCPT TO`.
    Rcpt,
    /// The answer after the message's final `.`.
    Data,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed, CRLF line ends.
    pub data: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    /// Refusals used once each, in order, at their stage.
    once: Mutex<VecDeque<(Stage, String)>>,
    /// A refusal given every time at its stage.
    always: Mutex<Option<(Stage, String)>>,
    /// Refusals given so far.
    refused: Mutex<u32>,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("sink address");
        let shared = Arc::new(Shared::default());
        let for_loop = shared.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, for_loop.clone()));
            }
        });
        SmtpSink { addr, shared }
    }

    /// `smtp://127.0.0.1:port`, for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The next time `stage` comes, answer `reply` (e.g. `451 4.3.0 try again later`).
    pub fn refuse_once(&self, stage: Stage, reply: &str) {
        self.shared.once.lock().unwrap().push_back((stage, reply.to_string()));
    }

    /// Answer `reply` at `stage` every time until [`SmtpSink::heal`].
    pub fn refuse_always(&self, stage: Stage, reply: &str) {
        *self.shared.always.lock().unwrap() = Some((stage, reply.to_string()));
    }

    pub fn heal(&self) {
        *self.shared.always.lock().unwrap() = None;
        self.shared.once.lock().unwrap().clear();
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    pub fn refused(&self) -> u32 {
        *self.shared.refused.lock().unwrap()
    }

    /// Waits (up to 10 s) until `n` messages have arrived; panics otherwise.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the SMTP sink got {} messages, not {n}", self.messages().len());
    }
}

impl Shared {
    fn refusal(&self, stage: Stage) -> Option<String> {
        let mut once = self.once.lock().unwrap();
        let reply = if let Some(i) = once.iter().position(|(s, _)| *s == stage) {
            once.remove(i).map(|(_, r)| r)
        } else {
            self.always.lock().unwrap().as_ref().filter(|(s, _)| *s == stage).map(|(_, r)| r.clone())
        };
        if reply.is_some() {
            *self.refused.lock().unwrap() += 1;
        }
        reply
    }
}

fn angle(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_string(),
        _ => arg.to_string(),
    }
}

async fn session(socket: tokio::net::TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    macro_rules! reply {
        ($text:expr) => {
            if write.write_all(format!("{}\r\n", $text).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    reply!("220 sink.test ESMTP ready");
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            reply!("250-sink.test greets you");
            reply!("250 8BITMIME");
        } else if upper.starts_with("HELO") {
            reply!("250 sink.test");
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&line[10..]);
            rcpts.clear();
            reply!("250 2.1.0 ok");
        } else if upper.starts_with("RCPT TO:") {
            match shared.refusal(Stage::Rcpt) {
                Some(refusal) => reply!(refusal),
                None => {
                    rcpts.push(angle(&line[8..]));
                    reply!("250 2.1.5 ok");
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                reply!("503 5.5.1 no valid recipients");
                continue;
            }
            reply!("354 end with <CRLF>.<CRLF>");
            let mut data = String::new();
            loop {
                let mut l = String::new();
                match lines.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let bare = l.trim_end_matches(['\r', '\n']);
                if bare == "." {
                    break;
                }
                let unstuffed = bare.strip_prefix('.').filter(|_| bare.starts_with("..")).unwrap_or(bare);
                data.push_str(unstuffed);
                data.push_str("\r\n");
            }
            match shared.refusal(Stage::Data) {
                Some(refusal) => reply!(refusal),
                None => {
                    shared.messages.lock().unwrap().push(Received {
                        mail_from: from.clone(),
                        rcpt_to: std::mem::take(&mut rcpts),
                        data,
                    });
                    reply!("250 2.0.0 queued");
                }
            }
        } else if upper == "RSET" {
            from.clear();
            rcpts.clear();
            reply!("250 2.0.0 ok");
        } else if upper == "NOOP" {
            reply!("250 2.0.0 ok");
        } else if upper == "QUIT" {
            reply!("221 2.0.0 bye");
            return;
        } else {
            reply!("502 5.5.2 command not recognized");
        }
    }
}

impl Received {
    /// The value of header `name` (first occurrence), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim_start().to_string());
            }
        }
        value
    }

    /// The subject decoded from RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`).
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").unwrap_or_default())
    }

    /// The body as text, decoded from its transfer encoding (base64 or as is).
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        if encoding == "base64" {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(joined).expect("base64 body"))
                .expect("UTF-8 body")
        } else {
            body.to_string()
        }
    }
}

/// Decodes RFC 2047 encoded words; whitespace between two adjacent encoded words is dropped (6.2),
/// any other is kept (as one space).
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut last_was_word = false;
    for token in value.split([' ', '\t', '\r', '\n']).filter(|t| !t.is_empty()) {
        let word = token.strip_prefix("=?").and_then(|t| t.strip_suffix("?=")).and_then(|w| {
            let mut parts = w.splitn(3, '?');
            Some((parts.next()?, parts.next()?, parts.next()?))
        });
        let (text, is_word) = match word {
            Some((charset, enc, text)) => {
                assert!(charset.eq_ignore_ascii_case("utf-8"), "charset {charset}");
                let bytes = if enc.eq_ignore_ascii_case("b") {
                    base64::engine::general_purpose::STANDARD.decode(text).expect("base64 word")
                } else {
                    q_decode(text)
                };
                (String::from_utf8(bytes).expect("UTF-8 word"), true)
            }
            None => (token.to_string(), false),
        };
        let joined_words = is_word && last_was_word;
        if !out.is_empty() && !joined_words {
            out.push(' ');
        }
        out.push_str(&text);
        last_was_word = is_word;
    }
    out
}

fn q_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex byte"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}
