//! The cases, in the order an admin meets them. Each returns an error naming what Nextcloud, Waggle
//! or the SaaS did instead of the expected; the runner stops at the first.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use crate::browser::Session;
use crate::world::{SYNC_INTERVAL_SECS, World, wait_until};

type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;
type Case = for<'a> fn(&'a mut World) -> CaseFuture<'a>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, in order.
        pub(crate) const ALL: &[(&str, Case)] = &[$((stringify!($name), |w| Box::pin($name(w)))),*];
    };
}

cases!(
    registration_and_init_to_100_with_the_defaults,
    api_through_the_php_proxy_with_basic_auth,
    api_through_the_php_proxy_with_a_session_cookie,
    nc_through_the_public_proxy_route,
    admin_routes_as_admin_and_as_a_user,
    events_from_occ_without_a_configured_admin,
    api_answers_while_nextcloud_is_down,
    disable_stops_sync_and_enable_resumes_it,
    unregister,
);

/// Longest wait for an event: a few reconciliation intervals plus delivery.
fn event_timeout() -> Duration {
    Duration::from_secs(SYNC_INTERVAL_SECS * 5 + 10)
}

async fn registration_and_init_to_100_with_the_defaults(w: &mut World) -> anyhow::Result<()> {
    // The README's daemon command, with only the Nextcloud URL adapted. Its host must not carry a
    // port: AppAPI appends the app's port itself (`host:23000:23000` hangs registration 10 minutes).
    let mut daemon = w.readme.daemon_register.clone();
    ensure!(daemon.len() == 7, "README's daemon command has an unexpected shape: {daemon:?}");
    ensure!(!daemon[5].contains(':'), "README's daemon host {:?} carries a port", daemon[5]);
    daemon[6] = w.nc.url.clone();
    w.nc.occ(&daemon.iter().map(String::as_str).collect::<Vec<_>>(), &[])?;

    // The README's registration JSON; `port` and `secret` must equal config/local.env's.
    let mut json = w.readme.json.clone();
    ensure!(
        json["port"] == w.readme.env["APP_PORT"].parse::<u64>()?
            && json["secret"] == w.readme.env["APP_SECRET"].as_str(),
        "README's waggle.json does not match config/local.env (port, secret)"
    );
    json["port"] = json!(w.app_port);
    let json = json.to_string();
    let register: Vec<&str> = w
        .readme
        .app_register
        .iter()
        .map(|a| if a == "$(cat waggle.json)" { json.as_str() } else { a.as_str() })
        .collect();
    let started = Instant::now();
    w.nc.occ_within(180, &register, &[])?;
    w.notes.push(format!(
        "registration (`app_api:app:register --wait-finish`, pending bootstrap included): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let list = w.nc.occ(&["app_api:app:list"], &[])?;
    ensure!(list.contains("waggle (Waggle): 0.1.0 [enabled]"), "app_api:app:list: {list}");

    // Init ran to 100 with the defaults: the tenant key was bootstrapped with a real admin.
    let boots = w.saas.bootstraps();
    ensure!(boots.len() == 1, "expected one bootstrap, got {boots:#?}");
    let b = &boots[0];
    ensure!(
        b["instance_id"] == w.nc.instance_id.as_str(),
        "bootstrap instance_id {} ≠ {}",
        b["instance_id"],
        w.nc.instance_id
    );
    ensure!(
        b["admin"]["uid"] == "admin" && b["admin"]["email"] == "admin@example.test",
        "bootstrap admin is {}",
        b["admin"]
    );
    ensure!(
        b["callback_urls"]["php_proxy"]
            == format!("{}/index.php/apps/app_api/proxy/waggle", w.nc.url).as_str(),
        "callback urls {}",
        b["callback_urls"]
    );
    ensure!(w.saas.polls() >= 1, "the pending bootstrap was never polled");
    let status = w.status().await?;
    ensure!(status["init"]["state"] == "done", "init state {}", status["init"]);
    ensure!(status["enabled"] == true, "not enabled: {status}");
    ensure!(status["saas"]["tenant_key"]["state"] == "active", "tenant key {}", status["saas"]["tenant_key"]);

    // The initial export (reconciliation with no WAGGLE_SYNC__ADMIN_UID).
    let initial = |kind: &'static str, key: &'static str, value: &'static str| {
        move |e: &crate::saas::Delivered| {
            e.kind == kind && e.data[key] == value && e.data["source"] == "initial"
        }
    };
    w.saas
        .wait_for_event(
            event_timeout(),
            "initial user.created alice",
            initial("user.created", "uid", "alice"),
        )
        .await?;
    w.saas
        .wait_for_event(
            event_timeout(),
            "initial group.created admin",
            initial("group.created", "gid", "admin"),
        )
        .await?;
    let member = w
        .saas
        .wait_for_event(event_timeout(), "initial admin membership", |e| {
            e.kind == "group.member_added"
                && e.data == json!({"gid": "admin", "uid": "admin", "source": "initial"})
        })
        .await?;
    ensure!(!member.id.is_empty());
    let alice =
        w.saas.events().into_iter().find(|e| e.kind == "user.created" && e.data["uid"] == "alice").unwrap();
    ensure!(
        alice.data["email"] == "alice@example.test" && alice.data["display_name"] == "Alice",
        "alice's initial record {}",
        alice.data
    );
    Ok(())
}

async fn api_through_the_php_proxy_with_basic_auth(w: &mut World) -> anyhow::Result<()> {
    let alice = w.alice.clone();
    let r = w.as_user(Method::GET, "/api/echo?x=1&y=two", &alice).send().await?;
    ensure!(r.status() == 200, "GET /api/echo answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["user"] == "alice" && v["query"] == "x=1&y=two" && v["method"] == "GET", "echo {v}");

    let body = br#"{"hello":"world","n":[1,2,3]}"#;
    let r = w
        .as_user(Method::POST, "/api/echo", &alice)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?;
    ensure!(r.status() == 200, "POST /api/echo answered {}", r.status());
    let last = w.saas.api_calls().pop().context("no call at the SaaS")?;
    ensure!(
        last.method == "POST" && last.path == "/api/echo" && last.user == "alice",
        "upstream call {last:?}"
    );
    ensure!(last.body.as_ref() == body, "the POST body arrived changed");

    // A chunked answer from the SaaS: AppAPI 5.0.2 would corrupt it unless Waggle frames it.
    let r = w.as_user(Method::GET, "/api/chunked", &alice).send().await?;
    ensure!(r.status() == 200, "GET /api/chunked answered {}", r.status());
    let framed = r.headers().contains_key(CONTENT_LENGTH);
    let text = r.text().await.context("the chunked answer did not arrive intact through the PHP proxy")?;
    ensure!(framed, "no Content-Length through the PHP proxy");
    let parts: Vec<Value> = text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    ensure!(
        parts.len() == 3 && parts[2]["part"] == 3 && parts[0]["user"] == "alice",
        "chunked body {text:?}"
    );

    // 3 MiB, spooled by Waggle before it answers.
    let r = w.as_user(Method::GET, "/api/large", &alice).send().await?;
    ensure!(r.status() == 200, "GET /api/large answered {}", r.status());
    let bytes = r.bytes().await.context("the large answer did not arrive intact")?;
    ensure!(bytes.len() == 48 * 64 * 1024, "large body is {} bytes", bytes.len());
    ensure!(bytes.chunks(64 * 1024).enumerate().all(|(i, c)| c.iter().all(|b| *b == b'a' + (i % 26) as u8)));

    // SSE that ends: through the PHP proxy it arrives whole, at the end.
    let r = w.as_user(Method::GET, "/api/sse", &alice).send().await?;
    ensure!(r.status() == 200, "GET /api/sse answered {}", r.status());
    let text = r.text().await.context("the event stream did not arrive intact")?;
    ensure!(text.matches("data: tick").count() == 3, "event stream {text:?}");

    // AppAPI keeps only the first value of each response header: one Set-Cookie of two.
    let r = w.as_user(Method::GET, "/api/cookies", &alice).send().await?;
    let cookies: Vec<_> = r.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let saas_cookies: Vec<_> = cookies.iter().filter(|c| c.starts_with("saas_")).collect();
    ensure!(saas_cookies.len() == 1 && saas_cookies[0].starts_with("saas_a="), "Set-Cookie: {cookies:?}");
    Ok(())
}

async fn api_through_the_php_proxy_with_a_session_cookie(w: &mut World) -> anyhow::Result<()> {
    let session = Session::login(&w.http, &w.nc.url, &w.alice.uid, &w.alice.password).await?;
    for v in session.cookies.values().filter(|v| v.len() >= 8 && *v != "true") {
        w.saas.forbid(v);
    }
    ensure!(
        session.cookies.contains_key(&w.nc.instance_id),
        "the session cookie is not named after the instance id: {:?}",
        session.cookies.keys().collect::<Vec<_>>()
    );
    let cookie = session.header();
    let r = w.http.get(w.proxy_url("/api/echo?via=cookie")).header(COOKIE, &cookie).send().await?;
    ensure!(r.status() == 200, "GET with the session answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["user"] == "alice", "acting user {v}");
    let last = w.saas.api_calls().pop().context("no call at the SaaS")?;
    ensure!(last.user == "alice" && last.method == "GET", "upstream call {last:?}");

    let r = w
        .http
        .post(w.proxy_url("/api/echo"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &w.nc.url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    ensure!(r.status() == 200, "same-origin POST answered {}", r.status());

    // The PHP proxy has no CSRF check; Waggle refuses a foreign Origin itself.
    let r = w
        .http
        .post(w.proxy_url("/api/echo"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .body("{}")
        .send()
        .await?;
    ensure!(r.status() == 403, "cross-origin POST answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["error"]["code"] == "origin_not_allowed", "refusal {v}");
    Ok(())
}

async fn nc_through_the_public_proxy_route(w: &mut World) -> anyhow::Result<()> {
    let alice = w.alice.clone();
    // OCS as the user.
    let r = w.nc_call("GET", "/ocs/v2.php/cloud/user?format=json", "alice", b"", None, &[]).await?;
    ensure!(r.status() == 200, "OCS cloud/user answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["ocs"]["data"]["id"] == "alice", "OCS answer {v}");

    // PROPFIND through the override (the PHP proxy forwards only GET/POST/PUT/DELETE).
    let r =
        w.nc_call("PROPFIND", "/remote.php/dav/files/alice/", "alice", b"", None, &[("depth", "1")]).await?;
    ensure!(r.status() == 207, "PROPFIND answered {}", r.status());
    let length = r.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let xml = r.text().await.context("the PROPFIND answer did not arrive intact through the PHP proxy")?;
    let doc = roxmltree::Document::parse(&xml).context("the PROPFIND answer is not XML")?;
    let responses = doc.descendants().filter(|n| n.tag_name().name() == "response").count();
    ensure!(responses >= 1, "multistatus without responses: {xml}");
    w.notes.push(format!(
        "PROPFIND Depth 1 through the PHP proxy: 207, {} bytes with Content-Length {}, parsed: {responses} <d:response>",
        xml.len(),
        length.as_deref().unwrap_or("(none)")
    ));

    // PUT, then read it back with alice's own WebDAV login.
    let content = b"written by the SaaS through Waggle\n";
    let r =
        w.nc_call("PUT", "/remote.php/dav/files/alice/waggle-real.txt", "alice", content, None, &[]).await?;
    ensure!(r.status() == 201, "PUT answered {}", r.status());
    let got = w.webdav("GET", "waggle-real.txt", &alice)?.send().await?;
    ensure!(
        got.status() == 200 && got.bytes().await?.as_ref() == content,
        "alice's WebDAV does not see the PUT"
    );

    let r = w.nc_call("GET", "/remote.php/dav/files/alice/waggle-real.txt", "alice", b"", None, &[]).await?;
    ensure!(
        r.status() == 200 && r.bytes().await?.as_ref() == content,
        "GET through /nc returned other bytes"
    );

    let r = w
        .nc_call(
            "MOVE",
            "/remote.php/dav/files/alice/waggle-real.txt",
            "alice",
            b"",
            Some("/remote.php/dav/files/alice/waggle-moved.txt"),
            &[],
        )
        .await?;
    ensure!(r.status() == 201, "MOVE answered {}", r.status());
    ensure!(
        w.webdav("GET", "waggle-real.txt", &alice)?.send().await?.status() == 404,
        "MOVE left the source"
    );
    let moved = w.webdav("GET", "waggle-moved.txt", &alice)?.send().await?;
    ensure!(moved.status() == 200 && moved.bytes().await?.as_ref() == content, "MOVE target missing");

    let r =
        w.nc_call("DELETE", "/remote.php/dav/files/alice/waggle-moved.txt", "alice", b"", None, &[]).await?;
    ensure!(r.status() == 204, "DELETE answered {}", r.status());
    ensure!(
        w.webdav("GET", "waggle-moved.txt", &alice)?.send().await?.status() == 404,
        "DELETE left the file"
    );

    // A system call (no user) reaches the capabilities; the provisioning API is not on its list
    // (Nextcloud 31 would refuse it anyway, 401/997) and is refused before Nextcloud.
    let r = w.nc_call("GET", "/ocs/v2.php/cloud/capabilities?format=json", "", b"", None, &[]).await?;
    ensure!(r.status() == 200, "system call to the capabilities answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["ocs"]["data"]["capabilities"]["app_api"]["version"] == "5.0.2", "capabilities {v}");
    let caps = &v["ocs"]["data"]["capabilities"];
    ensure!(
        caps["theming"]["instanceid"].is_null() && caps["core"]["instanceid"].is_null(),
        "the capabilities now carry an instance id; update the fake Nextcloud: {caps}"
    );
    let r = w.nc_call("GET", "/ocs/v2.php/cloud/users?format=json", "", b"", None, &[]).await?;
    ensure!(r.status() == 403, "system call to cloud/users answered {}", r.status());

    // Negatives: another user's tree, and a signature that does not match what is sent.
    let r =
        w.nc_call("PROPFIND", "/remote.php/dav/files/bob/", "alice", b"", None, &[("depth", "0")]).await?;
    ensure!(r.status() == 403, "alice reaching bob's files answered {}", r.status());
    let r = w
        .nc_call("GET", "/ocs/v2.php/cloud/user?format=json", "alice", b"", None, &[("x-waggle-user", "bob")])
        .await?;
    ensure!(r.status() == 401, "a signature for alice used as bob answered {}", r.status());
    Ok(())
}

async fn admin_routes_as_admin_and_as_a_user(w: &mut World) -> anyhow::Result<()> {
    let (admin, alice) = (w.admin(), w.alice.clone());
    let r = w.as_user(Method::GET, "/admin/status", &admin).send().await?;
    ensure!(r.status() == 200, "admin GET /admin/status answered {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["init"]["state"] == "done" && v["saas"]["tenant_key"]["state"] == "active", "status {v}");
    let r = w.as_user(Method::POST, "/admin/sync", &admin).send().await?;
    ensure!(r.status() == 200, "admin POST /admin/sync answered {}", r.status());

    // A user fails the route's access level: AppAPI answers 404 and Waggle never sees it.
    for (method, path) in [(Method::GET, "/admin/status"), (Method::POST, "/admin/sync")] {
        let r = w.as_user(method.clone(), path, &alice).send().await?;
        ensure!(r.status() == 404, "alice {method} {path} answered {}", r.status());
    }
    // Past the proxy (AppAPI headers for alice straight to Waggle), Waggle's own check refuses.
    let r = w.direct(Method::GET, "/admin/status", "alice").send().await?;
    ensure!(r.status() == 403, "alice straight to Waggle's /admin/status answered {}", r.status());
    Ok(())
}

async fn events_from_occ_without_a_configured_admin(w: &mut World) -> anyhow::Result<()> {
    ensure!(!w.readme.env.contains_key("WAGGLE_SYNC__ADMIN_UID"));
    // webhook_listeners 1.2.0 refused every user and group class Waggle probed at enable: no listener.
    let admin = w.admin();
    let r = w
        .http
        .get(format!("{}/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks?format=json", w.nc.url))
        .basic_auth(&admin.uid, Some(&admin.password))
        .header("OCS-APIRequest", "true")
        .send()
        .await?;
    ensure!(r.status() == 200, "listing webhook listeners answered {}", r.status());
    let listeners: Value = r.json().await?;
    ensure!(listeners["ocs"]["data"] == json!([]), "listeners registered: {}", listeners["ocs"]["data"]);
    let started = Instant::now();
    w.nc.occ(
        &["user:add", "--password-from-env", "--display-name", "Carol", "carol"],
        &[("OC_PASS", "carol-pass-1234")],
    )?;
    let occ_done = started.elapsed();
    let created = w
        .saas
        .wait_for_event(event_timeout(), "user.created carol", |e| {
            e.kind == "user.created" && e.data["uid"] == "carol"
        })
        .await?;
    ensure!(created.data["source"] == "reconcile", "source {}", created.data);
    w.notes.push(format!(
        "`occ user:add` → user.created at the SaaS: {:.2} s (occ itself {:.2} s; reconciliation every {SYNC_INTERVAL_SECS} s)",
        created.at.duration_since(started).as_secs_f64(),
        occ_done.as_secs_f64()
    ));

    let steps: [(&[&str], &str, Value); 5] = [
        (&["group:add", "team"], "group.created", json!({"gid": "team"})),
        (&["group:adduser", "team", "carol"], "group.member_added", json!({"gid": "team", "uid": "carol"})),
        (&["user:disable", "carol"], "user.disabled", json!({"uid": "carol"})),
        (&["user:delete", "carol"], "group.member_removed", json!({"gid": "team", "uid": "carol"})),
        (&[], "user.deleted", json!({"uid": "carol"})),
    ];
    for (args, kind, data) in steps {
        if !args.is_empty() {
            w.nc.occ(args, &[])?;
        }
        let mut expected = data.clone();
        expected["source"] = json!("reconcile");
        w.saas
            .wait_for_event(event_timeout(), &format!("{kind} {data}"), |e| {
                e.kind == kind && e.data == expected
            })
            .await?;
    }
    Ok(())
}

async fn api_answers_while_nextcloud_is_down(w: &mut World) -> anyhow::Result<()> {
    w.nc.stop()?;
    // A fresh process: the instance id must come from Waggle's store, not from Nextcloud.
    w.waggle.restart().await?;
    let r = w.direct(Method::GET, "/api/echo?nc=down", "alice").send().await?;
    ensure!(r.status() == 200, "/api with Nextcloud down answered {}: {}", r.status(), r.text().await?);
    let v: Value = r.json().await?;
    ensure!(v["user"] == "alice" && v["query"] == "nc=down", "echo {v}");
    w.nc.restart()?;
    Ok(())
}

async fn disable_stops_sync_and_enable_resumes_it(w: &mut World) -> anyhow::Result<()> {
    let alice = w.alice.clone();
    // After the restart above, Waggle still knows it is enabled: sync runs.
    let runs = w.metric("reconcile_runs").await?;
    let runs = wait_until(event_timeout(), "a reconciliation after the restart", || async {
        let now = w.metric("reconcile_runs").await?;
        Ok((now > runs).then_some(now))
    })
    .await?;

    w.nc.occ(&["app_api:app:disable", "waggle"], &[])?;
    // While disabled, Nextcloud refuses Waggle's own admin check too: read its store instead.
    ensure!(w.fact("lifecycle.enabled")?.as_deref() == Some("0"), "Waggle was not told it is disabled");
    let r = w.as_user(Method::GET, "/api/echo", &alice).send().await?;
    ensure!(r.status() == 404, "/api while disabled answered {}", r.status());

    // Proving an absence takes time: three intervals in which the schedule would have run.
    let logged = || w.waggle.log_lines("reconciliation").len();
    let (before, errors) = (logged(), w.nc.log_lines(3, "is disabled").len());
    tokio::time::sleep(Duration::from_secs(SYNC_INTERVAL_SECS * 3)).await;
    ensure!(
        logged() == before,
        "reconciliation ran while disabled: {:#?}",
        &w.waggle.log_lines("reconciliation")[before..]
    );
    let new_errors = w.nc.log_lines(3, "is disabled");
    ensure!(
        new_errors.len() == errors,
        "Nextcloud logged calls from a disabled app: {:#?}",
        &new_errors[errors..]
    );

    w.nc.occ(&["app_api:app:enable", "waggle"], &[])?;
    ensure!(w.fact("lifecycle.enabled")?.as_deref() == Some("1"), "Waggle was not told it is enabled");
    let r = w.as_user(Method::GET, "/api/echo", &alice).send().await?;
    ensure!(r.status() == 200, "/api after enable answered {}", r.status());
    wait_until(event_timeout(), "a reconciliation after enable", || async {
        Ok((w.metric("reconcile_runs").await? > runs).then_some(()))
    })
    .await?;
    Ok(())
}

async fn unregister(w: &mut World) -> anyhow::Result<()> {
    let alice = w.alice.clone();
    w.nc.occ(&["app_api:app:unregister", "waggle", "--force"], &[])?;
    ensure!(
        w.fact("lifecycle.enabled")?.as_deref() == Some("0"),
        "Waggle was not told it is disabled at unregister"
    );
    let r = w.as_user(Method::GET, "/api/echo", &alice).send().await?;
    ensure!(r.status() == 404, "/api after unregister answered {}", r.status());
    let list = w.nc.occ(&["app_api:app:list"], &[])?;
    ensure!(!list.contains("waggle"), "still listed: {list}");
    w.nc.occ(&["app_api:daemon:unregister", "manual_install"], &[])?;
    Ok(())
}
