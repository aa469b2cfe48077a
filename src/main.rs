//! Start-up: parse the configuration, set up logging, run the chosen command.

use clap::Parser;
use ecer_gateway::app::{self, AppState};
use ecer_gateway::config::{Cli, Command, LogFormat};
use ecer_gateway::{graphql, seed, services};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: a profile of the gateway under load spent about 28 % of its CPU
/// in malloc/free (many small, short-lived allocations per GraphQL field); see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().on_thread_park(give_back_freed_memory).build();
    match runtime {
        Ok(runtime) => runtime.block_on(start()),
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs when a worker thread runs out of work, at most once a second per thread: mimalloc returns a
/// thread's freed pages to the system only as that thread allocates again, so after a wave of closed
/// sockets an idle instance kept most of their memory resident (issue 14: 545 of 633 MiB, with
/// 19,000 sockets closed). Collecting when idle costs a walk of the thread's heap and never runs
/// while the thread has work.
fn give_back_freed_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        let now = Instant::now();
        if last.get().is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            last.set(Some(now));
            // SAFETY: mi_collect takes no pointers; it frees only memory the thread's heap no longer
            // uses, and is meant to be called from any thread at any time.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    });
}

async fn start() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    if let Err(msg) = cli.config.validate() {
        eprintln!("configuration error: {msg}");
        return std::process::ExitCode::from(2);
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::ExportSchema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::GenerateSealKey { id } => {
            println!("{}", ecer_gateway::seal::Sealer::generate_entry(&id).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::GenerateVapidKey => {
            let (private, public) = services::push::generate_key().map_err(|e| e.to_string())?;
            println!("PUSH_VAPID_PRIVATE_KEY={private}\n# public key (pushPublicKey): {public}");
            Ok(())
        }
        Command::Reseal => {
            let state = AppState::new(config).await.map_err(|e| e.to_string())?;
            let report = services::identity::reseal_all(&state.db, &state.media).await.map_err(|e| format!("{e:?}"))?;
            // Files left on an old key or format: the exit status says so, for scripts.
            if !report.failed.is_empty() {
                return Err(report.to_string());
            }
            println!("{report}");
            Ok(())
        }
        Command::Migrate => {
            AppState::new(config).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        Command::CreateAdmin { phone, password, nickname } => {
            let state = AppState::new(config).await.map_err(|e| e.to_string())?;
            let user = services::accounts::create_admin(&state.db, &state.broker, &phone, password, &nickname)
                .await
                .map_err(|e| format!("{:?}", async_graphql::Error::from(e).message))?;
            println!("administrator ready: user id {}", user.id);
            Ok(())
        }
        Command::Seed { users, posts, seed: rng_seed, planted_interests } => {
            let interests = if planted_interests { seed::Interests::Planted } else { seed::Interests::Uniform };
            let state = AppState::new(config).await.map_err(|e| e.to_string())?;
            let summary = seed::run_with(&state.db, seed::Size { users, posts }, rng_seed, interests)
                .await
                .map_err(|e| format!("seed: {e}"))?;
            println!("{summary}");
            Ok(())
        }
        Command::Serve => {
            let addr = config.listen_addr;
            let demo = config.demo;
            let state = AppState::new(config).await.map_err(|e| e.to_string())?;
            if demo {
                let said = ecer_gateway::demo::prepare(&state).await?;
                println!("{said}\nGraphiQL: http://{addr}/");
            }
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!("ecer-gateway listening on http://{addr}/ (GraphiQL), http://{addr}/graphql");
            app::serve(listener, state, shutdown_signal()).await.map_err(|e| format!("server: {e}"))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
