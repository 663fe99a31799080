//! `GET /analytics?from=YYYY-MM-DD&to=YYYY-MM-DD`: the acceptance report as JSON (default: the
//! last 30 days). Behind the same authentication as the hook calls: it tells how clinicians
//! answer the cards, which is the site's business.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use time::Date;

use super::{AppState, error::ApiError};
use crate::analytics::{self, Report};

#[derive(Debug, Deserialize)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
}

pub async fn report(State(state): State<AppState>, Query(range): Query<Range>) -> Result<Json<Report>, ApiError> {
    let records =
        state.records.as_ref().ok_or_else(|| ApiError::Unavailable("analytics storage is not configured".into()))?;
    let (default_from, default_to) = analytics::default_range(time::OffsetDateTime::now_utc().date());
    let from = day(range.from.as_deref(), "from")?.unwrap_or(default_from);
    let to = day(range.to.as_deref(), "to")?.unwrap_or(default_to);
    if from > to {
        return Err(ApiError::BadRequest(format!("`from` ({from}) is after `to` ({to})")));
    }
    let report = analytics::build(&records.store, from, to)
        .await
        .map_err(|error| ApiError::Unavailable(format!("the report could not be read ({error})")))?;
    Ok(Json(report))
}

fn day(value: Option<&str>, name: &str) -> Result<Option<Date>, ApiError> {
    value
        .map(|v| analytics::parse_day(v).map_err(|e| ApiError::BadRequest(format!("query parameter `{name}` {e}"))))
        .transpose()
}
