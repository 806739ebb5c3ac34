//! Named rooms: the tutorials' browser-to-browser two-person rooms, as a pure state machine.
//!
//! The first browser in a room is told `created`, the second `joined`, then both `ready` (the
//! one who was there first is the `initiator` and makes the offer). A third is told `full`.
//! Offer, answer and candidates go only to the other member of the sender's room. When a member
//! leaves or its socket drops, the other is told `bye` and stays, waiting; the room then accepts
//! a new member. An empty room is forgotten. Caps per source address and in total keep one
//! client from filling the server.

use std::collections::HashMap;
use std::net::IpAddr;

use super::ConnId;
use crate::signaling::{BrowserIce, DEVICE_ROOM, ErrorCode, ServerMessage};

/// Longest accepted room name, in characters.
pub const MAX_ROOM_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms in which one source address may have a member at the same time.
    pub rooms_per_address: usize,
    /// Room memberships one source address may hold at the same time.
    pub members_per_address: usize,
    /// Named rooms in all.
    pub total_rooms: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NamedInput {
    Join {
        conn: ConnId,
        address: IpAddr,
        room: String,
        ice: BrowserIce,
    },
    /// An offer, answer or candidate for the other member, already in its outgoing form.
    Relay {
        conn: ConnId,
        message: ServerMessage,
    },
    Leave {
        conn: ConnId,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Member {
    conn: ConnId,
    address: IpAddr,
}

#[derive(Debug, Default)]
struct Room {
    /// At most two; the first is the initiator.
    members: Vec<Member>,
}

#[derive(Debug)]
pub struct NamedRooms {
    rooms: HashMap<String, Room>,
    member_of: HashMap<ConnId, String>,
    limits: RoomLimits,
}

/// Checks a room name: 1 to 64 characters of `A-Z a-z 0-9 - _ .`, and not the device's room.
pub fn validate_room_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the room name is empty".into());
    }
    if name.chars().count() > MAX_ROOM_NAME {
        return Err(format!(
            "the room name is longer than {MAX_ROOM_NAME} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!(
            "the room name has `{}`; use letters, digits, `-`, `_` and `.`",
            bad.escape_default()
        ));
    }
    if name.eq_ignore_ascii_case(DEVICE_ROOM) {
        return Err(format!("`{DEVICE_ROOM}` is the device's own room"));
    }
    Ok(())
}

type Outgoing = Vec<(ConnId, ServerMessage)>;

fn error(conn: ConnId, code: ErrorCode, message: impl Into<String>) -> Outgoing {
    vec![(
        conn,
        ServerMessage::Error {
            code,
            message: message.into(),
        },
    )]
}

impl NamedRooms {
    pub fn new(limits: RoomLimits) -> Self {
        Self {
            rooms: HashMap::new(),
            member_of: HashMap::new(),
            limits,
        }
    }

    /// Whether this connection is in a named room.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.member_of.contains_key(&conn)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn handle(&mut self, input: NamedInput) -> Outgoing {
        match input {
            NamedInput::Join {
                conn,
                address,
                room,
                ice,
            } => self.join(conn, address, room, ice),
            NamedInput::Relay { conn, message } => self.relay(conn, message),
            NamedInput::Leave { conn, reason } => self.leave(conn, reason),
        }
    }

    fn join(&mut self, conn: ConnId, address: IpAddr, name: String, ice: BrowserIce) -> Outgoing {
        if let Some(current) = self.member_of.get(&conn) {
            return error(
                conn,
                ErrorCode::NotAllowed,
                format!("already in room `{current}`; leave it first"),
            );
        }
        if let Err(why) = validate_room_name(&name) {
            return error(conn, ErrorCode::InvalidRoom, why);
        }
        let occupied = self.rooms.get(&name).map_or(0, |r| r.members.len());
        if occupied >= 2 {
            return vec![(conn, ServerMessage::Full { room: name })];
        }
        if let Err(why) = self.check_limits(address, occupied == 0) {
            return error(conn, ErrorCode::LimitReached, why);
        }
        let room = self.rooms.entry(name.clone()).or_default();
        room.members.push(Member { conn, address });
        self.member_of.insert(conn, name.clone());
        match room.members.as_slice() {
            [only] => vec![(only.conn, ServerMessage::Created { room: name, ice })],
            [first, second] => vec![
                (
                    second.conn,
                    ServerMessage::Joined {
                        room: name.clone(),
                        ice,
                        resume: None,
                    },
                ),
                (
                    first.conn,
                    ServerMessage::Ready {
                        room: name.clone(),
                        initiator: true,
                    },
                ),
                (
                    second.conn,
                    ServerMessage::Ready {
                        room: name,
                        initiator: false,
                    },
                ),
            ],
            _ => vec![],
        }
    }

    fn check_limits(&self, address: IpAddr, new_room: bool) -> Result<(), String> {
        let memberships = self
            .rooms
            .values()
            .flat_map(|r| &r.members)
            .filter(|m| m.address == address)
            .count();
        if memberships >= self.limits.members_per_address {
            return Err(format!(
                "your address already holds {memberships} places in rooms (limit {})",
                self.limits.members_per_address
            ));
        }
        if new_room {
            if self.rooms.len() >= self.limits.total_rooms {
                return Err(format!(
                    "the server has its maximum of {} rooms; try later",
                    self.limits.total_rooms
                ));
            }
            let rooms = self
                .rooms
                .values()
                .filter(|r| r.members.iter().any(|m| m.address == address))
                .count();
            if rooms >= self.limits.rooms_per_address {
                return Err(format!(
                    "your address already has {rooms} rooms open (limit {})",
                    self.limits.rooms_per_address
                ));
            }
        }
        Ok(())
    }

    fn relay(&mut self, conn: ConnId, message: ServerMessage) -> Outgoing {
        let Some(room) = self
            .member_of
            .get(&conn)
            .and_then(|name| self.rooms.get(name))
        else {
            return error(conn, ErrorCode::NotAllowed, "not in a room");
        };
        match room.members.iter().find(|m| m.conn != conn) {
            Some(other) => vec![(other.conn, message)],
            None => error(
                conn,
                ErrorCode::NotAllowed,
                "nobody else is in the room yet; wait for `ready`",
            ),
        }
    }

    fn leave(&mut self, conn: ConnId, reason: String) -> Outgoing {
        let Some(name) = self.member_of.remove(&conn) else {
            return vec![];
        };
        let Some(room) = self.rooms.get_mut(&name) else {
            return vec![];
        };
        room.members.retain(|m| m.conn != conn);
        match room.members.first() {
            Some(remaining) => vec![(remaining.conn, ServerMessage::Bye { reason })],
            None => {
                self.rooms.remove(&name);
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 2));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 3));

    fn rooms() -> NamedRooms {
        NamedRooms::new(RoomLimits {
            rooms_per_address: 2,
            members_per_address: 3,
            total_rooms: 4,
        })
    }

    fn join(conn: ConnId, address: IpAddr, room: &str) -> NamedInput {
        NamedInput::Join {
            conn,
            address,
            room: room.into(),
            ice: BrowserIce {
                ice_servers: vec![],
                transport_policy: crate::signaling::TransportPolicy::All,
            },
        }
    }

    fn types(out: &Outgoing) -> Vec<(ConnId, String)> {
        out.iter()
            .map(|(conn, m)| {
                let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
                let kind = json["type"].as_str().unwrap().to_owned();
                let detail = match kind.as_str() {
                    "error" => format!("error:{}", json["code"].as_str().unwrap()),
                    "ready" => format!("ready:{}", json["initiator"]),
                    _ => kind,
                };
                (*conn, detail)
            })
            .collect()
    }

    fn offer() -> ServerMessage {
        ServerMessage::Offer { sdp: "v=0".into() }
    }

    #[test]
    fn created_then_joined_then_both_ready() {
        let mut r = rooms();
        assert_eq!(
            types(&r.handle(join(1, HOME, "foo"))),
            [(1, "created".into())]
        );
        assert_eq!(
            types(&r.handle(join(2, AWAY, "foo"))),
            [
                (2, "joined".into()),
                (1, "ready:true".into()),
                (2, "ready:false".into())
            ]
        );
    }

    #[test]
    fn third_member_is_told_full() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        r.handle(join(2, AWAY, "foo"));
        assert_eq!(types(&r.handle(join(3, AWAY, "foo"))), [(3, "full".into())]);
        assert!(!r.contains(3));
    }

    #[test]
    fn signals_go_only_to_the_other_member() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        r.handle(join(2, AWAY, "foo"));
        r.handle(join(3, HOME, "bar"));
        r.handle(join(4, AWAY, "bar"));
        assert_eq!(
            r.handle(NamedInput::Relay {
                conn: 1,
                message: offer()
            }),
            vec![(2, offer())]
        );
        assert_eq!(
            r.handle(NamedInput::Relay {
                conn: 4,
                message: offer()
            }),
            vec![(3, offer())]
        );
    }

    #[test]
    fn relay_alone_or_outside_a_room_is_refused() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        let alone = r.handle(NamedInput::Relay {
            conn: 1,
            message: offer(),
        });
        assert_eq!(types(&alone), [(1, "error:not-allowed".into())]);
        let outside = r.handle(NamedInput::Relay {
            conn: 9,
            message: offer(),
        });
        assert_eq!(types(&outside), [(9, "error:not-allowed".into())]);
    }

    #[test]
    fn leaving_tells_the_other_who_stays_and_becomes_initiator() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        r.handle(join(2, AWAY, "foo"));
        let out = r.handle(NamedInput::Leave {
            conn: 1,
            reason: "left".into(),
        });
        assert_eq!(types(&out), [(2, "bye".into())]);
        assert!(r.contains(2));
        let again = r.handle(join(3, HOME, "foo"));
        assert_eq!(
            types(&again),
            [
                (3, "joined".into()),
                (2, "ready:true".into()),
                (3, "ready:false".into())
            ]
        );
    }

    #[test]
    fn empty_rooms_are_forgotten() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        r.handle(NamedInput::Leave {
            conn: 1,
            reason: "closed".into(),
        });
        assert_eq!(r.room_count(), 0);
        assert_eq!(
            types(&r.handle(join(2, HOME, "foo"))),
            [(2, "created".into())]
        );
    }

    #[test]
    fn a_second_join_needs_a_leave_first() {
        let mut r = rooms();
        r.handle(join(1, HOME, "foo"));
        assert_eq!(
            types(&r.handle(join(1, HOME, "bar"))),
            [(1, "error:not-allowed".into())]
        );
    }

    #[test]
    fn room_names_are_validated() {
        for bad in ["", "a b", "ünï", "x/y", "<script>", "device", "DEVICE"] {
            let mut r = rooms();
            assert_eq!(
                types(&r.handle(join(1, HOME, bad))),
                [(1, "error:invalid-room".into())],
                "{bad:?}"
            );
        }
        assert!(validate_room_name(&"a".repeat(64)).is_ok());
        assert!(validate_room_name(&"a".repeat(65)).is_err());
        assert!(validate_room_name("team-7_room.2").is_ok());
    }

    #[test]
    fn rooms_per_address_are_capped() {
        let mut r = rooms();
        r.handle(join(1, HOME, "a"));
        r.handle(join(2, HOME, "b"));
        assert_eq!(
            types(&r.handle(join(3, HOME, "c"))),
            [(3, "error:limit-reached".into())]
        );
        // Another address is not affected, and joining an existing room is not a new room.
        assert_eq!(
            types(&r.handle(join(4, AWAY, "c"))),
            [(4, "created".into())]
        );
    }

    #[test]
    fn members_per_address_are_capped() {
        let mut r = rooms();
        r.handle(join(1, HOME, "a"));
        r.handle(join(2, HOME, "a"));
        r.handle(join(3, HOME, "b"));
        let out = r.handle(join(4, HOME, "b"));
        assert_eq!(types(&out), [(4, "error:limit-reached".into())]);
    }

    #[test]
    fn total_rooms_are_capped() {
        let mut r = rooms();
        for (conn, name) in [(1, "a"), (2, "b")] {
            r.handle(join(conn, HOME, name));
        }
        for (conn, name) in [(3, "c"), (4, "d")] {
            r.handle(join(conn, AWAY, name));
        }
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            types(&r.handle(join(5, other, "e"))),
            [(5, "error:limit-reached".into())]
        );
    }
}

/// Properties over any sequence of joins, relays and leaves (proptest): no room holds more than
/// two, nobody who left is still a member, and the index of members agrees with the rooms.
#[cfg(test)]
mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::signaling::TransportPolicy;

    #[derive(Debug, Clone)]
    enum Step {
        Join(ConnId, u8),
        Relay(ConnId),
        Leave(ConnId),
    }

    fn step() -> impl Strategy<Value = Step> {
        let conn = 1..7u64;
        prop_oneof![
            (conn.clone(), 0..3u8).prop_map(|(c, r)| Step::Join(c, r)),
            conn.clone().prop_map(Step::Relay),
            conn.prop_map(Step::Leave),
        ]
    }

    proptest! {
        #[test]
        fn no_sequence_keeps_a_member_who_left_or_lets_a_third_in(
            steps in proptest::collection::vec(step(), 0..80)
        ) {
            let mut rooms = NamedRooms::new(RoomLimits {
                rooms_per_address: 2,
                members_per_address: 5,
                total_rooms: 2,
            });
            let mut left: HashSet<ConnId> = HashSet::new();
            for step in &steps {
                let input = match *step {
                    Step::Join(conn, room) => {
                        left.remove(&conn);
                        NamedInput::Join {
                            conn,
                            address: IpAddr::from([10, 0, 0, (conn % 3) as u8]),
                            room: format!("room-{room}"),
                            ice: BrowserIce {
                                ice_servers: vec![],
                                transport_policy: TransportPolicy::All,
                            },
                        }
                    }
                    Step::Relay(conn) => NamedInput::Relay {
                        conn,
                        message: ServerMessage::Bye { reason: "relayed".into() },
                    },
                    Step::Leave(conn) => {
                        left.insert(conn);
                        NamedInput::Leave { conn, reason: "gone".into() }
                    }
                };
                rooms.handle(input);
                for (name, room) in &rooms.rooms {
                    prop_assert!(!room.members.is_empty(), "empty room `{name}` kept");
                    prop_assert!(room.members.len() <= 2, "`{name}` holds {}", room.members.len());
                    for member in &room.members {
                        prop_assert!(!left.contains(&member.conn), "{} left `{name}`", member.conn);
                        prop_assert_eq!(rooms.member_of.get(&member.conn), Some(name));
                    }
                }
                let members: usize = rooms.rooms.values().map(|r| r.members.len()).sum();
                prop_assert_eq!(members, rooms.member_of.len());
                prop_assert!(rooms.room_count() <= 2, "over the total-rooms limit");
            }
        }
    }
}
