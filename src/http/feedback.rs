//! `POST /cds-services/{id}/feedback` (CDS Hooks 2.0): authenticated like the hook calls (the
//! route sits behind the same middleware; the token's `aud` is this URL). 200 only once every
//! item is committed to the database; a repeat of an item already stored is a 200 too.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};

use super::services::{known_service, require_json};
use super::{AppState, error::ApiError};
use crate::auth::Client;
use crate::feedback::{self, Receipt};

pub async fn receive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Receipt>, ApiError> {
    require_json(&headers)?;
    let content = state.content.current();
    let service = known_service(&content, &id)?;
    let records =
        state.records.as_ref().ok_or_else(|| ApiError::Unavailable("feedback storage is not configured".into()))?;
    let items = feedback::parse(&body, records.settings.feedback_max_items).map_err(ApiError::BadRequest)?;
    let issuer = client.map(|c| c.0.issuer).unwrap_or_default();
    let wait = records.settings.feedback_card_wait;
    let receipt = feedback::record(&records.store, records.audit.as_ref(), wait, &service.id, &issuer, items)
        .await
        .map_err(|error| ApiError::Unavailable(format!("feedback could not be stored ({error}); retry")))?;
    tracing::info!(
        service = %service.id,
        stored = receipt.stored,
        duplicates = receipt.duplicates,
        flagged = receipt.flagged,
        "feedback stored"
    );
    Ok(Json(receipt))
}
