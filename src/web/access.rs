//! Taking access back: when a viewer token is revoked (`peercam token revoke`, another
//! process), the owner's password changes (`peercam set-password`), or a session logs out,
//! whatever was let in by it ends: viewers at the media owner, WebSockets (and a call) at the
//! room owner, each told why.
//!
//! `watch` is a task of its own that looks at the state directory every `PERIOD` (the tokens
//! file and the password hash are written by other processes). It does not diff what it saw
//! (a token made and revoked between two looks would slip through): each time it names what
//! is still valid, and the owners end whatever is not. `withdraw` is also called directly by
//! `POST /logout`.

use std::time::{Duration, Instant};

use super::state::AppState;
use crate::media_link::{MediaCommand, Withdrawn};
use crate::rooms::ConnectionEvent;

/// How often the state directory is looked at: a revoked token's viewer ends within this.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Ends what `what` let in, telling each why.
pub async fn withdraw(state: &AppState, what: Withdrawn, reason: &str) {
    let _ = state.media.send(MediaCommand::Withdraw {
        what: what.clone(),
        reason: reason.to_owned(),
    });
    let _ = state
        .rooms
        .connections
        .send(ConnectionEvent::AccessWithdrawn {
            what,
            reason: reason.to_owned(),
        })
        .await;
}

/// Watches the tokens and the password, until the process ends.
pub async fn watch(state: AppState, period: Duration) {
    let mut credential = state.auth.as_ref().map(|auth| auth.credential());
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        if let Some(tokens) = &state.tokens {
            match tokens.list() {
                Ok(live) => {
                    let names = live.into_iter().map(|t| t.name).collect();
                    let _ = state.media.send(MediaCommand::Withdraw {
                        what: Withdrawn::TokensExcept(names),
                        reason: "its viewer token was revoked".into(),
                    });
                }
                // `check` refuses every token meanwhile, and says why.
                Err(e) => log::debug!("viewer tokens unreadable: {e}"),
            }
        }
        let Some(auth) = &state.auth else {
            continue;
        };
        let current = auth.credential();
        if credential.as_ref() != Some(&current) {
            log::info!("the password changed: ending every session made before");
            let live = auth.live_sessions(Instant::now());
            withdraw(
                &state,
                Withdrawn::SessionsExcept(live),
                "the device's password was changed: log in again",
            )
            .await;
            credential = Some(current);
        }
    }
}
