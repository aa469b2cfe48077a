//! object_store's HTTP transport on the gateway's own HTTPS client: hyper with rustls on ring and
//! the webpki roots, the provider passed in (as the SMS client does). No second HTTP stack, no aws-lc
//! build, and no process-wide TLS provider to install.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as Plain;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};

/// Longest wait for a response's headers (a body then streams at its own pace); object_store
/// retries idempotent requests that time out.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Transport {
    client: Client<hyper_rustls::HttpsConnector<Plain>, HttpRequestBody>,
}

impl Transport {
    /// `allow_http`: also plain-HTTP endpoints (a MinIO on a private network, the tests' server).
    pub fn new(allow_http: bool) -> Result<Transport, String> {
        let mut plain = Plain::new();
        plain.enforce_http(false);
        plain.set_connect_timeout(Some(Duration::from_secs(10)));
        plain.set_nodelay(true);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("object storage HTTPS client: {e}"))?;
        let https =
            if allow_http { tls.https_or_http() } else { tls.https_only() }.enable_http1().wrap_connector(plain);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Transport { client })
    }
}

impl HttpConnector for Transport {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl HttpService for Transport {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                let kind = if e.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
                return Err(HttpError::new(kind, e));
            }
            Err(elapsed) => return Err(HttpError::new(HttpErrorKind::Timeout, elapsed)),
        };
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}
