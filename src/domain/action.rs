//! What a reviewer decides.

/// Approve (one vote toward the rule's quorum) or reject (one decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Approve,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approve" => Some(Self::Approve),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }
}

super::stored_as_text!(Action, |action| action.as_str().to_owned(), |text| {
    Action::parse(&text).ok_or_else(|| format!("unknown action {text:?}"))
});
