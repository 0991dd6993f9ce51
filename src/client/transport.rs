//! One way to call the API: a typed JSON call, the text of a non-JSON answer, or a run's
//! live event stream. Errors come back as the API's `ErrorBody`, said as
//! `STATUS: message (field F)`.

use anyhow::{Context, anyhow};
use byoc_model::api::ErrorBody;
use byoc_model::{RunEvent, RunStatus};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Client, run_path};

/// The body of a call that sends none.
pub const NO_BODY: Option<&()> = None;

impl Client {
    /// Calls the API: `body` sent as JSON, the answer decoded as `R` (an empty answer, such
    /// as a 204's, decodes as `()`).
    pub async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<R> {
        let what = format!("{method} {path}");
        let resp = self.send(method, path, body, "application/json").await?;
        let bytes = resp.bytes().await.with_context(|| what.clone())?;
        let json: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(json).with_context(|| format!("the answer to {what}"))
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.call(Method::GET, path, NO_BODY).await
    }

    /// The answer of a GET that is text, not JSON (a graph in Graphviz or Mermaid).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.send(Method::GET, path, NO_BODY, "text/plain").await?;
        resp.text().await.with_context(|| format!("GET {path}"))
    }

    /// A run's events as they are recorded, from the first, until the run ends.
    pub async fn events(&self, run: &str) -> anyhow::Result<EventStream> {
        let path = format!("{}/events", run_path(run));
        let resp = self
            .send(Method::GET, &path, NO_BODY, "text/event-stream")
            .await?;
        Ok(EventStream {
            body: resp.bytes_stream().map(|c| c.map(Vec::from)).boxed(),
            buffer: Vec::new(),
        })
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        accept: &str,
    ) -> anyhow::Result<Response> {
        let url = format!("{}{path}", self.conn.url.trim_end_matches('/'));
        let mut req = self.http.request(method, &url).header("accept", accept);
        if let Some(token) = &self.conn.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(failure(status, &text))
    }
}

/// A refused call, said from the API's error body (or its raw text, from something that is
/// not byoc).
fn failure(status: StatusCode, body: &str) -> anyhow::Error {
    let Ok(e) = serde_json::from_str::<ErrorBody>(body) else {
        return anyhow!("{status}: {}", body.trim());
    };
    let mut said = format!("{status}: {}", e.message);
    if let Some(field) = e.field {
        said.push_str(&format!(" (field {field})"));
    }
    if let Some(id) = e.request_id {
        said.push_str(&format!(" (request id {id})"));
    }
    if status == StatusCode::UNAUTHORIZED {
        said.push_str(": set BYOC_TOKEN or --token");
    }
    anyhow!(said)
}

/// What a run's event stream says.
pub enum Streamed {
    Event(RunEvent),
    /// The run ended so.
    End(RunStatus),
}

/// A run's server-sent events, decoded.
pub struct EventStream {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` when the stream ended (after `End`, or cut short).
    pub async fn next(&mut self) -> Option<anyhow::Result<Streamed>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                match decode(&String::from_utf8_lossy(&block)) {
                    Ok(Some(item)) => return Some(Ok(item)),
                    Ok(None) => continue, // a comment or keep-alive
                    Err(e) => return Some(Err(e)),
                }
            }
            match self.body.next().await? {
                Ok(chunk) => self.buffer.extend(chunk),
                Err(e) => return Some(Err(anyhow!("the event stream broke: {e}"))),
            }
        }
    }
}

/// One SSE block: `event: NAME` and its `data:` lines.
fn decode(block: &str) -> anyhow::Result<Option<Streamed>> {
    #[derive(Deserialize)]
    struct End {
        status: RunStatus,
    }
    let (mut kind, mut data) = ("message", Vec::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    let data = data.join("\n");
    Ok(match kind {
        "event" => Some(Streamed::Event(
            serde_json::from_str(&data).with_context(|| format!("a run event: {data}"))?,
        )),
        "end" => {
            let end: End = serde_json::from_str(&data).with_context(|| format!("end: {data}"))?;
            Some(Streamed::End(end.status))
        }
        "error" => match serde_json::from_str::<ErrorBody>(&data) {
            Ok(e) => anyhow::bail!("the event stream failed: {}", e.message),
            Err(_) => anyhow::bail!("the event stream failed: {data}"),
        },
        _ => None,
    })
}
