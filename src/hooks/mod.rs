//! CDS Hooks wire types: the request an EHR sends and the response we answer with.
//!
//! Field names mirror the specification (`hookInstance`, `selectionBehavior`) through serde
//! attributes so that the spec and this file can be read side by side. Input is parsed leniently
//! (unknown members are ignored, as the spec asks); output never carries `null` or empty optional
//! members.

pub mod request;
pub mod response;

pub use request::{FhirAuthorization, HookContext, HookRequest, PrefetchValue, RequestError};
pub use response::{Action, Card, CdsResponse, Coding, Indicator, Link, SelectionBehavior, Source, Suggestion};

/// The hooks this service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Hook {
    #[serde(rename = "patient-view")]
    PatientView,
    #[serde(rename = "order-select")]
    OrderSelect,
    #[serde(rename = "order-sign")]
    OrderSign,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::PatientView => "patient-view",
            Hook::OrderSelect => "order-select",
            Hook::OrderSign => "order-sign",
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
