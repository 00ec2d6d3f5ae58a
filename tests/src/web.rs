//! A browser without JavaScript, for the web pages' tests: it keeps the
//! cookies it is given and sends forms as a browser does.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

use crate::TestApp;

/// A browser without JavaScript: it keeps the cookies it is given.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: format!("http://{}", app.addr),
            cookies: Vec::new(),
        }
    }

    pub fn keep(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(SET_COOKIE) {
            let text = set.to_str().unwrap_or_default();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.cookies.retain(|(n, _)| n != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Sends a request with the cookies kept, and keeps those it sets.
    pub async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> (StatusCode, HeaderMap, String) {
        let res = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request");
        let (status, headers) = (res.status(), res.headers().clone());
        self.keep(&headers);
        (status, headers, res.text().await.unwrap_or_default())
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Opens « Se connecter » and sends the token with the form's CSRF.
    pub async fn sign_in(&mut self, token: &str) -> (StatusCode, HeaderMap, String) {
        let (_, _, page) = self.get("/connexion").await;
        let csrf = csrf_of(&page);
        self.post("/connexion", &[("csrf", &csrf), ("jeton", token)])
            .await
    }
}

pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

impl Browser {
    /// Sends a `multipart/form-data` form, as a page with files does.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, HeaderMap, String) {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .multipart(form);
        self.send(request).await
    }

    /// Signs in with `token` and asserts it worked.
    pub async fn signed_in(app: &TestApp, token: &str) -> Browser {
        let mut browser = Browser::new(app);
        let (status, _, _) = browser.sign_in(token).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "sign-in");
        browser
    }
}

/// The value of the hidden field `name` in the form `form_id` of a page.
pub fn form_value(page: &str, form_id: &str, name: &str) -> Option<String> {
    let form = page.split(&format!("<form id=\"{form_id}\"")).nth(1)?;
    let form = form.split("</form>").next()?;
    form.split(&format!("name=\"{name}\" value=\""))
        .nth(1)?
        .split('"')
        .next()
        .map(str::to_string)
}
