use super::*;

const MINIMAL: &str = r#"
[listen]
address = "127.0.0.1:8443"
plaintext = true

[upstream]
address = "127.0.0.1:9080"

[pks]
dir = "pks"

[policy]
dir = "../policies"
"#;

#[test]
fn minimal_config_gets_defaults_and_relative_paths() {
    let c = Config::parse(Path::new("/etc/gerbang/gerbang.toml"), MINIMAL).expect("valid");
    assert!(c.listen.tls.is_none());
    assert_eq!(c.pks_dir, Path::new("/etc/gerbang/pks"));
    assert_eq!(c.api.status_mode, StatusMode::Dwh);
    assert_eq!(c.api.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(c.upstream.timeout, Duration::from_secs(10));
}

#[test]
fn tls_or_explicit_plaintext_is_required() {
    let text = MINIMAL.replace("plaintext = true\n", "");
    let err = Config::parse(Path::new("g.toml"), &text).expect_err("no tls");
    let shown = err.to_string();
    assert!(
        shown.contains("g.toml:3:") && shown.contains("plaintext = true explicitly"),
        "{shown}"
    );
}

#[test]
fn errors_name_line_and_field() {
    let text = MINIMAL
        .replace("127.0.0.1:8443", "localhost")
        .replace("[pks]", "[pks]\nfoo = 1");
    let err = Config::parse(Path::new("g.toml"), &text).expect_err("invalid");
    let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["foo"], "{err}");
    let text = MINIMAL.replace("127.0.0.1:8443", "localhost");
    let err = Config::parse(Path::new("g.toml"), &text).expect_err("invalid");
    let shown = err.to_string();
    assert!(
        shown.contains("g.toml:3:") && shown.contains("listen.address"),
        "{shown}"
    );
}

#[test]
fn sam_sidecar_must_be_local() {
    let c = Config::parse(Path::new("/etc/g/g.toml"), MINIMAL).expect("valid");
    assert_eq!(c.sam, None);
    let text = MINIMAL.to_string() + "\n[sam]\naddress = \"127.0.0.1:7443\"\n";
    let c = Config::parse(Path::new("/etc/g/g.toml"), &text).expect("valid");
    let sam = c.sam.expect("configured");
    assert_eq!(
        sam.address,
        SidecarAddress::Tcp("127.0.0.1:7443".parse().expect("addr"))
    );
    assert_eq!(sam.timeout, DEFAULT_SAM_TIMEOUT);
    let text = MINIMAL.to_string() + "\n[sam]\naddress = \"unix:run/sam.sock\"\ntimeout_ms = 50\n";
    let c = Config::parse(Path::new("/etc/g/g.toml"), &text).expect("valid");
    let sam = c.sam.expect("configured");
    assert_eq!(
        sam.address,
        SidecarAddress::Unix(PathBuf::from("/etc/g/run/sam.sock"))
    );
    assert_eq!(sam.timeout, Duration::from_millis(50));
    let text = MINIMAL.to_string() + "\n[sam]\naddress = \"10.0.0.5:7443\"\ntimeout_ms = 0\n";
    let err = Config::parse(Path::new("g.toml"), &text).expect_err("remote");
    let shown = err.to_string();
    assert!(
        shown.contains("g.toml:17:") && shown.contains("not a loopback address"),
        "{shown}"
    );
    assert!(shown.contains("sam.timeout_ms"), "{shown}");
}

#[test]
fn portal_defaults_and_checks() {
    let c = Config::parse(Path::new("g.toml"), MINIMAL).expect("valid");
    assert_eq!(c.portal, Portal::default());
    assert_eq!(c.portal.idle_timeout, Duration::from_secs(900));
    let text = MINIMAL.to_string()
        + "\n[portal]\nidle_timeout_secs = 60\nabsolute_timeout_secs = 3600\ncookie_name = \"sesi\"\nupstream_prefix = \"/dwh/portal/\"\n";
    let c = Config::parse(Path::new("g.toml"), &text).expect("valid");
    assert_eq!(c.portal.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.portal.cookie_name, "sesi");
    assert_eq!(c.portal.upstream_prefix, "/dwh/portal/");
    for bad in [
        "idle_timeout_secs = 0",
        "idle_timeout_secs = 100\nabsolute_timeout_secs = 10",
        "cookie_name = \"a b\"",
        "upstream_prefix = \"portal\"",
        "timeout = 5",
    ] {
        let text = MINIMAL.to_string() + "\n[portal]\n" + bad + "\n";
        let err = Config::parse(Path::new("g.toml"), &text).expect_err(bad);
        assert!(
            err.to_string().contains("portal") || err.to_string().contains("timeout"),
            "{err}"
        );
    }
}

#[test]
fn audit_space_and_retention_are_checked() {
    let text = MINIMAL.to_string() + "\n[audit]\ndir = \"audit\"\n";
    let c = Config::parse(Path::new("/etc/g/g.toml"), &text).expect("valid");
    let audit = c.audit.expect("configured");
    assert_eq!(audit.min_free_bytes, 256 << 20);
    assert_eq!(audit.alert_free_bytes, 10 << 30);
    assert_eq!(audit.retention, None);
    let text = MINIMAL.to_string()
        + "\n[audit]\ndir = \"audit\"\nmin_free_mib = 1024\nretention_months = 6\narchive_dir = \"/arsip\"\n";
    let c = Config::parse(Path::new("/etc/g/g.toml"), &text).expect("valid");
    let audit = c.audit.expect("configured");
    assert_eq!(audit.min_free_bytes, 1 << 30);
    assert_eq!(audit.archive_dir(), Some(Path::new("/arsip")));
    assert_eq!(
        audit.retention.map(|r| r.keep),
        NonZeroU32::new(6).map(AuditKeep::Months)
    );
    for (bad, field) in [
        ("retention_days = 30\n", "audit.archive_dir"),
        ("archive_dir = \"/arsip\"\n", "audit.retention_days"),
        (
            "retention_days = 0\narchive_dir = \"/a\"\n",
            "audit.retention_days",
        ),
        (
            "retention_days = 3\nretention_months = 1\narchive_dir = \"/a\"\n",
            "audit.retention_months",
        ),
        (
            "retention_days = 3\narchive_dir = \"/a\"\narchive_command = [\"cp\"]\n",
            "audit.archive_command",
        ),
        (
            "retention_days = 3\narchive_command = []\n",
            "audit.archive_command",
        ),
        (
            "retention_days = 3\narchive_dir = \"audit\"\n",
            "audit.archive_dir",
        ),
        ("min_free_gb = 1\n", "min_free_gb"),
    ] {
        let text = MINIMAL.to_string() + "\n[audit]\ndir = \"audit\"\n" + bad;
        let err = Config::parse(Path::new("g.toml"), &text).expect_err(bad);
        assert!(err.to_string().contains(field), "{bad}: {err}");
    }
}

#[test]
fn listen_deadlines_and_caps_have_defaults_and_bounds() {
    let c = Config::parse(Path::new("g.toml"), MINIMAL).expect("valid");
    assert_eq!(c.listen.limits, ListenLimits::default());
    assert_eq!(c.listen.limits.head_timeout, Duration::from_secs(10));
    assert_eq!(c.listen.limits.max_connections_per_address.get(), 512);
    let text = MINIMAL.replace(
        "plaintext = true\n",
        "plaintext = true\nrequest_head_timeout_ms = 1500\nrequest_body_timeout_ms = 2000\nwrite_timeout_ms = 700\nkeepalive_timeout_secs = 5\nmax_requests_per_connection = 10\nmax_connections = 100\n",
    );
    let c = Config::parse(Path::new("g.toml"), &text).expect("valid");
    let l = &c.listen.limits;
    assert_eq!(l.head_timeout, Duration::from_millis(1500));
    assert_eq!(l.body_timeout, Duration::from_secs(2));
    assert_eq!(l.write_timeout, Duration::from_millis(700));
    assert_eq!(l.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(l.max_requests_per_connection.get(), 10);
    assert_eq!(l.max_connections.get(), 100);
    // The per-address default never exceeds a lower total.
    assert_eq!(l.max_connections_per_address.get(), 100);
    for (bad, field) in [
        (
            "request_head_timeout_ms = 0",
            "listen.request_head_timeout_ms",
        ),
        (
            "request_body_timeout_ms = 400000",
            "listen.request_body_timeout_ms",
        ),
        ("write_timeout_ms = 99", "listen.write_timeout_ms"),
        (
            "keepalive_timeout_secs = 0",
            "listen.keepalive_timeout_secs",
        ),
        ("max_connections = 0", "listen.max_connections"),
        (
            "max_requests_per_connection = 5000000",
            "listen.max_requests_per_connection",
        ),
        (
            "max_connections = 10\nmax_connections_per_address = 11",
            "listen.max_connections_per_address",
        ),
        (
            "tls_handshake_timeout_ms = 1000",
            "listen.tls_handshake_timeout_ms",
        ),
        ("header_timeout_ms = 1000", "header_timeout_ms"),
    ] {
        let text = MINIMAL.replace("plaintext = true\n", &format!("plaintext = true\n{bad}\n"));
        let err = Config::parse(Path::new("g.toml"), &text).expect_err(bad);
        let shown = err.to_string();
        assert!(shown.contains(field), "{bad}: {shown}");
        assert!(shown.contains("g.toml:"), "{bad}: {shown}");
    }
}

#[test]
fn a_malformed_sentinel_url_is_refused_with_its_line_and_without_its_password() {
    let with =
        |url: &str| format!("{MINIMAL}\n[quota]\nstore = \"redis\"\nredis_url = \"{url}\"\n");
    Config::parse(
        Path::new("g.toml"),
        &with("redis+sentinel://gerbang:s3cret@10.0.0.11,10.0.0.12:26380/gerbang"),
    )
    .expect("valid");
    for (bad, why) in [
        (
            "redis+sentinel://gerbang:s3cret@10.0.0.11:26379",
            "no master name",
        ),
        (
            "redis+sentinel://gerbang:s3cret@/gerbang",
            "no sentinel address",
        ),
        (
            "redis+sentinel://10.0.0.11:99999/gerbang",
            "not a sentinel address",
        ),
    ] {
        let err = Config::parse(Path::new("g.toml"), &with(bad)).expect_err(bad);
        let shown = err.to_string();
        assert!(
            shown.contains("quota.redis_url") && shown.contains(why),
            "{bad}: {shown}"
        );
        assert!(shown.contains("g.toml:"), "{bad}: {shown}");
        assert!(!shown.contains("s3cret"), "{bad}: {shown}");
    }
}

#[test]
fn proxy_protocol_balancers_are_addresses_or_networks_never_everyone() {
    let with = |list: &str| {
        MINIMAL.replace(
            "plaintext = true\n",
            &format!("plaintext = true\nproxy_protocol_from = {list}\n"),
        )
    };
    let c =
        Config::parse(Path::new("g.toml"), &with(r#"["10.0.0.5", "10.1.0.0/29"]"#)).expect("valid");
    let shown: Vec<String> = c
        .listen
        .proxy_protocol_from
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.5/32", "10.1.0.0/29"]);
    let none = Config::parse(Path::new("g.toml"), MINIMAL).expect("valid");
    assert!(none.listen.proxy_protocol_from.is_empty());
    for (bad, why) in [
        (r#"["0.0.0.0/0"]"#, "every address"),
        (r#"["::/0"]"#, "every address"),
        (r#"["balancer.local"]"#, "not an IP address"),
    ] {
        let err = Config::parse(Path::new("g.toml"), &with(bad)).expect_err(bad);
        let shown = err.to_string();
        assert!(shown.contains("g.toml:5:"), "{bad}: {shown}");
        assert!(
            shown.contains("listen.proxy_protocol_from"),
            "{bad}: {shown}"
        );
        assert!(shown.contains(why), "{bad}: {shown}");
    }
}

#[test]
fn a_non_loopback_admin_address_must_be_allowed_explicitly() {
    let admin = |body: &str| format!("{MINIMAL}\n[admin]\n{body}\n");
    let c =
        Config::parse(Path::new("g.toml"), &admin("address = \"[::1]:9100\"")).expect("loopback");
    assert!(c.admin.expect("admin").address.ip().is_loopback());
    for address in ["0.0.0.0:9100", "10.20.0.5:9100", "[::]:9100"] {
        let text = admin(&format!("address = \"{address}\""));
        let err = Config::parse(Path::new("g.toml"), &text).expect_err(address);
        let shown = err.to_string();
        assert!(
            shown.contains("g.toml:16:")
                && shown.contains("admin.address")
                && shown.contains("not a loopback address")
                && shown.contains("allow_non_loopback = true"),
            "{shown}"
        );
    }
    let text = admin("address = \"10.20.0.5:9100\"\nallow_non_loopback = true");
    let c = Config::parse(Path::new("g.toml"), &text).expect("allowed");
    assert_eq!(
        c.admin.expect("admin").address.to_string(),
        "10.20.0.5:9100"
    );
}

#[test]
fn a_token_file_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef").expect("write");
    let text =
        format!("{MINIMAL}\n[admin]\naddress = \"127.0.0.1:9100\"\ntoken_file = \"admin.token\"\n");
    let config = Config::parse(&dir.path().join("gerbang.toml"), &text).expect("valid");
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let err = config.load_admin_token().expect_err("too open");
        let shown = err.to_string();
        assert!(
            shown.contains(&token.display().to_string())
                && shown.contains(&format!("{mode:04o}"))
                && shown.contains(&format!("chmod 600 {}", token.display())),
            "{shown}"
        );
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let loaded = config.load_admin_token().expect("private");
        assert_eq!(loaded.as_deref(), Some("0123456789abcdef0123456789abcdef"));
    }
}

#[test]
fn shared_state_follows_the_redis_quota_store() {
    let c = Config::parse(Path::new("g.toml"), MINIMAL).expect("valid");
    assert_eq!(
        c.shared, None,
        "one instance keeps its state in the process"
    );
    let redis = format!(
        "{MINIMAL}\n[quota]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n"
    );
    let c = Config::parse(Path::new("g.toml"), &redis).expect("valid");
    assert_eq!(
        c.shared.map(|s| s.key_prefix).as_deref(),
        Some("gerbang:shared:")
    );
    let c = Config::parse(
        Path::new("g.toml"),
        &format!("{redis}\n[shared]\nkey_prefix = \"ditjen:a:\"\n"),
    )
    .expect("valid");
    assert_eq!(c.shared.map(|s| s.key_prefix).as_deref(), Some("ditjen:a:"));
    for (text, field) in [
        (
            format!("{redis}\n[shared]\nkey_prefix = \"\"\n"),
            "shared.key_prefix",
        ),
        (
            format!("{redis}\n[shared]\nkey_prefix = \"a b\"\n"),
            "shared.key_prefix",
        ),
        (format!("{MINIMAL}\n[shared]\n"), "shared"),
        (format!("{redis}\n[shared]\nprefix = \"x\"\n"), "prefix"),
    ] {
        let err = Config::parse(Path::new("g.toml"), &text).expect_err(field);
        let shown = err.to_string();
        assert!(
            err.iter().any(|e| e.field == field) && shown.contains("g.toml:"),
            "{field}: {shown}"
        );
    }
}

#[test]
fn debug_never_shows_the_redis_password() {
    let text = MINIMAL.to_string()
        + "\n[quota]\nstore = \"redis\"\nredis_url = \"redis://gerbang:s3cret-pw@10.0.0.7:6379/0\"\n";
    let c = Config::parse(Path::new("g.toml"), &text).expect("valid");
    assert_eq!(
        c.quota.redis_url,
        "redis://gerbang:s3cret-pw@10.0.0.7:6379/0"
    );
    for shown in [format!("{c:?}"), format!("{:?}", c.quota)] {
        assert!(
            !shown.contains("s3cret-pw") && shown.contains("redis_url: \"<redacted>\""),
            "{shown}"
        );
    }
}

#[test]
fn body_limit_is_bounded() {
    let text = MINIMAL.to_string() + "\n[api]\nmax_body_bytes = 10000000\n";
    let err = Config::parse(Path::new("g.toml"), &text).expect_err("too big");
    assert!(err.to_string().contains("api.max_body_bytes"), "{err}");
}

#[test]
fn the_local_file_is_the_default_when_it_exists_else_the_installed_one() {
    let installed = Path::new("/etc/gerbang/gerbang.toml");
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let local = here.join("Cargo.toml");
    assert_eq!(default_config_path(&local, installed), local);
    let missing = here.join("no-such-dir/gerbang.toml");
    assert_eq!(default_config_path(&missing, installed), installed);
    // A directory of that name is not a configuration file.
    assert_eq!(default_config_path(here, installed), installed);
}
