//! A browser session: log in through Nextcloud's real login form (request token from the page, the
//! `Origin` header a browser sends), then keep the session cookies as a browser would.

use std::collections::BTreeMap;

use anyhow::{Context as _, ensure};
use reqwest::header::{COOKIE, HeaderMap, ORIGIN, SET_COOKIE};

/// Cookies by name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Session {
    pub(crate) cookies: BTreeMap<String, String>,
}

impl Session {
    /// Takes every `Set-Cookie` of a response (a `deleted` value removes the cookie).
    pub(crate) fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else { continue };
            if value == "deleted" || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// The `Cookie` header value.
    pub(crate) fn header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Logs `user` in through `GET /index.php/login` and the form POST; returns the logged-in session.
    pub(crate) async fn login(
        http: &reqwest::Client,
        base: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let mut s = Self::default();
        let page = http.get(format!("{base}/index.php/login")).send().await?;
        ensure!(page.status() == 200, "login page answered {}", page.status());
        s.absorb(page.headers());
        let html = page.text().await?;
        let token = regex::Regex::new(r#"data-requesttoken="([^"]+)""#)?
            .captures(&html)
            .context("no request token on the login page")?[1]
            .to_owned();
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", user)
            .append_pair("password", password)
            .append_pair("timezone", "UTC")
            .append_pair("timezone_offset", "0")
            .append_pair("requesttoken", &token)
            .finish();
        let r = http
            .post(format!("{base}/index.php/login"))
            .header(COOKIE, s.header())
            .header(ORIGIN, base)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        s.absorb(r.headers());
        let location = r.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(
            r.status() == 303 && !location.contains("/login"),
            "login form answered {} → {location:?}",
            r.status()
        );
        ensure!(
            s.cookies.get("nc_username").map(String::as_str) == Some(user),
            "no nc_username cookie after login"
        );
        Ok(s)
    }
}
