//! Unit tests for configuration loading and validation.

use super::*;

fn base() -> HashMap<String, String> {
    [
        ("APP_ID", "waggle"),
        ("APP_SECRET", "s3cret"),
        ("APP_VERSION", "1.2.3"),
        ("APP_PORT", "23001"),
        ("NEXTCLOUD_URL", "http://nc.local/index.php/"),
        ("APP_PERSISTENT_STORAGE", "/tmp/waggle-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m = base();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    m
}

fn err(vars: &HashMap<String, String>) -> ConfigError {
    Settings::load_from(vars).expect_err("configuration should be refused")
}

#[test]
fn appapi_variables_map_onto_typed_settings() {
    let s = Settings::load_from(&with(&[("APP_HOST", "0.0.0.0"), ("AA_VERSION", "5.0.2")])).unwrap();
    assert_eq!(s.app.id, "waggle");
    assert_eq!(s.app.version, "1.2.3");
    assert_eq!(s.app.aa_version, "5.0.2");
    assert_eq!(s.server.listen, ListenOn::Tcp("0.0.0.0:23001".parse().unwrap()));
    assert_eq!(s.nextcloud.url.as_str(), "http://nc.local/");
    assert_eq!(s.app.storage_dir, PathBuf::from("/tmp/waggle-test"));
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.saas.service_url.is_none());
    assert_eq!(s.nextcloud.status_timeout, Duration::from_secs(120));
}

#[test]
fn numeric_looking_secret_stays_a_string() {
    let s = Settings::load_from(&with(&[("APP_SECRET", "007")])).unwrap();
    assert_eq!(s.app.secret.expose_secret(), "007");
    let s = Settings::load_from(&with(&[("APP_SECRET", " 1e3 ")])).unwrap();
    assert_eq!(s.app.secret.expose_secret(), " 1e3 ", "secrets are taken byte for byte");
}

#[test]
fn missing_secret_names_the_variable() {
    let mut vars = base();
    vars.remove("APP_SECRET");
    assert_eq!(err(&vars).variable, "APP_SECRET");
}

#[test]
fn invalid_nextcloud_url_names_the_variable() {
    for bad in ["not a url", "ftp://nc.local", "nc.local/path", "http://user:pw@nc.local"] {
        let e = err(&with(&[("NEXTCLOUD_URL", bad)]));
        assert_eq!(e.variable, "NEXTCLOUD_URL", "{bad}");
        assert!(!e.to_string().contains("pw"), "value must not be echoed");
    }
}

#[test]
fn invalid_port_and_host_are_refused() {
    assert_eq!(err(&with(&[("APP_PORT", "70000")])).variable, "APP_PORT");
    // A host name is accepted (resolved at start); a value that is neither an address nor a name is not.
    assert_eq!(err(&with(&[("APP_HOST", "example com")])).variable, "APP_HOST");
}

#[test]
fn harp_shared_key_switches_to_the_unix_socket() {
    let s = Settings::load_from(&with(&[("HP_SHARED_KEY", "k")])).unwrap();
    assert_eq!(s.server.listen, ListenOn::Unix(PathBuf::from("/tmp/exapp.sock")));
    let s =
        Settings::load_from(&with(&[("HP_SHARED_KEY", "k"), ("WAGGLE_HARP_SOCKET", "/run/x.sock")])).unwrap();
    assert_eq!(s.server.listen, ListenOn::Unix(PathBuf::from("/run/x.sock")));
    assert!(s.is_harp());
}

#[test]
fn waggle_prefixed_and_nested_knobs_are_read() {
    let s = Settings::load_from(&with(&[
        ("WAGGLE_SERVICE_URL", "https://saas.example.com/base"),
        ("WAGGLE_LOG_FORMAT", "pretty"),
        ("WAGGLE_SERVER__SHUTDOWN_GRACE_SECS", "3"),
        ("WAGGLE_NEXTCLOUD__TIMEOUT_SECS", "7"),
    ]))
    .unwrap();
    assert_eq!(s.saas.service_url.unwrap().as_str(), "https://saas.example.com/base/");
    assert_eq!(s.log_format, LogFormat::Pretty);
    assert_eq!(s.server.shutdown_grace, Duration::from_secs(3));
    assert_eq!(s.nextcloud.timeout, Duration::from_secs(7));
}

#[test]
fn tenant_key_needs_both_parts() {
    assert_eq!(err(&with(&[("WAGGLE_TENANT_KEY", "k")])).variable, "WAGGLE_TENANT_KEY_ID");
    assert_eq!(err(&with(&[("WAGGLE_TENANT_KEY_ID", "id")])).variable, "WAGGLE_TENANT_KEY");
    let s =
        Settings::load_from(&with(&[("WAGGLE_TENANT_KEY", "0123"), ("WAGGLE_TENANT_KEY_ID", "k1")])).unwrap();
    let key = s.saas.tenant_key.unwrap();
    assert_eq!((key.id.as_str(), key.secret.expose_secret()), ("k1", "0123"));
}

#[test]
fn bad_values_are_named() {
    assert_eq!(err(&with(&[("WAGGLE_LOG_FORMAT", "xml")])).variable, "WAGGLE_LOG_FORMAT");
    assert_eq!(
        err(&with(&[("WAGGLE_SERVER__SHUTDOWN_GRACE_SECS", "soon")])).variable,
        "WAGGLE_SERVER__SHUTDOWN_GRACE_SECS"
    );
    assert_eq!(err(&with(&[("WAGGLE_SERVICE_URL", "saas")])).variable, "WAGGLE_SERVICE_URL");
    assert_eq!(err(&with(&[("APP_ID", "bad id")])).variable, "APP_ID");
}

#[test]
fn file_sits_between_defaults_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waggle.toml");
    std::fs::write(
        &path,
        "service_url = \"https://from-file.example/\"\nlog_format = \"pretty\"\n[appapi]\nport = 24000\nsecret = \"from-file\"\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let mut vars = with(&[("WAGGLE_CONFIG", file), ("WAGGLE_LOG_FORMAT", "json")]);
    vars.remove("APP_PORT");
    vars.remove("APP_SECRET");
    let s = Settings::load_from(&vars).unwrap();
    assert_eq!(s.saas.service_url.unwrap().as_str(), "https://from-file.example/");
    assert_eq!(s.server.listen, ListenOn::Tcp("127.0.0.1:24000".parse().unwrap()), "file beats defaults");
    assert_eq!(s.log_format, LogFormat::Json, "environment beats the file");
    assert_eq!(s.app.secret.expose_secret(), "from-file");
    let e = err(&with(&[("WAGGLE_CONFIG", "/nonexistent/waggle.toml")]));
    assert_eq!(e.variable, "WAGGLE_CONFIG");
}

#[test]
fn debug_output_never_shows_secrets() {
    let s =
        Settings::load_from(&with(&[("WAGGLE_TENANT_KEY", "tenant-xyz"), ("WAGGLE_TENANT_KEY_ID", "k1")]))
            .unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cret") && !dbg.contains("tenant-xyz"), "{dbg}");
}

#[test]
fn app_host_may_be_a_host_name_resolved_at_start() {
    let s = Settings::load_from(&with(&[("APP_HOST", "localhost")])).unwrap();
    match s.server.listen {
        ListenOn::Tcp(addr) => {
            assert!(addr.ip().is_loopback(), "localhost resolves to a loopback address: {addr}");
            assert_eq!(addr.port(), 23001);
        }
        ListenOn::Unix(p) => panic!("TCP expected, got {}", p.display()),
    }
    let s = Settings::load_from(&with(&[("APP_HOST", "[::1]")])).unwrap();
    assert_eq!(s.server.listen, ListenOn::Tcp("[::1]:23001".parse().unwrap()));
    for bad in ["not a host", "host/path", "a..b", "http://x", "x:80"] {
        let e = err(&with(&[("APP_HOST", bad)]));
        assert_eq!(e.variable, "APP_HOST", "{bad}");
    }
}

#[test]
fn app_host_is_not_needed_behind_harp() {
    let s = Settings::load_from(&with(&[("APP_HOST", "not a host"), ("HP_SHARED_KEY", "k")])).unwrap();
    assert!(s.is_harp());
}

#[test]
fn the_default_shutdown_grace_ends_before_dockers_stop_timeout() {
    // AppAPI sets no stop timeout on the containers it creates, so Docker's 10 s apply; the drain must
    // end first, with time left to exit, or SIGKILL cuts it off.
    let s = Settings::load_from(&base()).unwrap();
    assert!(s.server.shutdown_grace <= Duration::from_secs(8), "{:?}", s.server.shutdown_grace);
}
