//! A minimal W3C WebDriver client, shared by the desktop (tauri-driver) and admin-console
//! (chromedriver) tests.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// A minimal W3C WebDriver client: enough to find elements, read them, click and run script.
pub struct WebDriver {
    http: reqwest::blocking::Client,
    base: String,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    pub fn new_session(base: &str, capabilities: Value) -> anyhow::Result<WebDriver> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()?
            .json()?;
        let session = resp["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session id in the new-session answer: {resp}"))?
            .to_owned();
        Ok(WebDriver {
            http,
            base: base.to_owned(),
            session,
        })
    }

    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req.send()?.json()?;
        let value = resp.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            bail!("{path}: {error}: {}", value["message"]);
        }
        Ok(value)
    }

    pub fn find_all(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let found = self.call(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect())
    }

    pub fn attribute(&self, element: &str, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )?;
        Ok(value.as_str().map(str::to_owned))
    }

    pub fn text(&self, element: &str) -> anyhow::Result<String> {
        let value = self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    pub fn click(&self, element: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Runs an async script; it finishes by calling its last argument.
    pub fn execute_async(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Opens `url` and waits for the page to load.
    pub fn navigate(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))?;
        Ok(())
    }

    /// The current page's URL.
    pub fn current_url(&self) -> anyhow::Result<String> {
        let value = self.call(reqwest::Method::GET, "/url", None)?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching `css`; fails when there is none.
    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        self.find_all(css)?
            .into_iter()
            .next()
            .with_context(|| format!("no element matches `{css}`"))
    }

    /// Empties an input or textarea.
    pub fn clear(&self, element: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Types `text` into an element, as keystrokes.
    pub fn send_keys(&self, element: &str, text: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )?;
        Ok(())
    }

    /// Runs a synchronous script and returns what it returns.
    pub fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let value = self.call(reqwest::Method::GET, "/screenshot", None)?;
        let b64 = value
            .as_str()
            .context("the screenshot answer is not a string")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }

    /// A PNG of the whole page (Chromium's full-page capture through the DevTools protocol,
    /// which chromedriver exposes); falls back to the viewport elsewhere.
    pub fn full_page_screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let url = format!("{}/session/{}/goog/cdp/execute", self.base, self.session);
        let metrics: Value = self
            .http
            .post(&url)
            .json(&json!({"cmd": "Page.getLayoutMetrics", "params": {}}))
            .send()?
            .json()?;
        let size = &metrics["value"]["cssContentSize"];
        let (Some(width), Some(height)) = (size["width"].as_f64(), size["height"].as_f64()) else {
            return self.screenshot();
        };
        let shot: Value = self
            .http
            .post(&url)
            .json(&json!({"cmd": "Page.captureScreenshot", "params": {
                "format": "png", "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": width, "height": height.min(6000.0), "scale": 1}
            }}))
            .send()?
            .json()?;
        let b64 = shot["value"]["data"]
            .as_str()
            .with_context(|| format!("no screenshot data in {shot}"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }

    /// The agent state as the window's own command returns it.
    pub fn agent_state(&self) -> anyhow::Result<Value> {
        let state = self.execute_async(
            "const done = arguments[arguments.length - 1];
             window.__TAURI_INTERNALS__.invoke('get_state').then(done, (e) => done({ error: String(e) }));",
        )?;
        if let Some(error) = state.get("error") {
            bail!("get_state failed in the window: {error}");
        }
        Ok(state)
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}
