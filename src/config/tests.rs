//! Table-driven tests of the configuration: every error names its builder field
//! (and its environment variable when the value came from there), defaults, the
//! loopback rule, and redaction.

use std::time::Duration;

use super::*;
use crate::credential::ManagedIdentity;

const T: &str = "11111111-2222-3333-4444-555555555555";
const C: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn base() -> OboConfigBuilder {
    OboConfig::builder().tenant_id(T).client_id(C)
}

#[test]
fn defaults() {
    let c = base().build().unwrap();
    assert_eq!(c.authority_host(), DEFAULT_AUTHORITY_HOST);
    assert_eq!(c.allowed_tenants().collect::<Vec<_>>(), [T]);
    let auds: Vec<_> = c.audiences().collect();
    assert!(auds.contains(&C) && auds.contains(&format!("api://{C}").as_str()));
    assert_eq!(c.leeway(), Duration::from_secs(60));
    assert!(c.policy.allow_app_only);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (base().tenant_id("common"), "tenant_id"),
        (base().tenant_id(""), "tenant_id"),
        (OboConfig::builder().client_id(C), "tenant_id"),
        (base().client_id(""), "client_id"),
        (base().client_id("api://x"), "client_id"),
        (
            base().authority_host("http://login.example.com"),
            "authority_host",
        ),
        (base().authority_host("ftp://127.0.0.1"), "authority_host"),
        (base().authority_host("https://h/tenant"), "authority_host"),
        (base().authority_host("not a url"), "authority_host"),
        (base().allow_tenants(["nope"]), "allowed_tenants"),
        (base().audiences(Vec::<String>::new()), "audiences"),
        (base().leeway(Duration::from_secs(3600)), "leeway"),
        (base().http_timeout(Duration::ZERO), "http_timeout"),
        (base().min_key_refresh(Duration::ZERO), "min_key_refresh"),
        (
            base().min_key_refresh(Duration::from_millis(999)),
            "min_key_refresh",
        ),
        (base().require_user_scopes(["a b"]), "require_user_scopes"),
        (
            base().allowed_client_apps(Vec::<String>::new()),
            "allowed_client_apps",
        ),
        (
            base().managed_identity(ManagedIdentity::UserAssigned {
                client_id: "my-identity".into(),
            }),
            "managed_identity",
        ),
        (
            base()
                .managed_identity(ManagedIdentity::SystemAssigned)
                .managed_identity_endpoint("http://10.0.0.1/msi/token", "h"),
            "managed_identity_endpoint",
        ),
        (
            base()
                .managed_identity(ManagedIdentity::SystemAssigned)
                .managed_identity_endpoint("http://127.0.0.1:1/msi/token", " "),
            "managed_identity_endpoint",
        ),
        (
            base()
                .managed_identity(ManagedIdentity::SystemAssigned)
                .managed_identity_audience("api://a b"),
            "managed_identity_audience",
        ),
        (base().resource_url("mcp.contoso.com/mcp"), "resource_url"),
        (
            base().resource_url("http://mcp.contoso.com/mcp"),
            "resource_url",
        ),
        (base().resource_url("ftp://127.0.0.1/mcp"), "resource_url"),
        (base().resource_url("https://h/mcp#frag"), "resource_url"),
        (
            base().resource_url("https://h/mcp?tenant=x"),
            "resource_url",
        ),
        (base().resource_url("https://user:pw@h/mcp"), "resource_url"),
        (base().resource_url(""), "resource_url"),
        (base().resource_name("Contoso"), "resource_name"),
        (base().app_id_uri("api://contoso.com/tasks"), "app_id_uri"),
        (
            base().resource_url("https://h/mcp").app_id_uri("contoso"),
            "app_id_uri",
        ),
        (
            base().resource_url("https://h/mcp").app_id_uri("api://a b"),
            "app_id_uri",
        ),
        (
            base()
                .resource_url("https://h/mcp")
                .app_id_uri("api://a\"b"),
            "app_id_uri",
        ),
        (
            base().resource_documentation("https://contoso.com/docs"),
            "resource_documentation",
        ),
        (
            base().resource_url("https://h/mcp").resource_name(" "),
            "resource_name",
        ),
        (
            base().resource_url("https://h/mcp").resource_name("a\nb"),
            "resource_name",
        ),
        (
            base()
                .resource_url("https://h/mcp")
                .resource_documentation("http://docs.contoso.com"),
            "resource_documentation",
        ),
        (
            base()
                .resource_url("https://h/mcp")
                .resource_documentation("https://docs.contoso.com/#x"),
            "resource_documentation",
        ),
    ];
    for (b, field) in cases {
        let e = b.build().expect_err(field);
        assert_eq!(e.field(), field, "{e}");
        assert!(e.to_string().contains(field));
    }
}

#[test]
fn http_only_on_loopback() {
    for ok in [
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://[::1]:99",
        "http://localhost:1",
        "https://login.microsoftonline.us/",
    ] {
        let c = base().authority_host(ok).build().unwrap();
        assert!(!c.authority_host().ends_with('/'), "{ok}");
    }
    for bad in [
        "http://10.0.0.1",
        "http://localhost.evil.com",
        "http://[::2]",
    ] {
        assert_eq!(
            base().authority_host(bad).build().unwrap_err().field(),
            "authority_host",
            "{bad}"
        );
    }
}

#[test]
fn client_capabilities_are_checked_at_build() {
    for bad in ["", "c p1", "cp1\"", &"x".repeat(65), "cp1,cp2"] {
        let e = base().client_capabilities([bad]).build().unwrap_err();
        assert_eq!(e.field(), "client_capabilities", "{bad}: {e}");
    }
    let c = base()
        .client_capabilities([" cp1", "cp1", "x.y_z-2"])
        .build()
        .unwrap();
    assert_eq!(c.exchange.client_capabilities, ["cp1", "x.y_z-2"]);
    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        "OBO_CLIENT_CAPABILITIES" => Some(" cp1 ,".to_owned()),
        _ => None,
    };
    let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
    assert_eq!(c.exchange.client_capabilities, ["cp1"]);
    assert!(base()
        .build()
        .unwrap()
        .exchange
        .client_capabilities
        .is_empty());
}

/// The protected resource: absent by default; https or loopback http; the
/// metadata it produces; read from the environment.
#[test]
fn resource_url_and_its_metadata() {
    let c = base().build().unwrap();
    assert!(c.resource_url().is_none() && c.resource_metadata().is_none());
    assert!(c.resource.is_none(), "nothing for the layer to do");

    for ok in [
        "https://mcp.contoso.com/mcp",
        "https://mcp.contoso.com",
        "http://127.0.0.1:3000/mcp",
        "http://localhost:8080/",
    ] {
        let c = base().resource_url(format!(" {ok} ")).build().unwrap();
        assert_eq!(c.resource_url(), Some(ok), "trimmed, otherwise as given");
    }
    let c = base()
        .allow_tenants(["99999999-2222-3333-4444-555555555555"])
        .require_user_scopes(["access_as_user"])
        .resource_url("https://mcp.contoso.com/mcp")
        .resource_name(" Contoso tasks ")
        .resource_documentation("https://contoso.com/docs/mcp")
        .build()
        .unwrap();
    let m = c.resource_metadata().unwrap();
    assert_eq!(
        m.metadata_url(),
        "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        m.authorization_servers,
        [format!("{DEFAULT_AUTHORITY_HOST}/{T}/v2.0")],
        "the home tenant only: the allowed tenants are not published by default"
    );
    assert_eq!(m.scopes_supported, [format!("api://{C}/access_as_user")]);
    assert_eq!(m.resource_name.as_deref(), Some("Contoso tasks"));
    assert_eq!(
        m.resource_documentation.as_deref(),
        Some("https://contoso.com/docs/mcp")
    );

    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        "OBO_RESOURCE_URL" => Some("https://mcp.contoso.com/mcp".to_owned()),
        "OBO_RESOURCE_NAME" => Some("Contoso".to_owned()),
        "OBO_RESOURCE_DOCUMENTATION" => Some("https://contoso.com/docs".to_owned()),
        _ => None,
    };
    let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
    let m = c.resource_metadata().unwrap();
    assert_eq!(m.resource, "https://mcp.contoso.com/mcp");
    assert_eq!(m.scopes_supported, [format!("api://{C}/.default")]);
    let with_uri = |k: &str| match k {
        "OBO_APP_ID_URI" => Some(" https://mcp.contoso.com/mcp/ ".to_owned()),
        other => env(other),
    };
    let c = OboConfigBuilder::from_lookup(with_uri)
        .unwrap()
        .require_user_scopes(["access_as_user"])
        .build()
        .unwrap();
    assert_eq!(
        c.resource_metadata().unwrap().scopes_supported,
        ["https://mcp.contoso.com/mcp/access_as_user"],
        "the Application ID URI, its trailing slash dropped"
    );
    assert_eq!(m.resource_name.as_deref(), Some("Contoso"));
    assert_eq!(
        m.resource_documentation.as_deref(),
        Some("https://contoso.com/docs")
    );
}

#[test]
fn the_app_id_uri_is_an_accepted_audience() {
    let mcp = || base().resource_url("https://mcp.contoso.com/mcp");
    let auds = |c: &OboConfig| c.audiences().map(str::to_owned).collect::<Vec<_>>();
    let c = mcp().build().unwrap();
    assert_eq!(auds(&c), [C.to_owned(), format!("api://{C}")]);
    let c = mcp()
        .app_id_uri("https://mcp.contoso.com/mcp")
        .build()
        .unwrap();
    assert_eq!(
        auds(&c),
        [
            C.to_owned(),
            format!("api://{C}"),
            "https://mcp.contoso.com/mcp".to_owned()
        ]
    );
    // As given (trimmed) and without the trailing slash; added to given audiences too.
    let c = mcp()
        .audiences([C])
        .app_id_uri(" api://contoso.com/tasks/ ")
        .build()
        .unwrap();
    assert_eq!(
        auds(&c),
        [
            C.to_owned(),
            "api://contoso.com/tasks".to_owned(),
            "api://contoso.com/tasks/".to_owned()
        ]
    );
}

#[test]
fn guids_are_normalized() {
    let c = base().tenant_id(T.to_uppercase()).build().unwrap();
    assert_eq!(c.tenant_id(), T);
}

/// The metadata names the other allowed tenants only when asked to (builder or
/// `OBO_RESOURCE_LIST_TENANTS`); the flag needs a resource URL.
#[test]
fn resource_metadata_lists_other_tenants_only_on_opt_in() {
    const OTHER: &str = "99999999-2222-3333-4444-555555555555";
    let home = format!("{DEFAULT_AUTHORITY_HOST}/{T}/v2.0");
    let other = format!("{DEFAULT_AUTHORITY_HOST}/{OTHER}/v2.0");
    let servers = |b: OboConfigBuilder| {
        b.build()
            .unwrap()
            .resource_metadata()
            .unwrap()
            .authorization_servers
            .clone()
    };
    let multi = || {
        base()
            .allow_tenants([OTHER])
            .resource_url("https://mcp.contoso.com/mcp")
    };
    assert_eq!(servers(multi()), vec![home.clone()]);
    assert_eq!(
        servers(multi().resource_list_tenants(false)),
        vec![home.clone()]
    );
    assert_eq!(
        servers(multi().resource_list_tenants(true)),
        [home.clone(), other.clone()],
        "opted in: the home tenant first, then each allowed tenant's issuer"
    );
    let e = base().resource_list_tenants(true).build().unwrap_err();
    assert_eq!(e.field(), "resource_list_tenants");
    assert!(base().resource_list_tenants(false).build().is_ok());

    let env = |flag: &'static str| {
        move |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "OBO_ALLOWED_TENANTS" => Some(OTHER.to_owned()),
            "OBO_RESOURCE_URL" => Some("https://mcp.contoso.com/mcp".to_owned()),
            "OBO_RESOURCE_LIST_TENANTS" => Some(flag.to_owned()),
            _ => None,
        }
    };
    for (flag, want) in [
        ("true", vec![home.clone(), other.clone()]),
        (" TRUE ", vec![home.clone(), other.clone()]),
        ("1", vec![home.clone(), other.clone()]),
        ("false", vec![home.clone()]),
        ("0", vec![home.clone()]),
    ] {
        let b = OboConfigBuilder::from_lookup(env(flag)).unwrap();
        assert_eq!(servers(b), want, "OBO_RESOURCE_LIST_TENANTS={flag}");
    }
    let e = OboConfigBuilder::from_lookup(env("yes")).unwrap_err();
    assert_eq!(e.field(), "resource_list_tenants");
    assert!(e.to_string().contains("OBO_RESOURCE_LIST_TENANTS"), "{e}");
}

#[test]
fn from_lookup_reads_variables() {
    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        "AZURE_AUTHORITY_HOST" => Some("http://127.0.0.1:9".to_owned()),
        "OBO_ALLOWED_TENANTS" => Some(" 99999999-2222-3333-4444-555555555555 ,".to_owned()),
        _ => None,
    };
    let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
    assert_eq!(c.authority_host(), "http://127.0.0.1:9");
    assert_eq!(c.allowed_tenants().count(), 2);
    let missing = OboConfigBuilder::from_lookup(|_| None).unwrap_err();
    assert_eq!(missing.field(), "tenant_id");
    assert!(missing.reason().contains("AZURE_TENANT_ID"), "{missing}");
}

/// Errors name the builder field whether the value came from code or from the
/// environment; then the reason names the variable too.
#[test]
fn environment_errors_name_the_field_and_the_variable() {
    const ID: [(&str, &str); 2] = [("AZURE_TENANT_ID", T), ("AZURE_CLIENT_ID", C)];
    let cases = [
        (vec![ID[1]], "tenant_id", "AZURE_TENANT_ID"),
        (vec![ID[0]], "client_id", "AZURE_CLIENT_ID"),
        (
            vec![("AZURE_TENANT_ID", "common"), ID[1]],
            "tenant_id",
            "AZURE_TENANT_ID",
        ),
        (
            vec![ID[0], ("AZURE_CLIENT_ID", "x")],
            "client_id",
            "AZURE_CLIENT_ID",
        ),
        (
            [&ID[..], &[("AZURE_AUTHORITY_HOST", "http://10.0.0.1")]].concat(),
            "authority_host",
            "AZURE_AUTHORITY_HOST",
        ),
        (
            [&ID[..], &[("OBO_GRAPH_URL", "ftp://graph")]].concat(),
            "graph_url",
            "OBO_GRAPH_URL",
        ),
        (
            [&ID[..], &[("OBO_ALLOWED_TENANTS", "nope")]].concat(),
            "allowed_tenants",
            "OBO_ALLOWED_TENANTS",
        ),
        (
            [&ID[..], &[("OBO_CLIENT_CAPABILITIES", "cp1, c p2")]].concat(),
            "client_capabilities",
            "OBO_CLIENT_CAPABILITIES",
        ),
        (
            [
                &ID[..],
                &[("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/axum-obo/token")],
            ]
            .concat(),
            "federated_token_file",
            "AZURE_FEDERATED_TOKEN_FILE",
        ),
        (
            [
                &ID[..],
                &[(
                    "AZURE_CLIENT_CERTIFICATE_PATH",
                    "/nonexistent/axum-obo/cert.pem",
                )],
            ]
            .concat(),
            "client_certificate",
            "AZURE_CLIENT_CERTIFICATE_PATH",
        ),
        (
            [&ID[..], &[("OBO_MANAGED_IDENTITY", "yes")]].concat(),
            "managed_identity",
            "OBO_MANAGED_IDENTITY",
        ),
        (
            [
                &ID[..],
                &[("OBO_RESOURCE_URL", "http://mcp.contoso.com/mcp")],
            ]
            .concat(),
            "resource_url",
            "OBO_RESOURCE_URL",
        ),
        (
            [&ID[..], &[("OBO_RESOURCE_NAME", "Contoso")]].concat(),
            "resource_name",
            "OBO_RESOURCE_NAME",
        ),
        (
            [
                &ID[..],
                &[
                    ("OBO_RESOURCE_URL", "https://h/mcp"),
                    ("OBO_RESOURCE_DOCUMENTATION", "docs"),
                ],
            ]
            .concat(),
            "resource_documentation",
            "OBO_RESOURCE_DOCUMENTATION",
        ),
        (
            [
                &ID[..],
                &[
                    ("OBO_RESOURCE_URL", "https://h/mcp"),
                    ("OBO_APP_ID_URI", "tasks"),
                ],
            ]
            .concat(),
            "app_id_uri",
            "OBO_APP_ID_URI",
        ),
        (
            [
                &ID[..],
                &[
                    ("OBO_MANAGED_IDENTITY", "system"),
                    ("IDENTITY_ENDPOINT", "http://example.com/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
            ]
            .concat(),
            "managed_identity_endpoint",
            "IDENTITY_ENDPOINT",
        ),
    ];
    for (vars, field, variable) in cases {
        let env = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let e = OboConfigBuilder::from_lookup(env)
            .and_then(OboConfigBuilder::build)
            .expect_err(field);
        assert_eq!(e.field(), field, "{e}");
        assert!(e.reason().contains(variable), "{e}");
    }
    // A value set in code after from_lookup is reported without the variable.
    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        _ => None,
    };
    let e = OboConfigBuilder::from_lookup(env)
        .unwrap()
        .tenant_id("common")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "tenant_id");
    assert!(!e.reason().contains("AZURE_TENANT_ID"), "{e}");
}

/// Secret, then certificate, then federated file, then managed identity; the
/// identity endpoint comes through the lookup (else IMDS), and the audience follows
/// the authority host's cloud.
#[test]
fn managed_identity_from_the_environment() {
    let vars = |extra: &'static [(&'static str, &'static str)]| {
        move |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            _ => extra
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned()),
        }
    };
    let kind = |c: &OboConfig| c.exchange.credential.as_ref().map(|c| c.kind());
    let c = OboConfigBuilder::from_lookup(vars(&[
        ("AZURE_CLIENT_SECRET", "s"),
        ("OBO_MANAGED_IDENTITY", "system"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(kind(&c), Some("client_secret"));

    let c = OboConfigBuilder::from_lookup(vars(&[
        ("OBO_MANAGED_IDENTITY", "system"),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(kind(&c), Some("managed_identity"));
    let shown = format!("{:?}", c.exchange.credential);
    assert!(shown.contains("Imds"), "{shown}");
    assert!(shown.contains("api://AzureADTokenExchangeUSGov"), "{shown}");

    let c = OboConfigBuilder::from_lookup(vars(&[
        (
            "OBO_MANAGED_IDENTITY",
            "AAAAAAAA-1111-2222-3333-444444444444",
        ),
        ("IDENTITY_ENDPOINT", "http://169.254.129.5:8081/msi/token"),
        ("IDENTITY_HEADER", "header-secret-123"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    let shown = format!("{:?}", c.exchange.credential);
    assert!(
        shown.contains("aaaaaaaa-1111-2222-3333-444444444444"),
        "{shown}"
    );
    assert!(shown.contains("169.254.129.5:8081"), "{shown}");
    assert!(shown.contains("api://AzureADTokenExchange\""), "{shown}");
    assert!(!shown.contains("header-secret-123"), "{shown}");
    assert!(!format!("{c:?}").contains("header-secret-123"));
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_variables_need_the_feature() {
    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        "OBO_REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
        _ => None,
    };
    let e = OboConfigBuilder::from_lookup(env).unwrap_err();
    assert_eq!(e.field(), "obo_redis_url");
    assert!(e.reason().contains("OBO_REDIS_URL"), "{e}");
    assert!(e.reason().contains("`redis` feature"), "{e}");
}

#[cfg(feature = "redis")]
mod redis_l2 {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn key(b: u8) -> String {
        STANDARD.encode([b; 32])
    }

    fn with_redis() -> OboConfigBuilder {
        base()
            .obo_redis_url("redis://:hunter2@127.0.0.1:6379/2")
            .obo_cache_key(key(1))
    }

    #[test]
    fn settings_and_defaults() {
        assert!(base().build().unwrap().exchange.l2.is_none());
        let c = with_redis()
            .obo_cache_old_keys([key(2), key(3)])
            .build()
            .unwrap();
        let l2 = c.exchange.l2.as_ref().unwrap();
        assert_eq!(l2.prefix, "axum-obo:");
        assert_eq!(l2.timeout, Duration::from_millis(100));
        assert_eq!(l2.old_keys.len(), 2);
        assert!(with_redis()
            .obo_redis_url("rediss://cache.example.com:6380")
            .build()
            .is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (base().obo_redis_url("redis://127.0.0.1"), "obo_cache_key"),
            (base().obo_cache_key(key(1)), "obo_redis_url"),
            (
                with_redis().obo_redis_url("http://127.0.0.1"),
                "obo_redis_url",
            ),
            (
                with_redis().obo_redis_url("127.0.0.1:6379"),
                "obo_redis_url",
            ),
            (with_redis().obo_redis_url("redis://"), "obo_redis_url"),
            (with_redis().obo_cache_key("not base64!"), "obo_cache_key"),
            (
                with_redis().obo_cache_key(STANDARD.encode([1u8; 16])),
                "obo_cache_key",
            ),
            (with_redis().obo_cache_key(""), "obo_cache_key"),
            (
                with_redis().obo_cache_old_keys([key(2), "short".to_owned()]),
                "obo_cache_old_keys",
            ),
            (with_redis().obo_redis_prefix("a b"), "obo_redis_prefix"),
            (
                with_redis().obo_redis_timeout(Duration::ZERO),
                "obo_redis_timeout",
            ),
            (
                with_redis().obo_redis_timeout(Duration::from_secs(60)),
                "obo_redis_timeout",
            ),
        ];
        for (b, field) in cases {
            let e = b.build().expect_err(field);
            assert_eq!(e.field(), field, "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn from_lookup_reads_the_variables() {
        let old = format!(" {} ,{},", key(2), key(3));
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "OBO_REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
            "OBO_CACHE_KEY" => Some(key(1)),
            "OBO_CACHE_OLD_KEYS" => Some(old.clone()),
            "OBO_REDIS_PREFIX" => Some("app1:".to_owned()),
            "OBO_REDIS_TIMEOUT_MS" => Some("250".to_owned()),
            _ => None,
        };
        let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
        let l2 = c.exchange.l2.as_ref().unwrap();
        assert_eq!(l2.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(l2.old_keys.len(), 2);
        assert_eq!(l2.prefix, "app1:");
        assert_eq!(l2.timeout, Duration::from_millis(250));

        let bad = |k: &str| match k {
            "OBO_REDIS_TIMEOUT_MS" => Some("soon".to_owned()),
            other => env(other),
        };
        let short = |k: &str| match k {
            "OBO_CACHE_KEY" => Some("short".to_owned()),
            other => env(other),
        };
        let e = OboConfigBuilder::from_lookup(short)
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "obo_cache_key");
        assert!(e.reason().contains("OBO_CACHE_KEY"), "{e}");

        let e = OboConfigBuilder::from_lookup(bad).unwrap_err();
        assert_eq!(e.field(), "obo_redis_timeout");
        assert!(e.reason().contains("OBO_REDIS_TIMEOUT_MS"), "{e}");
    }

    #[test]
    fn cluster_mode_takes_seed_urls_from_the_builder_and_the_environment() {
        let seeds = "redis://:hunter2@10.0.0.1:7000, redis://:hunter2@10.0.0.2:7001";
        let c = with_redis()
            .obo_redis_url(seeds)
            .obo_redis_cluster(true)
            .build()
            .unwrap();
        let l2 = c.exchange.l2.as_ref().unwrap();
        assert!(l2.cluster);
        assert_eq!(l2.urls().len(), 2);
        let text = format!("{c:?}");
        assert!(
            text.contains("10.0.0.2:7001") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(!with_redis().build().unwrap().exchange.l2.unwrap().cluster);

        let env = |cluster: &'static str, url: &'static str| {
            move |k: &str| match k {
                "AZURE_TENANT_ID" => Some(T.to_owned()),
                "AZURE_CLIENT_ID" => Some(C.to_owned()),
                "OBO_REDIS_URL" => Some(url.to_owned()),
                "OBO_REDIS_CLUSTER" => Some(cluster.to_owned()),
                "OBO_CACHE_KEY" => Some(key(1)),
                _ => None,
            }
        };
        let two = "redis://127.0.0.1:7000,redis://127.0.0.1:7001";
        let c = OboConfigBuilder::from_lookup(env("true", two))
            .unwrap()
            .build()
            .unwrap();
        assert!(c.exchange.l2.as_ref().unwrap().cluster);
        let c = OboConfigBuilder::from_lookup(env("false", "redis://127.0.0.1:6379"))
            .unwrap()
            .build()
            .unwrap();
        assert!(!c.exchange.l2.as_ref().unwrap().cluster);

        let e = OboConfigBuilder::from_lookup(env("sometimes", two)).unwrap_err();
        assert_eq!(e.field(), "obo_redis_cluster");
        assert!(e.reason().contains("OBO_REDIS_CLUSTER"), "{e}");

        // Several URLs without cluster mode, or one bad seed among good ones.
        for (cluster, url) in [
            ("false", two),
            ("true", "redis://127.0.0.1:7000,http://127.0.0.1:7001"),
            ("true", "redis://127.0.0.1:7000,redis://"),
        ] {
            let e = OboConfigBuilder::from_lookup(env(cluster, url))
                .unwrap()
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "obo_redis_url", "{url}: {e}");
            assert!(e.reason().contains("OBO_REDIS_URL"), "{e}");
        }
        let e = with_redis()
            .obo_redis_url(seeds)
            .build()
            .expect_err("several URLs need cluster mode");
        assert!(e.reason().contains("cluster mode"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = with_redis()
            .obo_redis_cluster(true)
            .obo_redis_prefix("{app}:")
            .build()
            .expect_err("a hash tag in the prefix");
        assert_eq!(e.field(), "obo_redis_prefix");
    }

    #[test]
    fn debug_redacts_keys_and_the_redis_password() {
        let c = with_redis().obo_cache_old_keys([key(2)]).build().unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("127.0.0.1:6379"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        for k in [key(1), key(2)] {
            assert!(!text.contains(&k), "{text}");
        }
        assert!(text.contains("L2Key([redacted])"), "{text}");
    }

    fn ca_file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("axum-obo-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn with_entra() -> OboConfigBuilder {
        base()
            .obo_redis_url("rediss://cache.example.com:10000")
            .obo_cache_key(key(1))
            .client_secret("s3cret")
            .obo_redis_entra(true)
    }

    #[test]
    fn tls_ca_file_and_entra_settings() {
        let ca = ca_file("good.pem", &ca_pem());
        let c = with_entra().obo_redis_ca_file(&ca).build().unwrap();
        let l2 = c.exchange.l2.as_ref().unwrap();
        assert!(l2.ca.is_some());
        let entra = l2.entra.as_ref().unwrap();
        assert_eq!(
            entra.tenant, T,
            "tokens for Redis come from the home tenant"
        );
        assert_eq!(entra.username, None, "default: the token's oid");
        let c = with_entra()
            .obo_redis_username("6a3c0e0e-5b1a-4c56-9d8f-0e1f2a3b4c5d")
            .build()
            .unwrap();
        let entra = c.exchange.l2.as_ref().unwrap().entra.clone().unwrap();
        assert_eq!(
            entra.username.as_deref(),
            Some("6a3c0e0e-5b1a-4c56-9d8f-0e1f2a3b4c5d")
        );
        assert!(with_redis()
            .build()
            .unwrap()
            .exchange
            .l2
            .unwrap()
            .entra
            .is_none());
    }

    #[test]
    fn tls_and_entra_errors_name_the_field() {
        let empty = ca_file("empty.pem", "");
        let key_only = ca_file(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let good = ca_file("ca.pem", &ca_pem());
        let cases = [
            (
                with_entra().obo_redis_ca_file("/nonexistent/ca.pem"),
                "obo_redis_ca_file",
                "/nonexistent/ca.pem",
            ),
            (
                with_entra().obo_redis_ca_file(&empty),
                "obo_redis_ca_file",
                "no PEM certificate",
            ),
            (
                with_entra().obo_redis_ca_file(&key_only),
                "obo_redis_ca_file",
                "no PEM certificate",
            ),
            (
                with_redis().obo_redis_ca_file(&good),
                "obo_redis_ca_file",
                "rediss://",
            ),
            (
                base().obo_redis_ca_file(&good),
                "obo_redis_ca_file",
                "Redis URL",
            ),
            (
                with_redis().client_secret("s3cret").obo_redis_entra(true),
                "obo_redis_entra",
                "password",
            ),
            (
                with_entra().obo_redis_url("rediss://someone@cache.example.com:10000"),
                "obo_redis_entra",
                "user",
            ),
            (
                base()
                    .obo_redis_url("rediss://cache.example.com:10000")
                    .obo_cache_key(key(1))
                    .obo_redis_entra(true),
                "obo_redis_entra",
                "AZURE_CLIENT_SECRET",
            ),
            (
                with_entra().obo_redis_username("a b"),
                "obo_redis_username",
                "object id",
            ),
            (
                with_redis().obo_redis_username("someone"),
                "obo_redis_username",
                "OBO_REDIS_ENTRA",
            ),
            // `#insecure` would turn certificate verification off (or, without
            // the redis crate's insecure feature, fail every connection).
            (
                with_entra().obo_redis_url("rediss://cache.example.com:10000/#insecure"),
                "obo_redis_url",
                "#insecure",
            ),
            (
                with_entra()
                    .obo_redis_url("rediss://cache.example.com:10000#insecure")
                    .obo_redis_ca_file(&good),
                "obo_redis_url",
                "#insecure",
            ),
            // Cluster seeds that disagree on TLS.
            (
                with_redis()
                    .obo_redis_cluster(true)
                    .obo_redis_url("rediss://a.example:7000,redis://b.example:7001"),
                "obo_redis_url",
                "TLS",
            ),
            (
                with_entra()
                    .obo_redis_cluster(true)
                    .obo_redis_url("rediss://a.example:7000,redis://b.example:7001")
                    .obo_redis_ca_file(&good),
                "obo_redis_ca_file",
                "rediss://",
            ),
            (
                with_redis()
                    .obo_redis_cluster(true)
                    .obo_redis_url("rediss://a.example:7000,rediss://b.example:7001/#insecure"),
                "obo_redis_url",
                "#insecure",
            ),
        ];
        for (b, field, why) in cases {
            let e = b.build().expect_err(field);
            assert_eq!(e.field(), field, "{e}");
            assert!(e.reason().contains(why), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn from_lookup_reads_the_tls_and_entra_variables() {
        let ca = ca_file("env.pem", &ca_pem());
        let ca = ca.to_str().unwrap().to_owned();
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "AZURE_CLIENT_SECRET" => Some("s3cret".to_owned()),
            "OBO_REDIS_URL" => Some("rediss://cache.example.com:10000".to_owned()),
            "OBO_CACHE_KEY" => Some(key(1)),
            "OBO_REDIS_CA_FILE" => Some(ca.clone()),
            "OBO_REDIS_ENTRA" => Some("true".to_owned()),
            "OBO_REDIS_USERNAME" => Some("6a3c0e0e-5b1a-4c56-9d8f-0e1f2a3b4c5d".to_owned()),
            _ => None,
        };
        let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
        let l2 = c.exchange.l2.as_ref().unwrap();
        assert!(l2.ca.is_some());
        assert!(l2.entra.as_ref().unwrap().username.is_some());

        let cases: [(&str, &str, &str); 4] = [
            ("OBO_REDIS_ENTRA", "maybe", "obo_redis_entra"),
            (
                "OBO_REDIS_CA_FILE",
                "/nonexistent/ca.pem",
                "obo_redis_ca_file",
            ),
            ("AZURE_CLIENT_SECRET", "", "obo_redis_entra"),
            (
                "OBO_REDIS_URL",
                "rediss://:pw@cache.example.com:10000",
                "obo_redis_entra",
            ),
        ];
        for (variable, value, field) in cases {
            let env = |k: &str| {
                if k == variable {
                    Some(value.to_owned())
                } else {
                    env(k)
                }
            };
            let e = match OboConfigBuilder::from_lookup(env) {
                Err(e) => e,
                Ok(b) => b.build().unwrap_err(),
            };
            assert_eq!(e.field(), field, "{variable}: {e}");
            if field != "obo_redis_entra" || variable == "OBO_REDIS_ENTRA" {
                assert!(e.reason().contains(variable), "{variable}: {e}");
            } else {
                assert!(
                    e.reason().contains("OBO_REDIS_ENTRA"),
                    "names the variable: {e}"
                );
            }
        }
    }
}

#[test]
fn debug_shows_no_secrets_and_is_useful() {
    let c = base().build().unwrap();
    assert!(format!("{c:?}").contains(T));
}

/// The resource URL is refused unless it is already in the canonical form the
/// metadata address is derived from (else the document and the challenges would
/// name two spellings of one resource), and unless axum can route its metadata
/// path; the error names the field and, where there is one, the form to use.
#[test]
fn the_resource_url_must_be_canonical_and_routable() {
    let refused = [
        (
            "HTTP://LocalHost:38125/my mcp",
            Some("http://localhost:38125/my%20mcp"),
        ),
        (
            "https://MCP.contoso.com/mcp",
            Some("https://mcp.contoso.com/mcp"),
        ),
        (
            "https://mcp.contoso.com:443/mcp",
            Some("https://mcp.contoso.com/mcp"),
        ),
        ("http://127.0.0.1:80/mcp", Some("http://127.0.0.1/mcp")),
        ("https://h/a/../mcp", Some("https://h/mcp")),
        ("https://h/./mcp", Some("https://h/mcp")),
        ("https://h/{mcp}", Some("https://h/%7Bmcp%7D")),
        ("https://h/tools/:id", None),
        ("https://h/:mcp", None),
        ("https://h/tools/*rest", None),
    ];
    for (given, canonical) in refused {
        let e = base().resource_url(given).build().expect_err(given);
        assert_eq!(e.field(), "resource_url", "{given}: {e}");
        if let Some(canonical) = canonical {
            assert!(e.to_string().contains(canonical), "{given}: {e}");
        }
    }
    for ok in [
        "https://h",
        "https://h/",
        "https://h/mcp",
        "https://h/mcp/",
        "https://h:8443/tools/v1",
        "http://localhost:38125/my%20mcp",
        "http://[::1]:3000/mcp",
        "https://h/a/%7Bb%7D/x*y/a:b",
    ] {
        let c = base()
            .resource_url(ok)
            .build()
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        let m = c.resource_metadata().unwrap();
        assert_eq!(m.resource, ok, "kept as given");
        // The routes build (axum panics on a path it cannot route).
        let _: axum::Router = m.router();
    }
}

#[test]
fn any_tenant_and_the_credential_are_reported() {
    let closed = base().build().unwrap();
    assert!(!closed.admits_any_tenant() && !closed.has_client_credential());
    assert!(!closed.keys.tenants.iter().any(|t| t == "organizations"));
    const OTHER: &str = "99999999-2222-4333-8444-555555555555";
    for open in [
        base().allow_any_tenant(),
        base().allow_tenants(["*"]),
        base().allow_tenants([OTHER, " * "]),
    ] {
        let c = open.client_secret("s").build().unwrap();
        assert!(c.admits_any_tenant() && c.has_client_credential());
        assert!(c.keys.tenants.iter().any(|t| t == "organizations"));
        assert!(
            c.allowed_tenants().all(|t| t == T || t == OTHER),
            "no `*` listed"
        );
    }
    // A bad entry next to `*` is still named.
    let lookup = |name: &str| match name {
        "AZURE_TENANT_ID" => Some(T.to_owned()),
        "AZURE_CLIENT_ID" => Some(C.to_owned()),
        "OBO_ALLOWED_TENANTS" => Some("*,contoso".to_owned()),
        _ => None,
    };
    let e = OboConfigBuilder::from_lookup(lookup)
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "allowed_tenants");
    assert!(e.to_string().contains("OBO_ALLOWED_TENANTS"), "{e}");
}

#[test]
fn metrics_tenant_label_is_opt_in_from_the_builder_and_the_environment() {
    let label = |b: OboConfigBuilder| b.build().unwrap().exchange.metrics_tenant_label;
    let base = || OboConfig::builder().tenant_id(T).client_id(C);
    assert!(!label(base()), "off by default");
    assert!(label(base().metrics_tenant_label(true)));
    let env = |flag: &'static str| {
        move |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "OBO_METRICS_TENANT_LABEL" => Some(flag.to_owned()),
            _ => None,
        }
    };
    for (flag, want) in [
        ("true", true),
        (" TRUE ", true),
        ("1", true),
        ("false", false),
        ("0", false),
    ] {
        let b = OboConfigBuilder::from_lookup(env(flag)).unwrap();
        assert_eq!(label(b), want, "OBO_METRICS_TENANT_LABEL={flag}");
    }
    let e = OboConfigBuilder::from_lookup(env("yes")).unwrap_err();
    assert_eq!(e.field(), "metrics_tenant_label");
    assert!(e.to_string().contains("OBO_METRICS_TENANT_LABEL"), "{e}");
}
