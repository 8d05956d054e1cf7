//! Coordination on a match (DOMAIN.md glossary, section 11): the parties name a regievoerder,
//! their central contact, and each marks itself "afgestemd" once they agreed who does what.
//! Both sides of a cross-region match hold a copy; changes travel through the hub and are
//! merged so both copies end equal whatever order they arrive in: each party's afgestemd mark
//! only ever turns on, and the latest naming of a regievoerder wins.

use jiff::Timestamp;

use super::SignalId;

/// A side of a match, as its caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Own,
    Counterpart,
}

/// What a party does to a match's coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinationAction {
    NameRegievoerder(Party),
    MarkAfgestemd,
}

/// The coordination of a match as the recipient of a notice sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoordinationView {
    pub regievoerder: Option<Party>,
    pub afgestemd_own: bool,
    pub afgestemd_counterpart: bool,
}

impl CoordinationState {
    /// The state seen from `own`'s side of the pair `(low, _)`.
    pub fn view(&self, low: SignalId, own: SignalId) -> CoordinationView {
        let own_is_low = own == low;
        CoordinationView {
            regievoerder: self.regievoerder.map(|(named, ..)| {
                if named == own {
                    Party::Own
                } else {
                    Party::Counterpart
                }
            }),
            afgestemd_own: if own_is_low {
                self.afgestemd_low
            } else {
                self.afgestemd_high
            },
            afgestemd_counterpart: if own_is_low {
                self.afgestemd_high
            } else {
                self.afgestemd_low
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Names the regievoerder: the professional of this signal (one of the pair).
    Regievoerder(SignalId),
    /// The party of the changing signal is afgestemd.
    Afgestemd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationChange {
    /// Unique per change, so a resend is recognised.
    pub change_id: uuid::Uuid,
    pub by_signal: SignalId,
    pub other_signal: SignalId,
    pub at: Timestamp,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoordinationError {
    #[error("the regievoerder must be one of the two parties of the match")]
    NotAParty,
    #[error("a match is between two different signals")]
    SameSignal,
}

impl CoordinationChange {
    pub fn check(&self) -> Result<(), CoordinationError> {
        if self.by_signal == self.other_signal {
            return Err(CoordinationError::SameSignal);
        }
        match self.kind {
            ChangeKind::Regievoerder(named)
                if named != self.by_signal && named != self.other_signal =>
            {
                Err(CoordinationError::NotAParty)
            }
            _ => Ok(()),
        }
    }

    /// The pair, in a fixed order, that keys the coordination on both nodes.
    pub fn pair(&self) -> (SignalId, SignalId) {
        ordered(self.by_signal, self.other_signal)
    }
}

pub fn ordered(a: SignalId, b: SignalId) -> (SignalId, SignalId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// The coordination of one pair of signals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoordinationState {
    /// The named signal, when, and by which change (to break ties between equal instants).
    pub regievoerder: Option<(SignalId, Timestamp, uuid::Uuid)>,
    pub afgestemd_low: bool,
    pub afgestemd_high: bool,
}

impl CoordinationState {
    /// Merges `change` for the pair `(low, high)`. Idempotent and order-independent.
    pub fn apply(&mut self, low: SignalId, change: &CoordinationChange) {
        match change.kind {
            ChangeKind::Afgestemd => {
                if change.by_signal == low {
                    self.afgestemd_low = true;
                } else {
                    self.afgestemd_high = true;
                }
            }
            ChangeKind::Regievoerder(named) => {
                let newer = self
                    .regievoerder
                    .is_none_or(|(_, at, id)| (change.at, change.change_id) > (at, id));
                if newer {
                    self.regievoerder = Some((named, change.at, change.change_id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(by: SignalId, other: SignalId, second: i64, kind: ChangeKind) -> CoordinationChange {
        CoordinationChange {
            change_id: uuid::Uuid::new_v4(),
            by_signal: by,
            other_signal: other,
            at: Timestamp::from_second(1_800_000_000 + second).unwrap(),
            kind,
        }
    }

    #[test]
    fn both_copies_end_equal_whatever_the_order() {
        let (a, b) = (SignalId::generate(), SignalId::generate());
        let (low, _) = ordered(a, b);
        let changes = [
            change(a, b, 1, ChangeKind::Regievoerder(a)),
            change(b, a, 2, ChangeKind::Regievoerder(a)),
            change(b, a, 3, ChangeKind::Regievoerder(b)),
            change(a, b, 4, ChangeKind::Afgestemd),
        ];
        let mut forward = CoordinationState::default();
        for c in &changes {
            forward.apply(low, c);
        }
        let mut backward = CoordinationState::default();
        for c in changes.iter().rev() {
            backward.apply(low, c);
            backward.apply(low, c); // a resend changes nothing
        }
        assert_eq!(forward, backward);
        assert_eq!(forward.regievoerder.map(|(s, ..)| s), Some(b));
        assert_eq!(
            (forward.afgestemd_low, forward.afgestemd_high),
            (a == low, a != low)
        );
    }

    #[test]
    fn only_a_party_can_be_regievoerder() {
        let (a, b) = (SignalId::generate(), SignalId::generate());
        assert_eq!(
            change(a, b, 1, ChangeKind::Regievoerder(SignalId::generate())).check(),
            Err(CoordinationError::NotAParty)
        );
        assert_eq!(
            change(a, a, 1, ChangeKind::Afgestemd).check(),
            Err(CoordinationError::SameSignal)
        );
        assert_eq!(change(a, b, 1, ChangeKind::Regievoerder(b)).check(), Ok(()));
    }
}
