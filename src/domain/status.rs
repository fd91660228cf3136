//! The life of a parked call, and the one table of moves it may make.
//!
//! ```text
//!            ┌──────────▶ rejected    (a reviewer said no)
//!            ├──────────▶ expired     (nobody decided in time: a system denial)
//!            ├──────────▶ withdrawn   (the agent withdrew it: `tasks/cancel`)
//!  pending ──┴─▶ approved ──▶ forwarding ──▶ completed      (the upstream answered)
//!                   │                    ├─▶ failed         (the upstream refused or errored)
//!                   │                    └─▶ outcome_unknown (the link died mid-call, or Airlock did)
//!                   ├─▶ unclaimed (nobody called for it within `[approval] pickup`)
//!                   └─▶ withdrawn
//! ```
//!
//! A call belongs to its key (agent, token, upstream, tool, arguments), not to the request that
//! parked it: a request that ends (a client timeout, a cancel, a closed stream, a restart) ends
//! only its own wait, and the call stays where it is. `abandoned` is what earlier releases did to
//! calls whose request was gone; rows in it are still read, but nothing enters it any more.
//!
//! A [`Transition`] can only be built from a move in this table, and the store changes a call's
//! status only through a `Transition`, by a conditional update on the expected current status.
//! So a call leaves `pending` exactly once, and only the one task that wins `approved → forwarding`
//! sends it upstream: an approved call runs at most once.

use std::fmt;

use super::stored_as_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Pending,
    Approved,
    Forwarding,
    Completed,
    Failed,
    OutcomeUnknown,
    Rejected,
    Expired,
    Withdrawn,
    Unclaimed,
    Abandoned,
}

impl CallStatus {
    pub const ALL: [CallStatus; 11] = [
        Self::Pending,
        Self::Approved,
        Self::Forwarding,
        Self::Completed,
        Self::Failed,
        Self::OutcomeUnknown,
        Self::Rejected,
        Self::Expired,
        Self::Withdrawn,
        Self::Unclaimed,
        Self::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Forwarding => "forwarding",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
            Self::Unclaimed => "unclaimed",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the call can still change (a reviewer can act, or it is on its way).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved | Self::Forwarding)
    }

    /// Whether a `tools/call` with the call's key joins it: it waits for a decision, or it is
    /// approved and waits for its agent to pick it up.
    pub fn is_attachable(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }

    /// Whether the call ended without running, with a text its agent is told once (by the next
    /// call with its key, if no request was waiting).
    pub fn is_refusal(self) -> bool {
        matches!(self, Self::Rejected | Self::Expired | Self::Unclaimed)
    }

    /// The move from `self` to `next`, if the state machine has it.
    pub fn to(self, next: CallStatus) -> Option<Transition> {
        use CallStatus::*;
        let allowed = matches!(
            (self, next),
            (Pending, Approved | Rejected | Expired | Withdrawn)
                | (Approved, Forwarding | Unclaimed | Withdrawn)
                | (Forwarding, Completed | Failed | OutcomeUnknown)
        );
        allowed.then_some(Transition {
            from: self,
            to: next,
        })
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CallStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

stored_as_text!(CallStatus, |status| status.as_str().to_owned(), |text| {
    CallStatus::parse(&text).ok_or_else(|| format!("unknown call status {text:?}"))
});

/// A move the state machine allows; the only way the store changes a call's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: CallStatus,
    to: CallStatus,
}

impl Transition {
    /// `pending → approved`: the quorum is reached.
    pub const APPROVE: Transition = Transition {
        from: CallStatus::Pending,
        to: CallStatus::Approved,
    };
    /// `pending → rejected`: one rejection decides.
    pub const REJECT: Transition = Transition {
        from: CallStatus::Pending,
        to: CallStatus::Rejected,
    };
    /// `approved → forwarding`: the one task that wins it sends the call.
    pub const FORWARD: Transition = Transition {
        from: CallStatus::Approved,
        to: CallStatus::Forwarding,
    };

    pub fn from(self) -> CallStatus {
        self.from
    }

    pub fn to(self) -> CallStatus {
        self.to
    }

    /// Whether entering the new status is a decision on the call (recorded as `decided_at/by`).
    pub fn decides(self) -> bool {
        self.from == CallStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::CallStatus::*;
    use super::*;

    #[test]
    fn only_pending_calls_can_be_decided_and_only_approved_ones_forwarded() {
        assert!(Pending.to(Approved).is_some());
        assert!(
            Pending.to(Forwarding).is_none(),
            "never forwarded unapproved"
        );
        assert!(Rejected.to(Approved).is_none());
        assert!(Expired.to(Approved).is_none());
        assert!(Withdrawn.to(Approved).is_none());
        assert!(Abandoned.to(Forwarding).is_none());
        assert!(Unclaimed.to(Forwarding).is_none(), "unclaimed never runs");
        assert!(Approved.to(Unclaimed).is_some());
        assert!(
            CallStatus::ALL.iter().all(|s| s.to(Abandoned).is_none()),
            "nothing enters abandoned any more"
        );
        assert!(Approved.to(Forwarding).is_some());
        assert!(Forwarding.to(Forwarding).is_none(), "sent once");
        assert!(Completed.to(Forwarding).is_none());
        assert!(OutcomeUnknown.to(Forwarding).is_none(), "never re-sent");
    }

    #[test]
    fn the_named_moves_are_moves_of_the_table() {
        assert_eq!(Pending.to(Approved), Some(Transition::APPROVE));
        assert_eq!(Pending.to(Rejected), Some(Transition::REJECT));
        assert_eq!(Approved.to(Forwarding), Some(Transition::FORWARD));
    }

    #[test]
    fn final_states_have_no_way_out_and_names_round_trip() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
            if !status.is_open() {
                for next in CallStatus::ALL {
                    assert!(status.to(next).is_none(), "{status} -> {next}");
                }
            }
        }
    }
}
