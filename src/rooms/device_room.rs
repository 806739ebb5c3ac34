//! The device's own room as a pure state machine: inputs in, actions out, no I/O.
//!
//! The device is always one member; at most one browser (the caller) is the other. A second
//! browser is told the room is `full` and nothing about the call in progress changes. Every call
//! gets a fresh `CallId`, so late events from a torn-down peer can be recognised and dropped.
//! Invariant: every call started (`StartCall`, or the `to` of `ResumeCall`) ends exactly once
//! (`EndCall`, or the `from` of `ResumeCall`).
//!
//! A caller whose network changes comes back on a new connection with the resume token it was
//! given in `joined`: the call goes on with a fresh peer (new ICE credentials and candidates)
//! for the new connection. When the caller's connection closes without `bye` the call is
//! held, with nobody to talk to, until the caller resumes, the peer reports it gone, or the
//! owner says the hold has expired.

use crate::signaling::{BrowserIce, DEVICE_ROOM, IceCandidate, ServerMessage};

/// One WebSocket connection.
pub type ConnId = u64;
pub use crate::media_link::CallId;

/// Something that happened, fed to [`DeviceRoom::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A browser asks to call the device, able to receive these video codecs; `ice` is what
    /// its `RTCPeerConnection` should use.
    /// `resume` is a fresh secret from the owner: the token this call can be resumed with.
    Join {
        conn: ConnId,
        codecs: Vec<String>,
        ice: BrowserIce,
        resume: String,
    },
    /// A caller back on a new connection (its network changed) with its resume token.
    /// `fresh` is a new secret from the owner: the token replaces the used one, so a token
    /// seen once (replayed) resumes nothing.
    Resume {
        conn: ConnId,
        token: String,
        fresh: String,
        ice: BrowserIce,
    },
    /// The caller's answer to the device's offer.
    Answer { conn: ConnId, sdp: String },
    /// A caller's offer: the device makes the offers, so this is refused.
    Offer { conn: ConnId },
    /// A trickled candidate from a browser.
    CallerCandidate {
        conn: ConnId,
        candidate: IceCandidate,
    },
    /// A browser hung up.
    Leave { conn: ConnId, reason: String },
    /// A browser's connection closed without hanging up: it may come back.
    Disconnect { conn: ConnId },
    /// The owner's timer for a held call ran out.
    HoldExpired { call: CallId },
    /// The device's peer made its offer.
    PeerOffer { call: CallId, sdp: String },
    /// The device's peer gathered a candidate.
    PeerCandidate {
        call: CallId,
        candidate: IceCandidate,
    },
    /// The device's peer could not go on.
    PeerFailed { call: CallId, reason: String },
}

/// What the owner of the room must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        conn: ConnId,
        message: ServerMessage,
    },
    StartCall {
        call: CallId,
        codecs: Vec<String>,
    },
    EndCall {
        call: CallId,
    },
    /// The caller came back: end the peer of `from`, start one for `to` with the same codecs.
    ResumeCall {
        from: CallId,
        to: CallId,
        codecs: Vec<String>,
    },
    /// The caller's connection is gone: arm the hold timer of `call`.
    HoldCall {
        call: CallId,
    },
    AnswerToPeer {
        call: CallId,
        sdp: String,
    },
    CandidateToPeer {
        call: CallId,
        candidate: IceCandidate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    InCall {
        caller: ConnId,
        call: CallId,
    },
    /// The caller's connection closed without `bye`; the call waits for it to resume.
    Held {
        call: CallId,
    },
}

#[derive(Debug)]
pub struct DeviceRoom {
    state: State,
    next_call: CallId,
    /// The current call's resume token and the codecs its caller can receive.
    resume: String,
    codecs: Vec<String>,
}

impl Default for DeviceRoom {
    fn default() -> Self {
        Self {
            state: State::Idle,
            next_call: 1,
            resume: String::new(),
            codecs: Vec::new(),
        }
    }
}

impl DeviceRoom {
    /// The current call, held or not.
    pub fn current_call(&self) -> Option<CallId> {
        match self.state {
            State::Idle => None,
            State::InCall { call, .. } | State::Held { call } => Some(call),
        }
    }

    /// The current call's caller, unless there is no call or it is held.
    pub fn caller(&self) -> Option<ConnId> {
        match self.state {
            State::InCall { caller, .. } => Some(caller),
            State::Idle | State::Held { .. } => None,
        }
    }

    fn new_call(&mut self) -> CallId {
        let call = self.next_call;
        self.next_call += 1;
        call
    }

    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match (self.state, input) {
            (
                State::Idle,
                Input::Join {
                    conn,
                    codecs,
                    ice,
                    resume,
                },
            ) => {
                let call = self.new_call();
                self.state = State::InCall { caller: conn, call };
                self.codecs.clone_from(&codecs);
                let actions = vec![
                    joined(conn, ice, &resume),
                    Action::StartCall { call, codecs },
                ];
                self.resume = resume;
                actions
            }
            (
                State::InCall { call: from, .. } | State::Held { call: from },
                Input::Resume {
                    conn,
                    token,
                    fresh,
                    ice,
                },
            ) if !self.resume.is_empty()
                && crate::auth::constant_time_eq(token.as_bytes(), self.resume.as_bytes()) =>
            {
                let to = self.new_call();
                let previous = self.caller();
                self.state = State::InCall {
                    caller: conn,
                    call: to,
                };
                let mut actions = vec![
                    joined(conn, ice, &fresh),
                    Action::ResumeCall {
                        from,
                        to,
                        codecs: self.codecs.clone(),
                    },
                ];
                self.resume = fresh;
                // Taken over from a connection still open: it is told, not left to wonder.
                if let Some(previous) = previous.filter(|p| *p != conn) {
                    actions.push(Action::Send {
                        conn: previous,
                        message: ServerMessage::Bye {
                            reason: "the call was resumed on another connection".into(),
                        },
                    });
                }
                actions
            }
            (_, Input::Resume { conn, .. }) => {
                vec![refuse(conn, "no call to resume: it has ended")]
            }
            (State::InCall { caller, call }, Input::Disconnect { conn }) if caller == conn => {
                self.state = State::Held { call };
                vec![Action::HoldCall { call }]
            }
            (_, Input::Disconnect { .. }) => vec![],
            (State::Held { call }, Input::HoldExpired { call: expired }) if call == expired => {
                self.state = State::Idle;
                vec![Action::EndCall { call }]
            }
            (_, Input::HoldExpired { .. }) => vec![],
            (State::InCall { caller, .. }, Input::Join { conn, .. }) if caller == conn => {
                vec![refuse(conn, "already in a call with the device")]
            }
            (State::InCall { .. } | State::Held { .. }, Input::Join { conn, .. }) => {
                vec![Action::Send {
                    conn,
                    message: ServerMessage::Full {
                        room: DEVICE_ROOM.into(),
                    },
                }]
            }
            (State::InCall { caller, call }, Input::Answer { conn, sdp }) if caller == conn => {
                vec![Action::AnswerToPeer { call, sdp }]
            }
            (State::InCall { caller, call }, Input::CallerCandidate { conn, candidate })
                if caller == conn =>
            {
                vec![Action::CandidateToPeer { call, candidate }]
            }
            (_, Input::Answer { conn, .. } | Input::CallerCandidate { conn, .. }) => {
                vec![refuse(conn, "not in a call with the device")]
            }
            (_, Input::Offer { conn }) => {
                vec![refuse(conn, "the device makes the offer; wait for it")]
            }
            (State::InCall { caller, call }, Input::Leave { conn, .. }) if caller == conn => {
                self.state = State::Idle;
                vec![Action::EndCall { call }]
            }
            (_, Input::Leave { .. }) => vec![],
            (State::InCall { caller, call }, Input::PeerOffer { call: from, sdp })
                if call == from =>
            {
                vec![Action::Send {
                    conn: caller,
                    message: ServerMessage::Offer { sdp },
                }]
            }
            (
                State::InCall { caller, call },
                Input::PeerCandidate {
                    call: from,
                    candidate,
                },
            ) if call == from => {
                vec![Action::Send {
                    conn: caller,
                    message: ServerMessage::Candidate(candidate),
                }]
            }
            (State::InCall { caller, call }, Input::PeerFailed { call: from, reason })
                if call == from =>
            {
                self.state = State::Idle;
                vec![
                    Action::Send {
                        conn: caller,
                        message: ServerMessage::Error {
                            code: crate::signaling::ErrorCode::MediaFailed,
                            message: reason.clone(),
                        },
                    },
                    Action::Send {
                        conn: caller,
                        message: ServerMessage::Bye { reason },
                    },
                    Action::EndCall { call },
                ]
            }
            (State::Held { call }, Input::PeerFailed { call: from, .. }) if call == from => {
                self.state = State::Idle;
                vec![Action::EndCall { call }]
            }
            // Late events of a call that has already ended, and a held call's signals, which
            // have nobody to go to (a resumed call gets a fresh peer that signals anew).
            (
                _,
                Input::PeerOffer { .. } | Input::PeerCandidate { .. } | Input::PeerFailed { .. },
            ) => {
                vec![]
            }
        }
    }
}

fn joined(conn: ConnId, ice: BrowserIce, resume: &str) -> Action {
    Action::Send {
        conn,
        message: ServerMessage::Joined {
            room: DEVICE_ROOM.into(),
            ice,
            resume: Some(resume.to_owned()),
        },
    }
}

fn refuse(conn: ConnId, why: &str) -> Action {
    Action::Send {
        conn,
        message: ServerMessage::not_allowed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> DeviceRoom {
        DeviceRoom::default()
    }

    fn no_ice() -> BrowserIce {
        BrowserIce {
            ice_servers: vec![],
            transport_policy: crate::signaling::TransportPolicy::All,
        }
    }

    fn join(conn: ConnId) -> Input {
        Input::Join {
            conn,
            codecs: vec!["H264".into()],
            ice: no_ice(),
            resume: format!("token-of-{conn}"),
        }
    }

    fn resume(conn: ConnId, token: &str) -> Input {
        Input::Resume {
            conn,
            token: token.into(),
            fresh: format!("fresh-for-{conn}"),
            ice: no_ice(),
        }
    }

    #[test]
    fn joined_carries_the_resume_token() {
        let mut room = room();
        let actions = room.handle(join(1));
        assert!(matches!(
            &actions[0],
            Action::Send { message: ServerMessage::Joined { resume: Some(t), .. }, .. } if t == "token-of-1"
        ));
    }

    #[test]
    fn a_caller_resumes_from_a_new_connection_with_a_fresh_peer() {
        let mut room = room();
        let first = started_call(&room.handle(join(1)));
        let actions = room.handle(resume(7, "token-of-1"));
        assert!(matches!(
            &actions[0],
            Action::Send { conn: 7, message: ServerMessage::Joined { resume: Some(t), .. } } if t == "fresh-for-7"
        ));
        // The connection that had the call is told it moved.
        assert!(matches!(
            &actions[2],
            Action::Send { conn: 1, message: ServerMessage::Bye { reason } } if reason.contains("another connection")
        ));
        assert_eq!(
            actions[1],
            Action::ResumeCall {
                from: first,
                to: first + 1,
                codecs: vec!["H264".into()]
            }
        );
        assert_eq!(
            (room.current_call(), room.caller()),
            (Some(first + 1), Some(7))
        );
        // The token was used up: replayed, it resumes nothing; the fresh one does.
        assert!(matches!(
            room.handle(resume(8, "token-of-1")).as_slice(),
            [Action::Send {
                conn: 8,
                message: ServerMessage::Error { .. }
            }]
        ));
        assert_eq!(room.caller(), Some(7));
        // The old connection is nobody now: its late close changes nothing.
        assert!(room.handle(Input::Disconnect { conn: 1 }).is_empty());
        assert!(
            room.handle(Input::PeerFailed {
                call: first,
                reason: "old".into()
            })
            .is_empty()
        );
        assert_eq!(room.caller(), Some(7));
    }

    #[test]
    fn a_wrong_token_or_no_call_cannot_resume() {
        let mut room = room();
        let refused = |actions: Vec<Action>| {
            matches!(
                actions.as_slice(),
                [Action::Send {
                    conn: 2,
                    message: ServerMessage::Error { .. }
                }]
            )
        };
        assert!(refused(room.handle(resume(2, ""))), "no call yet");
        room.handle(join(1));
        assert!(refused(room.handle(resume(2, "token-of-2"))));
        assert!(refused(room.handle(resume(2, ""))));
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
        room.handle(Input::Leave {
            conn: 1,
            reason: "bye".into(),
        });
        assert!(
            refused(room.handle(resume(2, "token-of-1"))),
            "the call has ended"
        );
    }

    #[test]
    fn a_closed_connection_holds_the_call_until_resumed_or_expired() {
        let mut room = room();
        let call = started_call(&room.handle(join(1)));
        assert_eq!(
            room.handle(Input::Disconnect { conn: 1 }),
            vec![Action::HoldCall { call }]
        );
        assert_eq!((room.current_call(), room.caller()), (Some(call), None));
        // Held: busy for others, the peer's signals go nowhere.
        assert!(matches!(
            room.handle(join(2)).as_slice(),
            [Action::Send {
                conn: 2,
                message: ServerMessage::Full { .. }
            }]
        ));
        assert!(
            room.handle(Input::PeerOffer {
                call,
                sdp: "v=0".into()
            })
            .is_empty()
        );
        assert!(
            room.handle(Input::HoldExpired { call: call + 5 })
                .is_empty()
        );
        assert_eq!(
            room.handle(Input::HoldExpired { call }),
            vec![Action::EndCall { call }]
        );
        assert_eq!(room.current_call(), None);

        let call = started_call(&room.handle(join(3)));
        room.handle(Input::Disconnect { conn: 3 });
        let actions = room.handle(resume(4, "token-of-3"));
        assert!(matches!(actions[1], Action::ResumeCall { from, .. } if from == call));
        assert!(
            room.handle(Input::HoldExpired { call }).is_empty(),
            "a resumed call is not held"
        );
        assert_eq!(room.caller(), Some(4));

        room.handle(Input::Disconnect { conn: 4 });
        let held = room.current_call().expect("held");
        let actions = room.handle(Input::PeerFailed {
            call: held,
            reason: "gone".into(),
        });
        assert_eq!(actions, vec![Action::EndCall { call: held }]);
        assert_eq!(room.current_call(), None);
    }

    fn candidate() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 1 a.local 1 typ host".into(),
            sdp_m_line_index: 0,
            sdp_mid: None,
            username_fragment: None,
        }
    }

    fn started_call(actions: &[Action]) -> CallId {
        actions
            .iter()
            .find_map(|a| match a {
                Action::StartCall { call, .. } => Some(*call),
                _ => None,
            })
            .expect("a call starts")
    }

    #[test]
    fn first_caller_joins_and_starts_a_call() {
        let mut room = room();
        let actions = room.handle(join(1));
        assert!(matches!(
            &actions[0],
            Action::Send { conn: 1, message: ServerMessage::Joined { room, .. } } if room == DEVICE_ROOM
        ));
        assert_eq!(
            actions[1],
            Action::StartCall {
                call: 1,
                codecs: vec!["H264".into()]
            }
        );
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
    }

    #[test]
    fn second_caller_is_told_full_and_call_is_untouched() {
        let mut room = room();
        room.handle(join(1));
        let actions = room.handle(join(2));
        assert_eq!(
            actions,
            vec![Action::Send {
                conn: 2,
                message: ServerMessage::Full {
                    room: DEVICE_ROOM.into()
                }
            }]
        );
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
        // The busy browser leaving changes nothing either.
        assert!(
            room.handle(Input::Leave {
                conn: 2,
                reason: "closed".into()
            })
            .is_empty()
        );
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
    }

    #[test]
    fn signals_flow_between_caller_and_peer() {
        let mut room = room();
        let call = started_call(&room.handle(join(1)));
        let offer = room.handle(Input::PeerOffer {
            call,
            sdp: "v=0".into(),
        });
        assert_eq!(
            offer,
            vec![Action::Send {
                conn: 1,
                message: ServerMessage::Offer { sdp: "v=0".into() }
            }]
        );
        let answer = room.handle(Input::Answer {
            conn: 1,
            sdp: "v=0 answer".into(),
        });
        assert_eq!(
            answer,
            vec![Action::AnswerToPeer {
                call,
                sdp: "v=0 answer".into()
            }]
        );
        let to_peer = room.handle(Input::CallerCandidate {
            conn: 1,
            candidate: candidate(),
        });
        assert_eq!(
            to_peer,
            vec![Action::CandidateToPeer {
                call,
                candidate: candidate()
            }]
        );
        let to_caller = room.handle(Input::PeerCandidate {
            call,
            candidate: candidate(),
        });
        assert_eq!(
            to_caller,
            vec![Action::Send {
                conn: 1,
                message: ServerMessage::Candidate(candidate())
            }]
        );
    }

    #[test]
    fn outsider_cannot_inject_signals() {
        let mut room = room();
        room.handle(join(1));
        for input in [
            Input::Answer {
                conn: 2,
                sdp: "x".into(),
            },
            Input::CallerCandidate {
                conn: 2,
                candidate: candidate(),
            },
            Input::Offer { conn: 2 },
        ] {
            let actions = room.handle(input);
            assert!(matches!(
                actions.as_slice(),
                [Action::Send {
                    conn: 2,
                    message: ServerMessage::Error { .. }
                }]
            ));
        }
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
    }

    #[test]
    fn hang_up_ends_the_call_and_frees_the_room() {
        let mut room = room();
        let first = started_call(&room.handle(join(1)));
        let actions = room.handle(Input::Leave {
            conn: 1,
            reason: "bye".into(),
        });
        assert_eq!(actions, vec![Action::EndCall { call: first }]);
        assert_eq!(room.current_call(), None);
        let second = started_call(&room.handle(join(2)));
        assert_ne!(first, second, "each call has its own id");
    }

    #[test]
    fn late_events_of_an_ended_call_are_dropped() {
        let mut room = room();
        let first = started_call(&room.handle(join(1)));
        room.handle(Input::Leave {
            conn: 1,
            reason: "bye".into(),
        });
        room.handle(join(2));
        for input in [
            Input::PeerOffer {
                call: first,
                sdp: "old".into(),
            },
            Input::PeerCandidate {
                call: first,
                candidate: candidate(),
            },
            Input::PeerFailed {
                call: first,
                reason: "old".into(),
            },
        ] {
            assert!(room.handle(input).is_empty());
        }
        assert!(room.current_call().is_some());
    }

    #[test]
    fn media_failure_tells_the_caller_and_ends_the_call() {
        let mut room = room();
        let call = started_call(&room.handle(join(1)));
        let actions = room.handle(Input::PeerFailed {
            call,
            reason: "camera gone".into(),
        });
        assert_eq!(actions.len(), 3);
        assert_eq!(actions[2], Action::EndCall { call });
        assert_eq!(room.current_call(), None);
    }

    #[test]
    fn caller_joining_twice_is_refused_without_a_second_call() {
        let mut room = room();
        room.handle(join(1));
        let actions = room.handle(join(1));
        assert!(matches!(
            actions.as_slice(),
            [Action::Send {
                conn: 1,
                message: ServerMessage::Error { .. }
            }]
        ));
        assert_eq!((room.current_call(), room.caller()), (Some(1), Some(1)));
    }
}

/// Properties over any sequence of inputs (proptest): the room never keeps a caller who left,
/// a second browser never disturbs the call, and every started call ends exactly once.
#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::signaling::TransportPolicy;

    #[derive(Debug, Clone)]
    enum Step {
        Join(ConnId),
        Leave(ConnId),
        Disconnect(ConnId),
        /// With the current call's token, or a wrong one.
        Resume(ConnId, bool),
        HoldExpired(CallId),
        Answer(ConnId),
        Offer(ConnId),
        PeerOffer(CallId),
        PeerFailed(CallId),
    }

    fn step() -> impl Strategy<Value = Step> {
        let conn = 1..5u64;
        let call = 1..8u64;
        prop_oneof![
            conn.clone().prop_map(Step::Join),
            conn.clone().prop_map(Step::Leave),
            conn.clone().prop_map(Step::Disconnect),
            (conn.clone(), any::<bool>()).prop_map(|(c, good)| Step::Resume(c, good)),
            call.clone().prop_map(Step::HoldExpired),
            conn.clone().prop_map(Step::Answer),
            conn.prop_map(Step::Offer),
            call.clone().prop_map(Step::PeerOffer),
            call.prop_map(Step::PeerFailed),
        ]
    }

    fn no_ice() -> BrowserIce {
        BrowserIce {
            ice_servers: vec![],
            transport_policy: TransportPolicy::All,
        }
    }

    /// `n` numbers the step, so every join has a token of its own.
    fn input(step: &Step, n: usize, token: &str) -> Input {
        match *step {
            Step::Join(conn) => Input::Join {
                conn,
                codecs: vec!["H264".into()],
                ice: no_ice(),
                resume: format!("token{n}"),
            },
            Step::Disconnect(conn) => Input::Disconnect { conn },
            Step::Resume(conn, good) => Input::Resume {
                conn,
                token: if good {
                    token.to_owned()
                } else {
                    "wrong".into()
                },
                fresh: format!("fresh{n}"),
                ice: no_ice(),
            },
            Step::HoldExpired(call) => Input::HoldExpired { call },
            Step::Leave(conn) => Input::Leave {
                conn,
                reason: "gone".into(),
            },
            Step::Answer(conn) => Input::Answer {
                conn,
                sdp: "v=0".into(),
            },
            Step::Offer(conn) => Input::Offer { conn },
            Step::PeerOffer(call) => Input::PeerOffer {
                call,
                sdp: "v=0".into(),
            },
            Step::PeerFailed(call) => Input::PeerFailed {
                call,
                reason: "failed".into(),
            },
        }
    }

    proptest! {
        #[test]
        fn no_sequence_keeps_a_caller_who_left_or_lets_a_second_in(
            steps in proptest::collection::vec(step(), 0..60)
        ) {
            let mut room = DeviceRoom::default();
            let mut gone: HashSet<ConnId> = HashSet::new();
            let mut open_calls: HashSet<CallId> = HashSet::new();
            let mut token = String::new();
            for (n, step) in steps.iter().enumerate() {
                let before = (room.current_call(), room.caller());
                let actions = room.handle(input(step, n, &token));
                match *step {
                    Step::Leave(conn) | Step::Disconnect(conn) => { gone.insert(conn); }
                    Step::Join(conn) | Step::Resume(conn, true) => { gone.remove(&conn); }
                    _ => {}
                }
                for action in &actions {
                    match action {
                        Action::StartCall { call, .. } => {
                            prop_assert!(open_calls.insert(*call), "call {call} started twice");
                        }
                        Action::EndCall { call } => {
                            prop_assert!(open_calls.remove(call), "call {call} ended unstarted");
                        }
                        Action::ResumeCall { from, to, .. } => {
                            prop_assert!(open_calls.remove(from), "call {from} resumed unstarted");
                            prop_assert!(open_calls.insert(*to), "call {to} started twice");
                        }
                        Action::Send { message: ServerMessage::Joined { resume: Some(t), .. }, .. } => {
                            token.clone_from(t);
                        }
                        _ => {}
                    }
                }
                let now = (room.current_call(), room.caller());
                if let Some(caller) = now.1 {
                    prop_assert!(!gone.contains(&caller), "caller {caller} left but is kept");
                }
                if let (Step::Join(conn), (Some(_), caller)) = (step, before)
                    && Some(*conn) != caller
                {
                    prop_assert_eq!(now, before, "a second browser changed the call");
                    let refused = actions.iter().all(|a| matches!(a,
                        Action::Send { conn: to, message: ServerMessage::Full { .. } } if to == conn));
                    prop_assert!(refused, "a second browser got {:?}", actions);
                }
                if let Step::Resume(conn, false) = step {
                    prop_assert_eq!(now, before, "a wrong token changed the call");
                    let refused = actions.iter().all(|a| matches!(a,
                        Action::Send { conn: to, message: ServerMessage::Error { .. } } if to == conn));
                    prop_assert!(refused, "a wrong token got {:?}", actions);
                }
                prop_assert_eq!(open_calls.len(), usize::from(now.0.is_some()));
            }
        }
    }
}
