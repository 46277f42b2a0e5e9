//! What the example prints at start with the embedded stand-ins: each user's
//! token once, as a shell variable, then the commands that use it.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// The tokens and addresses the printed commands need.
pub struct Banner<'a> {
    /// The server's address.
    pub addr: SocketAddr,
    /// The stand-ins' addresses (Entra ID, Graph).
    pub entra: &'a str,
    pub graph: &'a str,
    /// A user's token, and a token of a user with the `Admin` app role.
    pub user_token: &'a str,
    pub admin_token: &'a str,
    /// The gRPC service's full name.
    pub grpc_service: &'a str,
    /// Whether `grpcurl` is on the `PATH` (else the gRPC call is shown with curl).
    pub grpcurl: bool,
    /// The demo agent identity serving `GET /agent/me`, if any.
    pub agent: Option<String>,
}

impl Banner<'_> {
    /// The text to print.
    pub fn text(&self) -> String {
        let Banner { addr, .. } = self;
        let mut s = String::new();
        let mut line = |l: &str| {
            s.push_str(l);
            s.push('\n');
        };
        line(&format!("Embedded Entra ID stand-in at {}", self.entra));
        line(&format!("Embedded Graph stand-in at {}\n", self.graph));
        line(
            "Two users' tokens (Adele; Megan, who has the app role Admin), for the commands below:",
        );
        line(&format!("  export TOKEN='{}'", self.user_token));
        line(&format!("  export ADMIN_TOKEN='{}'\n", self.admin_token));
        line("Your Graph profile, fetched on your behalf (On-Behalf-Of):");
        line(&format!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" http://{addr}/me\n"
        ));
        if let Some(agent) = &self.agent {
            line(&format!(
                "The same profile, fetched by the AI agent {agent} on your behalf (Entra Agent ID):"
            ));
            line(&format!(
                "  curl -s -H \"Authorization: Bearer $TOKEN\" http://{addr}/agent/me\n"
            ));
        }
        line("The admin route (app role Admin):");
        line(&format!(
            "  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" http://{addr}/admin\n"
        ));
        line("A background job (a long-running session; GET the id it answers):");
        line(&format!(
            "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" http://{addr}/jobs/me"
        ));
        line(&format!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" http://{addr}/jobs/<id>\n"
        ));
        line("The same profile over gRPC (HTTP/2 cleartext, same port):");
        line(&self.grpc_command());
        line(&format!(
            "Who am I:  curl -s -H \"Authorization: Bearer $TOKEN\" http://{addr}/whoami"
        ));
        line(&format!("Health:    curl -s http://{addr}/healthz\n"));
        s
    }

    /// The gRPC call: with grpcurl when it is installed, else with curl (an empty
    /// `MeRequest` is the 5-byte frame of a zero-length message; the answer is the
    /// raw `MeReply` frame, the display name readable in it).
    fn grpc_command(&self) -> String {
        let Banner {
            addr, grpc_service, ..
        } = self;
        let mut s = String::new();
        if self.grpcurl {
            let _ = writeln!(
                s,
                "  grpcurl -plaintext -import-path examples/server -proto profile.proto \
                 -H \"authorization: Bearer $TOKEN\" {addr} {grpc_service}/Me"
            );
        } else {
            let _ = writeln!(
                s,
                "  printf '\\0\\0\\0\\0\\0' | curl -s --http2-prior-knowledge \
                 -H 'content-type: application/grpc' -H 'te: trailers' \\\n    \
                 -H \"authorization: Bearer $TOKEN\" --data-binary @- --output - \
                 http://{addr}/{grpc_service}/Me"
            );
            s.push_str(
                "  (or install grpcurl for a readable answer: see examples/server/profile.proto)",
            );
            s.push('\n');
        }
        s
    }
}

/// Whether an executable named `name` is on the `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}
