//! The Entra stand-in as Microsoft's own Python clients meet it, for
//! `interop/agents/run.sh`.
//!
//! MSAL accepts only `https` authorities and skips instance discovery only for
//! Microsoft's own hosts, so the clients run unmodified against
//! `https://login.microsoftonline.com/{tenant}` with two settings of their
//! environment: `HTTPS_PROXY` = this process's CONNECT proxy, which sends every
//! tunnel to the stand-in (plain http on loopback) through a TLS server whose
//! certificate a test CA made here signs; `REQUESTS_CA_BUNDLE` = that CA.
//! Nothing leaves the machine.
//!
//! Prints one JSON line (authority, tenant, the blueprint's client id and secret,
//! an agent identity, one of its agent users, a user token for the blueprint, a
//! second agent identity of another blueprint, the proxy URL and the CA file),
//! then serves until stdin closes.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum_obo_testing::EntraStandIn;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

const HOST: &str = "login.microsoftonline.com";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entra = EntraStandIn::builder()
        .advertised_host(format!("https://{HOST}"))
        .start()
        .await;
    let (ca_pem, acceptor) = tls()?;
    let ca_file =
        std::env::temp_dir().join(format!("axum-obo-interop-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem)?;
    let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let proxy_addr = proxy.local_addr()?;
    let upstream = entra.addr();
    tokio::spawn(async move {
        while let Ok((client, _)) = proxy.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Clients close tunnels without TLS close_notify: not worth a line.
                let _ = tunnel(client, acceptor, upstream).await;
            });
        }
    });

    let agent = entra.add_agent_identity();
    let upn = "agent-helper@contoso.example";
    let agent_user = entra.add_agent_user(&agent, upn);
    let stranger = entra.add_agent_identity_of("5e5e5e5e-5e5e-4e5e-8e5e-5e5e5e5e5e5e");
    let line = json!({
        "authority": format!("https://{HOST}/{}", entra.home_tenant()),
        "tenant": entra.home_tenant(),
        "blueprint": entra.api_client_id(),
        "secret": entra.client_secret(),
        "agent": agent,
        "agent_user_oid": agent_user,
        "agent_user_upn": upn,
        "stranger_agent": stranger,
        "user_token": entra.token().sign(),
        "proxy": format!("http://{proxy_addr}"),
        "ca_file": ca_file,
    });
    println!("{line}");
    // Serve until the script closes stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    let _ = std::fs::remove_file(&ca_file);
    Ok(())
}

/// A test CA (PEM) and a TLS acceptor whose certificate, signed by it, names
/// [`HOST`] and 127.0.0.1.
fn tls() -> Result<(String, TlsAcceptor), Box<dyn std::error::Error>> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "axum-obo interop test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec![HOST.to_owned(), "127.0.0.1".to_owned()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, HOST);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    Ok((ca.pem(), TlsAcceptor::from(Arc::new(config))))
}

/// One `CONNECT` tunnel: answered 200, TLS terminated here, bytes relayed to the stand-in.
async fn tunnel(
    client: TcpStream,
    acceptor: TlsAcceptor,
    upstream: std::net::SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut reader = BufReader::new(client);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    if !request_line.starts_with("CONNECT ") {
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut client = reader.into_inner();
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let mut tls = acceptor.accept(client).await?;
    let mut server = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
    Ok(())
}
