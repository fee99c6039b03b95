//! `GET /metrics`: the server's counters in the Prometheus text format (see
//! [`crate::metrics`]), and the middleware that counts HTTP responses by route and status.
//!
//! Try `curl -s localhost:8080/metrics` while the page is open: the open WebSocket gauge, the
//! messages and bytes sent, and `tickerlab_feed_serialisations_total` growing by exactly
//! one per symbol per tick however many clients there are.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, http::header, web};

use super::AppState;

/// `GET /metrics`: `200`, `text/plain; version=0.0.4`, never cached.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.feed))
}

/// Middleware: counts every response by the route pattern it matched and its status code.
/// Patterns, not paths, so a client inventing paths cannot create new series.
pub async fn count_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // The connection's bytes count for this request's transport from here on.
    if let Some(meter) = req
        .conn_data::<std::rc::Rc<crate::http::connection::Handles>>()
        .and_then(|handles| handles.meter.as_ref())
    {
        meter.carries(crate::metrics::Transport::of_path(req.path()));
    }
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        state
            .metrics
            .http_response(route.as_deref(), res.status().as_u16());
    }
    Ok(res)
}
