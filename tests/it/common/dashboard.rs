//! A browser's view of the dashboard at the HTTP level: a cookie jar of one, no redirects followed
//! (tests look at them), and forms posted the way a browser posts them, with the CSRF token the
//! last page carried.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// One reviewer's browser.
pub struct Dashboard {
    base: String,
    http: reqwest::Client,
    /// `name=value` of each cookie the server set (and did not delete).
    cookies: Vec<(String, String)>,
    /// The CSRF token of the last page that had a form.
    pub csrf: Option<String>,
}

/// A page as fetched: status, headers, body.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `Set-Cookie` header that sets cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The text between the first `start` and the next `end` after it.
    pub fn between(&self, start: &str, end: char) -> Option<String> {
        let rest = self.body.split(start).nth(1)?;
        rest.split(end).next().map(str::to_owned)
    }

    /// The value of the first `<input name=NAME value=...>` on the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }
}

impl Dashboard {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(super::WAIT)
                .build()
                .expect("an HTTP client"),
            cookies: Vec::new(),
            csrf: None,
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() && !set.contains("Max-Age=0") {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let body = response.text().await.expect("a body");
        let page = Page {
            status,
            headers,
            body,
        };
        if let Some(csrf) = page.input("csrf") {
            self.csrf = Some(csrf);
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.read(response).await
    }

    /// Posts `fields` as a form, exactly as given (add `("csrf", token)` yourself, or use
    /// [`Dashboard::submit`]).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).expect("a form"))
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// Posts `fields` with the CSRF token of the last page, as the page's form would.
    pub async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self
            .csrf
            .clone()
            .expect("a page with a form was loaded first");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    /// Opens call `id`'s page; returns it and the argument digest its decision form carries.
    pub async fn open_call(&mut self, id: &str) -> (Page, String) {
        let page = self.get(&format!("/calls/{id}")).await;
        let digest = page.input("args_digest").unwrap_or_default();
        (page, digest)
    }

    /// Sends call `id`'s decision form as its page would: `approve` or `reject`, a reason, and
    /// the digest the page showed.
    pub async fn decide(&mut self, id: &str, digest: &str, decision: &str, reason: &str) -> Page {
        self.submit(
            &format!("/calls/{id}/decide"),
            &[
                ("decision", decision),
                ("reason", reason),
                ("args_digest", digest),
            ],
        )
        .await
    }

    /// Signs in through the form; returns the answer to the form's POST.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.get("/login").await;
        self.submit(
            "/login",
            &[("email", email), ("password", password), ("next", "/")],
        )
        .await
    }
}
