//! A forwarder in front of Airlock that adds the agent's bearer token to every request, since
//! the conformance suite sends none; everything else (method, path, headers including `Host`
//! and `Origin`, body, status, streamed answer) passes unchanged.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;

#[derive(Clone)]
struct Forward {
    target: String,
    token: String,
    client: reqwest::Client,
}

/// Serves the forwarder on `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, target: String, token: String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let router = axum::Router::new().fallback(forward).with_state(Forward {
        target,
        token,
        client,
    });
    if let Err(error) = axum::serve(listener, router).await {
        eprintln!("conformance forwarder stopped: {error}");
    }
}

/// Headers about one hop, not the message: each side sets its own.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
}

async fn forward(State(forward): State<Forward>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = forward
        .client
        .request(parts.method, format!("{}{path}", forward.target))
        .bearer_auth(&forward.token)
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != header::AUTHORIZATION {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY))
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .expect("a bodiless response")
}
