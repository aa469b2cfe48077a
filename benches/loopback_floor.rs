//! The floor under the live-chat fan-out: what the kernel alone costs to write one 128-byte record
//! to each of N loopback TCP sockets and read it back in client processes on epoll. No WebSocket
//! framing, no JSON, no task scheduling: a gateway can only be slower than this on the same machine.
//! docs/BENCHMARKS.md compares it with `cargo bench --bench realtime -- fanout`.
//!
//! ```sh
//! cargo bench --bench loopback_floor -- 10000 20 250 2 2   # sockets, lines, ms apart, writer threads, client processes
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REC: usize = 128;

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn main() {
    // `cargo bench` appends `--bench` to the arguments of a harness-less bench.
    let mut args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 6 && args.get(1).map(String::as_str) != Some("client") {
        args.truncate(1);
        args.extend(["10000", "20", "250", "2", "2"].map(String::from));
    }
    // 10,000 sockets need more descriptors than the default soft limit: run again under the hard one.
    if std::env::var_os("FLOOR_NOFILE_RAISED").is_none() {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
            .args(&args)
            .env("FLOOR_NOFILE_RAISED", "1")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    if args[1] == "client" {
        client(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap());
        return;
    }
    let conns: usize = args[1].parse().unwrap();
    let lines: usize = args[2].parse().unwrap();
    let interval = Duration::from_millis(args[3].parse().unwrap());
    let threads: usize = args[4].parse().unwrap();
    let procs: usize = args[5].parse().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for _ in 0..procs {
        children.push(
            std::process::Command::new(&exe)
                .args(["client", &addr, &(conns / procs).to_string(), &lines.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut socks = Vec::with_capacity(conns);
    while socks.len() < conns {
        let (s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        socks.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let per = conns.div_ceil(threads);
    let chunks: Vec<Vec<TcpStream>> = {
        let mut v = Vec::new();
        let mut it = socks.into_iter();
        for _ in 0..threads {
            v.push(it.by_ref().take(per).collect());
        }
        v
    };
    let (txs, handles): (Vec<_>, Vec<_>) = chunks
        .into_iter()
        .map(|mut chunk| {
            let (tx, rx) = std::sync::mpsc::channel::<[u8; REC]>();
            let h = std::thread::spawn(move || {
                for rec in rx {
                    for s in chunk.iter_mut() {
                        s.write_all(&rec).unwrap();
                    }
                }
            });
            (tx, h)
        })
        .unzip();
    let cpu0 = cpu();
    for _ in 0..lines {
        let mut rec = [b'x'; REC];
        rec[..8].copy_from_slice(&now_ns().to_le_bytes());
        for tx in &txs {
            tx.send(rec).unwrap();
        }
        std::thread::sleep(interval);
    }
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
    let cpu1 = cpu();
    let mut lat: Vec<u64> = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Ok(v) = l.parse() {
                lat.push(v);
            }
        }
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64 / 1e6;
    println!(
        "conns {conns} threads {threads} procs {procs}: delivered {}/{}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, server CPU {:.2} s ({:.2} us/delivery)",
        lat.len(),
        conns * lines,
        p(0.5),
        p(0.99),
        p(1.0),
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1e6 / (conns * lines) as f64
    );
}

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn client(addr: &str, n: usize, lines: usize) {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().unwrap();
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry().register(&mut s, Token(i), Interest::READABLE).unwrap();
        socks.push((s, Vec::<u8>::new()));
    }
    let mut events = Events::with_capacity(1024);
    let mut lat = Vec::with_capacity(n * lines);
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while lat.len() < n * lines && std::time::Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        for ev in events.iter() {
            let (s, pending) = &mut socks[ev.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        let t = now_ns();
                        pending.extend_from_slice(&buf[..k]);
                        while pending.len() >= REC {
                            let stamp = u64::from_le_bytes(pending[..8].try_into().unwrap());
                            lat.push(t.saturating_sub(stamp));
                            pending.drain(..REC);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    let mut out = String::new();
    for l in lat {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    std::io::stdout().write_all(out.as_bytes()).unwrap();
}
