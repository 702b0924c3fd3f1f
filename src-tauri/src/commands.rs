//! The commands the window may call. They only forward to the agent runtime: the shell holds
//! no check, policy or nudge logic.

use serde::{Serialize, Serializer};
use tandem_agent::{Agent, AgentError};
use tandem_proto::state::AgentState;
use tauri::State;

/// A command's failure, sent to the frontend as its message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl Serialize for CommandError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// The agent's current state.
#[tauri::command]
pub fn get_state(agent: State<'_, Agent>) -> AgentState {
    agent.state()
}

/// Runs every check now and answers with the state after the run.
#[tauri::command]
pub async fn check_now(agent: State<'_, Agent>) -> Result<AgentState, CommandError> {
    Ok(agent.check_now().await?)
}
