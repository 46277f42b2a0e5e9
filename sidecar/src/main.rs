//! `axum-obo-sidecar`: see the library docs and `docs/sidecar.md`.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum_obo_sidecar::{metrics, run, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("axum-obo-sidecar: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let (sidecar, embedded) = match run::build(&settings).await {
        Ok(built) => built,
        Err(e) => {
            eprintln!("axum-obo-sidecar: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "axum-obo-sidecar: cannot listen on {}: {e}",
                settings.listen
            );
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(settings.listen);
    let base = format!("http://{addr}");
    if let Some(e) = &embedded {
        println!("{}", run::banner(&base, e));
        // For scripts (interop/sidecar): the demo's identities as JSON.
        if let Ok(path) = std::env::var("AXUM_OBO_SIDECAR_DEMO_FILE") {
            // And, for sidecar/bench.sh, N distinct users' tokens, one a line.
            let users = std::env::var("AXUM_OBO_SIDECAR_DEMO_USERS")
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let written = std::fs::write(format!("{path}.tokens"), run::user_tokens(e, users))
                .and_then(|()| std::fs::write(&path, run::demo_json(&base, e)));
            if let Err(err) = written {
                eprintln!("axum-obo-sidecar: cannot write {path}: {err}");
                return ExitCode::from(1);
            }
        }
    }
    if let metrics::Exposure::Listener(at) = settings.metrics {
        // `run::build` installed the recorder; this is its handle.
        let handle = match metrics::install() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("axum-obo-sidecar: {e}");
                return ExitCode::from(1);
            }
        };
        let listener = match tokio::net::TcpListener::bind(at).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("axum-obo-sidecar: cannot listen on {at} (OBO_METRICS_LISTEN): {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(addr = %listener.local_addr().unwrap_or(at), "serving /metrics");
        let metrics_app = sidecar.metrics_router(handle);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics_app).await {
                tracing::error!(error = %e, "the /metrics listener stopped");
            }
        });
    }
    if settings.metrics != metrics::Exposure::Off {
        if let Ok(handle) = metrics::install() {
            metrics::spawn_upkeep(handle);
        }
    }
    tracing::info!(%addr, "listening");
    let app = sidecar
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
    {
        eprintln!("axum-obo-sidecar: {e}");
        return ExitCode::from(1);
    }
    drop(embedded);
    ExitCode::SUCCESS
}

/// SIGTERM (the orchestrator) or Ctrl-C: stop accepting, finish what is in flight.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
